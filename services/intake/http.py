"""Intake's HTTP face for agencies: submit, update and follow referrals with an API key.

Every submission goes through the same `decide_submissions` as the NATS door, in its own transaction with
its events in the outbox, under a span that carries the caller's trace context (W3C traceparent) when given.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry import trace
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from services.intake.agencies import AgencyRegistry
from services.intake.body_limit import BodySizeLimit
from services.intake.crypto import IntakeKeys
from services.intake.handlers import Decision, Submission, decide_submissions
from services.intake.referral_status import ReferralStatus, ask_status
from services.intake.tables import ReferralRecord, as_utc
from services.intake.validation import NotJson, load_json
from shared.contracts.common import FieldError
from shared.contracts.intake import Referral
from shared.service import ServiceHost
from shared.telemetry import extract_context

_REFERRAL_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Referral"}}}}}


_bearer = HTTPBearer(auto_error=False, description="Your agency's API key.")


async def _authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The agency whose active API key came with the request; else 401 (and nothing is stored)."""
    agencies: AgencyRegistry = request.app.state.agencies
    agency_id = await agencies.authenticate(credentials.credentials if credentials else None)
    if agency_id is None:
        raise HTTPException(401, "missing, wrong or revoked API key: send `Authorization: Bearer <key>`",
                            headers={"WWW-Authenticate": "Bearer"})
    return agency_id


Agency = Annotated[str, Depends(_authenticated)]


class ReferralReceived(BaseModel):
    """The referral is stored (or was already): follow it at `status_url`."""

    referral_id: str = Field(description="Our id for the referral: the same for every repeat of your id.")
    agency_referral_id: str = Field(description="Your id for the referral.")
    outcome: Literal["accepted", "updated", "duplicate"] = Field(
        description="accepted (new), updated (changed by PUT), duplicate (the same as what we hold)")
    duplicate: bool = Field(description="True when nothing new was stored.")
    revision: int = Field(description="0 as first submitted; 1, 2, ... after each change.")
    status_url: str = Field(description="GET it for the referral's progress.")


class ReferralRefused(BaseModel):
    """Nothing was stored: one entry per problem, as on referrals.rejected."""

    agency_referral_id: str | None = Field(default=None, description="When it could be read from the body.")
    errors: list[FieldError]


class Problem(BaseModel):
    detail: str


def create_http_api(*, host: ServiceHost, keys: IntakeKeys, agencies: AgencyRegistry, max_body_bytes: int) -> FastAPI:
    """The FastAPI application; served by `HttpServer` inside the intake process."""
    api = FastAPI(
        title="reroute intake API", version="1",
        description="Agencies submit, update and follow referrals. Authenticate with `Authorization: Bearer <key>`, "
                    "the key `reroute agencies add` printed. The body is the referral contract in README.md.",
        redoc_url=None,
    )
    api.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    api.openapi = _openapi_with_referral(api)  # type: ignore[method-assign]
    api.state.agencies = agencies
    door = _HttpDoor(host, keys)
    refusals: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "Missing, wrong or revoked API key."},
        413: {"model": Problem, "description": f"Body over {max_body_bytes} bytes."},
        422: {"model": ReferralRefused, "description": "Not a valid referral; nothing stored."},
    }

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(field=".".join(str(p) for p in e["loc"][1:]), message=e["msg"]) for e in exc.errors()]
        return JSONResponse(ReferralRefused(errors=errors).model_dump(mode="json"), status_code=422)

    @api.post("/v1/referrals", status_code=202, response_model=ReferralReceived, responses=refusals,
              openapi_extra=_REFERRAL_BODY)
    async def submit_referral(request: Request, agency_id: Agency) -> JSONResponse:
        """Submit a referral. Submitting the same `agency_referral_id` again returns the same referral id."""
        decision = await door.decide(request, agency_id, await request.body(), is_update=False)
        return _answer(request, decision)

    @api.put("/v1/referrals/{agency_referral_id}", status_code=202, response_model=ReferralReceived,
             responses=refusals, openapi_extra=_REFERRAL_BODY)
    async def update_referral(agency_referral_id: str, request: Request, agency_id: Agency) -> JSONResponse:
        """Replace a referral you submitted (as referrals.updated does); an unknown id is refused."""
        data = await request.body()
        data, mismatch = _with_path_id(data, agency_referral_id)
        if mismatch is not None:
            return JSONResponse(ReferralRefused(agency_referral_id=agency_referral_id, errors=[mismatch])
                                .model_dump(mode="json"), status_code=422)
        decision = await door.decide(request, agency_id, data, is_update=True)
        return _answer(request, decision)

    @api.get("/v1/referrals/{referral_id}", name="referral_status", response_model=ReferralStatus,
             responses={401: refusals[401], 404: {"model": Problem, "description": "No such referral of yours."}})
    async def referral_status(referral_id: str, request: Request, agency_id: Agency) -> ReferralStatus:
        """Where your referral stands: received, assessed, scheduled (first session, mentor), waitlisted..."""
        with door.span(request, "GET /v1/referrals/{referral_id}", agency_id) as span:
            span.set_attribute("reroute.status_of", referral_id)  # not referral.id: polls stay out of its trace
            with host.engine.connect() as conn:
                row = conn.execute(
                    select(col(ReferralRecord.agency_referral_id), col(ReferralRecord.received_at),
                           col(ReferralRecord.revision))
                    .where(col(ReferralRecord.referral_id) == referral_id, col(ReferralRecord.agency_id) == agency_id)
                ).first()
            if row is None:  # another agency's referral is "not found" too, so ids cannot be probed
                span.set_attribute("http.response.status_code", 404)
                raise HTTPException(404, f"no referral '{referral_id}' of yours")
            status = await ask_status(host, referral_id=referral_id, agency_referral_id=row.agency_referral_id,
                                      received_at=as_utc(row.received_at), revision=row.revision)
            span.set_attribute("http.response.status_code", 200)
            span.set_attribute("reroute.outcome", status.status)
            return status

    return api


class _HttpDoor:
    """One HTTP submission → one `decide_submissions` call in its own transaction, under its own span."""

    def __init__(self, host: ServiceHost, keys: IntakeKeys) -> None:
        self._host = host
        self._keys = keys

    def span(self, request: Request, route: str, agency_id: str) -> Any:
        return self._host.tracer.start_as_current_span(
            f"intake {request.method} {route}", kind=trace.SpanKind.SERVER,
            context=extract_context(dict(request.headers)),
            attributes={"http.request.method": request.method, "http.route": route, "agency.id": agency_id},
        )

    async def decide(self, request: Request, agency_id: str, data: bytes, *, is_update: bool) -> Decision:
        route = "/v1/referrals/{agency_referral_id}" if is_update else "/v1/referrals"
        with self.span(request, route, agency_id) as span:
            submission = Submission(agency_id, data, f"http|{uuid.uuid4().hex}", is_update, span)
            subjects, keys = self._host.subjects, self._keys
            decide: Callable[..., Any] = lambda conn, now: decide_submissions(
                conn, [submission], now, subjects=subjects, keys=keys)
            try:
                decisions: list[Decision] = await self._host.transact(decide)
            except IntegrityError:  # another replica stored the same referral or person at this moment: look again
                decisions = await self._host.transact(decide)
            decision = decisions[0]
            span.set_attribute("http.response.status_code", 422 if decision.outcome == "rejected" else 202)
            return decision


def _answer(request: Request, decision: Decision) -> JSONResponse:
    if decision.outcome == "rejected":
        refused = ReferralRefused(agency_referral_id=decision.agency_referral_id, errors=decision.errors)
        return JSONResponse(refused.model_dump(mode="json"), status_code=422)
    assert decision.referral_id is not None and decision.agency_referral_id is not None
    url = str(request.url_for("referral_status", referral_id=decision.referral_id))
    received = ReferralReceived(
        referral_id=decision.referral_id, agency_referral_id=decision.agency_referral_id, outcome=decision.outcome,
        duplicate=decision.outcome == "duplicate", revision=decision.revision, status_url=url)
    return JSONResponse(received.model_dump(mode="json"), status_code=202, headers={"Location": url})


def _with_path_id(data: bytes, agency_referral_id: str) -> tuple[bytes, FieldError | None]:
    """PUT's body may leave out agency_referral_id (the URL has it); when given, the two must agree."""
    try:
        body = load_json(data)
    except NotJson:
        return data, None  # the shared validator says what is wrong with it
    if not isinstance(body, dict):
        return data, None
    if "agency_referral_id" not in body:
        return json.dumps({**body, "agency_referral_id": agency_referral_id}).encode(), None
    if body["agency_referral_id"] != agency_referral_id:
        return data, FieldError(field="agency_referral_id", message=(
            f"'{body['agency_referral_id']}' in the body is not '{agency_referral_id}' in the URL"))
    return data, None


def _openapi_with_referral(api: FastAPI) -> Callable[[], dict[str, Any]]:
    """The generated document plus the referral contract's JSON Schema as the request body's schema."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        doc = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
        referral = Referral.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(referral.pop("$defs", {}))
        referral["properties"]["indicators"]["items"] = {"anyOf": [
            {"type": "string", "description": "An indicator code."}, {"$ref": "#/components/schemas/Indicator"}]}
        schemas["Referral"] = referral
        api.openapi_schema = doc
        return doc

    return openapi
