"""Intake's HTTP face for agencies: submit, update, withdraw and follow referrals with an API key.

Every submission goes through the same `decide_submissions` as the NATS door, in its own transaction with
its events in the outbox, under a span that carries the caller's trace context (W3C traceparent) when given.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import fastapi_offline
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.intake.agencies import AgencyRegistry, FailedAttempts
from services.intake.body_limit import BodySizeLimit
from services.intake.crypto import IntakeKeys
from services.intake.handlers import Decision, Kind, Submission, decide_submissions
from services.intake.referral_status import ReferralStatus, ask_status
from services.intake.settings import IntakeSettings
from services.intake.tables import ReferralRecord, as_utc
from services.intake.validation import NotJson, field_error, load_json
from shared.contracts.codes import WithdrawalReason
from shared.contracts.common import FieldError
from shared.contracts.intake import AGENCY_REFERRAL_ID_PATTERN, Referral, Withdrawal
from shared.db import reading
from shared.proxies import client_address
from shared.service import ServiceHost
from shared.telemetry import caller_links, extract_context, referral_trace

_REFERRAL_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Referral"}}}}}
_WITHDRAWAL_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Withdrawal"},
    "examples": {
        "consent withdrawn": {"value": {"agency_referral_id": "YOT/2026/17", "reason": "consent_withdrawn"}},
        "other, with a note": {"value": {"agency_referral_id": "YOT/2026/18", "reason": "other",
                                         "note": "Family declined the service after the first call."}},
    }}}}}
_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI's script and style sheet, from the fastapi-offline wheel: the try-it page works with no CDN in reach."""


_bearer = HTTPBearer(auto_error=False, description="Your agency's API key.")


async def _authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The agency whose active API key came with the request; else 401, or 429 once the client has failed too
    often (`FailedAttempts`); nothing is stored either way."""
    agencies: AgencyRegistry = request.app.state.agencies
    failures: FailedAttempts = request.app.state.failures
    client = client_address(request, request.app.state.trusted_proxies)
    retry_after = failures.retry_after(client)
    agency_id = await agencies.authenticate(credentials.credentials if credentials else None,
                                            allow_slow=retry_after is None)
    if agency_id is not None:
        return agency_id
    if retry_after is not None:
        raise HTTPException(429, f"too many failed API key attempts from your address: wait {retry_after} s, then "
                                 "send a valid `Authorization: Bearer <key>`", headers={"Retry-After": str(retry_after)})
    failures.failed(client)
    raise HTTPException(401, "missing, wrong or revoked API key: send `Authorization: Bearer <key>`",
                        headers={"WWW-Authenticate": "Bearer"})


Agency = Annotated[str, Depends(_authenticated)]
OurId = Annotated[str, PathParameter(
    min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$", description="Our id for the referral (`ref_…`).")]
YourReference = Annotated[str, Query(
    min_length=1, max_length=100, pattern=AGENCY_REFERRAL_ID_PATTERN,  # what no referral's id can be is refused here
    description="Your own id for the referral (its `agency_referral_id`): a query parameter, so that it may hold `/`.")]


class ReferralReceived(BaseModel):
    """The referral is stored (or was already): follow it at `status_url`."""

    referral_id: str = Field(description="Our id for the referral: the same for every repeat of your id.")
    agency_referral_id: str = Field(description="Your id for the referral.")
    outcome: Literal["accepted", "updated", "duplicate"] = Field(
        description="accepted (new), updated (changed by PUT), duplicate (the same as what we hold)")
    duplicate: bool = Field(description="True when nothing new was stored.")
    revision: int = Field(description="0 as first submitted; 1, 2, ... after each change.")
    status_url: str = Field(description="GET it for the referral's progress: a path (/v1/referrals/...), or a full "
                            "URL where the service is configured with its public address.")


class WithdrawalRecorded(BaseModel):
    """The withdrawal is recorded (or was already): the referral's sessions are cancelled and its case closed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "referral_id": "ref_3f1c0a9b2e4d5f60", "agency_referral_id": "YOT/2026/17", "outcome": "withdrawn",
        "duplicate": False, "reason": "consent_withdrawn", "withdrawn_at": "2026-12-07T10:15:00Z",
        "status_url": "/v1/referrals/ref_3f1c0a9b2e4d5f60"}]})

    referral_id: str = Field(description="Our id for the referral.")
    agency_referral_id: str = Field(description="Your id for the referral.")
    outcome: Literal["withdrawn", "already_withdrawn"] = Field(
        description="withdrawn (now), already_withdrawn (it was: nothing changed)")
    duplicate: bool = Field(description="True when nothing new was stored (already withdrawn).")
    reason: WithdrawalReason = Field(description="The reason recorded (the first one, when it was withdrawn already).")
    withdrawn_at: datetime = Field(description="When the withdrawal was first recorded.")
    status_url: str = Field(description="GET it: the status is `withdrawn` from now on.")


ErrorCode = Literal["invalid", "unauthorized", "not_found", "method_not_allowed", "too_large", "too_many_attempts"]
_CODES: dict[int, ErrorCode] = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
                                422: "invalid", 429: "too_many_attempts"}


class ErrorBody(BaseModel):
    """Every error answer carries `code` (for programs) and `message` (for people)."""

    code: ErrorCode = Field(description="invalid (422), unauthorized (401), not_found (404), method_not_allowed "
                                        "(405), too_large (413), too_many_attempts (429).")
    message: str = Field(description="What went wrong and what to do, in a sentence; never a value you sent.")


class ReferralRefused(ErrorBody):
    """Nothing was stored: one entry per problem, as on referrals.rejected."""

    agency_referral_id: str | None = Field(default=None, description="When it could be read from the body.")
    errors: list[FieldError]


class Problem(ErrorBody):
    """A refusal without field errors."""

    detail: str = Field(deprecated=True, description="The same as `message`, as version 1 sent it; to be removed.")


def _refused(agency_referral_id: str | None, errors: list[FieldError]) -> JSONResponse:
    message = "not a valid request: nothing stored; each entry of `errors` names a field and the rule it breaks"
    body = ReferralRefused(code="invalid", message=message, agency_referral_id=agency_referral_id, errors=errors)
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


def _parameter_error(error: Any) -> FieldError:
    """A query or path parameter's problem in the words of a body's (its location, `query`, is not part of the name)."""
    where, *_ = error["loc"]
    said = field_error({**error, "loc": error["loc"][1:]})
    if error["type"] == "missing" and where == "query":
        return FieldError(field=said.field, message=f"required: give it in the query (?{said.field}=...)")
    return said


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer of `status` in the shape every error answer has."""
    code = _CODES.get(status, "invalid")
    return JSONResponse({"code": code, "message": message, "detail": message}, status_code=status, headers=headers)


def create_http_api(*, host: ServiceHost, keys: IntakeKeys, agencies: AgencyRegistry, max_body_bytes: int) -> FastAPI:
    """The FastAPI application; served by `HttpServer` inside the intake process."""
    settings = host.settings
    if not isinstance(settings, IntakeSettings):
        raise TypeError("intake's HTTP API is built with intake's settings")
    public_url = settings.intake_public_url or ""
    api = FastAPI(
        title="reroute intake API", version="1",
        description="Agencies submit, update and follow referrals. Authenticate with `Authorization: Bearer <key>`, "
                    "the key `reroute agencies add` printed. The body is the referral contract in README.md.",
        servers=[{"url": public_url, "description": "This installation's public address."} if public_url else
                 {"url": "/", "description": "The address this document was fetched from."}],
        docs_url=None, redoc_url=None,
    )
    api.mount("/docs/assets", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=f"{api.title}: try it",
                                   swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs/assets/favicon.png")

    api.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    api.openapi = _openapi_with_referral(api)  # type: ignore[method-assign]
    api.state.agencies = agencies
    api.state.failures = FailedAttempts(settings.intake_auth_failures_per_minute)
    api.state.trusted_proxies = settings.intake_trusted_proxies
    api.state.public_url = public_url
    door = _HttpDoor(host, keys)
    refusals: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "Missing, wrong or revoked API key."},
        413: {"model": Problem, "description": f"Body over {max_body_bytes} bytes."},
        422: {"model": ReferralRefused, "description": "Not a valid referral or request; nothing stored."},
        429: {"model": Problem, "description": "Too many failed API key attempts from your address: wait the "
                                                "Retry-After seconds. A valid key is still served."},
    }

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _refused(None, [_parameter_error(e) for e in exc.errors()])

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 405 and request.method == "PUT" and request.url.path.startswith("/v1/referrals/"):
            message = "update a referral with `PUT /v1/referrals?agency_referral_id=<your id>` (docs/agency-changelog.md)"
        return problem(exc.status_code, message, headers=dict(exc.headers or {}))

    @api.post("/v1/referrals", status_code=202, response_model=ReferralReceived, responses=refusals,
              openapi_extra=_REFERRAL_BODY)
    async def submit_referral(request: Request, agency_id: Agency) -> JSONResponse:
        """Submit a referral. Submitting the same `agency_referral_id` again returns the same referral id."""
        decision = await door.decide(request, agency_id, await request.body(), kind="submitted")
        return _answer(request, decision)

    @api.put("/v1/referrals", status_code=202, response_model=ReferralReceived, responses=refusals,
             openapi_extra=_REFERRAL_BODY)
    async def update_referral(agency_referral_id: YourReference, request: Request, agency_id: Agency) -> JSONResponse:
        """Replace a referral you submitted (as referrals.updated does); an unknown id is refused. Your id goes in the
        query, where `/` is allowed (`?agency_referral_id=YOT%2F2026%2F17`); the body may leave it out."""
        data = await request.body()
        data, mismatch = _with_path_id(data, agency_referral_id)
        if mismatch is not None:
            return _refused(agency_referral_id, [mismatch])
        decision = await door.decide(request, agency_id, data, kind="updated")
        return _answer(request, decision)

    @api.post("/v1/withdrawals", status_code=202, response_model=WithdrawalRecorded, openapi_extra=_WITHDRAWAL_BODY,
              responses={**refusals, 404: {"model": Problem, "description": "No referral of yours with that "
                                                                           "agency_referral_id: nothing withdrawn."}})
    async def withdraw_referral(request: Request, agency_id: Agency) -> JSONResponse:
        """Withdraw a referral you submitted (as referrals.withdraw does), naming it by your own id with a coded
        reason: its future sessions are cancelled and its case closed; it takes no more updates. A safeguarding
        alert already raised about the young person stays open for the safeguarding lead. Withdrawing it again
        answers `already_withdrawn`; another agency's referral is `404`, like an unknown one."""
        decision = await door.decide(request, agency_id, await request.body(), kind="withdraw",
                                     route="/v1/withdrawals")
        if decision.outcome == "not_found":
            return problem(404, decision.errors[0].message)
        if decision.withdrawn is None:
            return _refused(decision.agency_referral_id, decision.errors)
        url = _status_url(request, decision.withdrawn.referral_id)
        w = decision.withdrawn
        recorded = WithdrawalRecorded(
            referral_id=w.referral_id, agency_referral_id=w.agency_referral_id, duplicate=w.duplicate,
            outcome="already_withdrawn" if w.duplicate else "withdrawn", reason=w.reason, withdrawn_at=w.withdrawn_at,
            status_url=url)
        return JSONResponse(recorded.model_dump(mode="json"), status_code=202, headers={"Location": url})

    @api.get("/v1/referrals/{referral_id}", name="referral_status", response_model=ReferralStatus,
             responses={401: refusals[401], 404: {"model": Problem, "description": "No such referral of yours."},
                        422: refusals[422], 429: refusals[429]})
    async def referral_status(referral_id: OurId, request: Request, agency_id: Agency) -> ReferralStatus:
        """Where your referral stands: received, assessed, scheduled (first session, mentor), waitlisted, withdrawn..."""
        with door.span(request, "/v1/referrals/{referral_id}", agency_id) as span:
            span.set_attribute("referral.id", referral_id)  # a poll is a trace of its own, linked to the referral's
            with reading(host.engine) as conn:
                row = conn.execute(
                    select(col(ReferralRecord.agency_referral_id), col(ReferralRecord.received_at),
                           col(ReferralRecord.revision), col(ReferralRecord.trace_context),
                           col(ReferralRecord.withdrawal_reason))
                    .where(col(ReferralRecord.referral_id) == referral_id, col(ReferralRecord.agency_id) == agency_id)
                ).first()
            if row is None:  # another agency's referral is "not found" too, so ids cannot be probed
                raise HTTPException(404, f"no referral '{referral_id}' of yours")
            for link in caller_links(referral_trace(row.trace_context), besides=extract_context(request.headers)):
                span.add_link(link.context)
            status = await ask_status(host, referral_id=referral_id, agency_referral_id=row.agency_referral_id,
                                      received_at=as_utc(row.received_at), revision=row.revision,
                                      withdrawal_reason=row.withdrawal_reason)
            span.set_attribute("http.response.status_code", 200)
            span.set_attribute("reroute.outcome", status.status)
            return status

    @api.get("/v1/referrals", response_model=ReferralStatus,
             responses={401: refusals[401], 404: {"model": Problem, "description": "No referral of yours with that id."},
                        422: refusals[422], 429: refusals[429]})
    async def referral_status_by_reference(agency_referral_id: YourReference, request: Request,
                                           agency_id: Agency) -> ReferralStatus:
        """Where your referral stands, found by your own id (`?agency_referral_id=YOT%2F2026%2F17`): the same answer
        as `GET /v1/referrals/{referral_id}`. Only your agency's referrals are searched."""
        with reading(host.engine) as conn:
            referral_id = conn.execute(
                select(col(ReferralRecord.referral_id))
                .where(col(ReferralRecord.agency_id) == agency_id,
                       col(ReferralRecord.agency_referral_id) == agency_referral_id)).scalar()
        if referral_id is None:  # another agency's reference is "not found" too
            raise HTTPException(404, "no referral of yours with that agency_referral_id")
        return await referral_status(referral_id, request, agency_id)

    return api


class _HttpDoor:
    """One HTTP submission → one `decide_submissions` call in its own transaction, under its own span."""

    def __init__(self, host: ServiceHost, keys: IntakeKeys) -> None:
        self._host = host
        self._keys = keys

    @contextmanager
    def span(self, request: Request, route: str, agency_id: str) -> Iterator[trace.Span]:
        """A server span named and described by the HTTP semantic conventions (`POST /v1/referrals`), in the
        caller's trace (W3C traceparent) when given; a 4xx answer is not an error of ours, a fault is."""
        route = getattr(request.scope.get("route"), "path", route)  # the template matched, whichever handler answers
        with self._host.tracer.start_as_current_span(
            f"{request.method} {route}", kind=trace.SpanKind.SERVER, context=extract_context(dict(request.headers)),
            record_exception=False, set_status_on_exception=False,
            attributes={"http.request.method": request.method, "http.route": route, "url.path": request.url.path,
                        "url.scheme": request.url.scheme, "agency.id": agency_id},
        ) as span:
            try:
                yield span
            except HTTPException as exc:
                span.set_attribute("http.response.status_code", exc.status_code)
                raise
            except Exception as exc:
                span.set_attributes({"http.response.status_code": 500, "error.type": type(exc).__qualname__})
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                raise

    async def decide(self, request: Request, agency_id: str, data: bytes, *, kind: Kind,
                     route: str = "/v1/referrals") -> Decision:  # an update names the referral in the query
        with self.span(request, route, agency_id) as span:
            submission = Submission(agency_id, data, f"http|{uuid.uuid4().hex}", kind, span)
            subjects, keys = self._host.subjects, self._keys
            base = request.app.state.public_url
            decide: Callable[..., Any] = lambda conn, now: decide_submissions(
                conn, [submission], now, subjects=subjects, keys=keys, status_base=base, tracer=self._host.tracer)
            try:
                decisions: list[Decision] = await self._host.transact(decide)
            except IntegrityError:  # another replica stored the same referral or person at this moment: look again
                decisions = await self._host.transact(decide)
            decision = decisions[0]
            status = {"rejected": 422, "not_found": 404}.get(decision.outcome, 202)
            span.set_attribute("http.response.status_code", status)
            return decision


def _status_url(request: Request, referral_id: str) -> str:
    """Never from the request's Host header, which the caller writes: a path, or the configured public URL."""
    base: str = request.app.state.public_url
    return base + str(request.app.url_path_for("referral_status", referral_id=referral_id))


def _answer(request: Request, decision: Decision) -> JSONResponse:
    outcome = decision.outcome
    if outcome not in ("accepted", "updated", "duplicate"):  # a submission or an update is refused, never not found
        return _refused(decision.agency_referral_id, decision.errors)
    assert decision.referral_id is not None and decision.agency_referral_id is not None
    url = _status_url(request, decision.referral_id)
    received = ReferralReceived(
        referral_id=decision.referral_id, agency_referral_id=decision.agency_referral_id, outcome=outcome,
        duplicate=outcome == "duplicate", revision=decision.revision, status_url=url)
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
            "differs from the agency_referral_id in the URL: send the same one, or leave it out of the body"))
    return data, None


def _openapi_with_referral(api: FastAPI) -> Callable[[], dict[str, Any]]:
    """The generated document plus the referral and withdrawal contracts' JSON Schemas as the request bodies'."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        doc = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes,
                          servers=api.servers)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in (Referral, Withdrawal):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        api.openapi_schema = doc
        return doc

    return openapi
