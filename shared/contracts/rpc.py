"""Request-reply on the wire: each endpoint a service answers on `reroute.rpc.<service>.<verb>`, declared once.

An `Endpoint` names its verb, the services that answer it, its request model and its reply model. The
service implements it in `services/<service>/rpc.py` (a typed request in, a typed reply out); the CLI and
the console call it through `ServiceClient.call`, which validates the reply into the model, so a renamed
field is a mypy error, not a KeyError at 2 a.m.

A reply is either the reply model or, when the service could not do what was asked, one error shape:

    {"error": {"code": "not_found", "message": "no assessment of R-... to review"}}

`code` is for programs to branch on; `message` is for the person who asked. No reply model has a field
called `error`, so the two never mix.

Replies and requests differ in what they forgive, so that replicas of two versions work side by side through a
rolling upgrade (README, *Upgrade*):

- a client reads a reply leniently (`decode_reply`): a field its model does not know, at any depth, is ignored, so
  a newer service may ADD a reply field and an older CLI, console or service still reads the reply. Give the new
  field a default, as a newer client reads an older service's reply too. Removing or renaming a field, or changing
  its type or meaning, still breaks older clients: add the new one beside it, and retire the old one a release
  after no client reads it (a renamed field that has a default breaks them silently: they read the default). A new
  value of an enum in a reply, or a new `ErrorCode`, is refused by an older client too (an error it cannot read
  still reaches the person as `internal` with its message). Never call a reply field `error`. Clients released before this rule (December 2026)
  refuse any reply field they do not know: add none while one of those may still run;
- a service reads a request strictly (`ServiceHost._answer`, `Contract`'s `extra="forbid"`): a field it does not
  know is refused as `invalid`, naming it, so nothing a caller means is silently dropped. A new request field
  reaches an older replica as a refusal, never as a half-done change: say so in the README's *Upgrade*.

The endpoints themselves are declared per service in `shared/contracts/{intake,risk,scheduling}_rpc.py`, the
safeguarding alerts risk and scheduling both keep in `shared/contracts/safeguarding_rpc.py`; the ones every service
answers (health, dead letters) are below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, Field, ValidationError

from shared.contracts.common import Contract
from shared.contracts.deadletters import (
    DeadLetterDetail,
    DeadLetterDiscardRequest,
    DeadLetterList,
    DeadLetterListRequest,
    DeadLetterReplayRequest,
    DeadLetterResults,
    DeadLetterShowRequest,
    Held,
    HeldRequest,
)

SERVICES = ("intake", "risk", "scheduling")


class Role(StrEnum):
    """What a person does in the organisation; each endpoint names the roles that may ask it (`Endpoint.roles`),
    and a person's NATS permissions are generated from that (shared/nats_auth.py)."""

    SCHEDULER = "scheduler"
    """Books mentors: the mentor registry, calendars, matching, sessions, the waitlist."""
    RISK_LEAD = "risk_lead"
    """Reviews tiers: overrides (a lowered tier needs a second risk lead), reviews due, the rules, the audit."""
    DSL = "dsl"
    """The designated safeguarding lead: assessments, reviews, a young person's first name for a stated purpose."""
    OPERATOR = "operator"
    """Keeps the services running: health, dead letters, referrals' status, submitting on an agency's behalf."""
    ADMIN = "admin"
    """Manages people, agencies and keys, and answers subject access and erasure requests."""
    DPO = "dpo"
    """The data protection officer: reads who looked at which young person's personal data, when and why (admins'
    look-ups too, so it is a role of its own)."""


ANY_ROLE = frozenset(Role)


class ErrorCode(StrEnum):
    """What kind of failure an error reply reports: a client branches on this, never on the message."""

    INVALID = "invalid"
    """The request does not fit the endpoint (a missing or malformed field); the message names it."""
    NOT_FOUND = "not_found"
    """What the request names (a referral, a mentor, an agency, a dead letter) does not exist."""
    REFUSED = "refused"
    """A rule refuses it (a lowered tier without a countersignature, a revoked agency, ...); the message says which."""
    UNAVAILABLE = "unavailable"
    """Something the service needs (its database, another service) does not answer; try again later."""
    INTERNAL = "internal"
    """A fault in the service; its log has the details (never sent over the wire)."""


class RpcError(Contract):
    code: ErrorCode
    message: str = Field(description="What went wrong, for a person to read and act on.")


class ErrorReply(Contract):
    """The one shape of every failed request."""

    error: RpcError


class ServiceError(Exception):
    """Raised by an endpoint (or by the client on an error reply): the request failed for a stated reason."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def reply(self) -> ErrorReply:
        return ErrorReply(error=RpcError(code=self.code, message=self.message))


_T = TypeVar("_T")


async def unless_not_found(question: Awaitable[_T]) -> _T | None:
    """The reply, or None when the service has no such thing (yet): a `not_found` error is an answer, not a fault."""
    try:
        return await question
    except ServiceError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return None
        raise


class NotFound(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, message)


class Refused(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.REFUSED, message)


class Invalid(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID, message)


def readable(exc: ValidationError) -> str:
    """A validation failure in one line: each field's path and what is wrong with it (never its value)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'the request'}: {e['msg']}" for e in exc.errors())


def decode_reply(endpoint: Endpoint[Req, Rep], data: bytes) -> Rep:
    """The reply as its model, ignoring fields the model does not know (a newer service's: see the module's
    docstring); an error reply is raised as `ServiceError` with its code and message.

    A reply is an error exactly when it is an object with an `error` key (no reply model has that field): decided by
    the key, not by which model fits, so that an error this version cannot read in full (a newer code) is still an
    error, never taken for a reply whose fields all have defaults."""
    if b'"error"' in data and isinstance(body := _json_or_none(data), dict) and "error" in body:
        raise _error_of(body["error"], endpoint.verb)
    try:
        return endpoint.reply.model_validate_json(data, extra="ignore")
    except ValidationError as exc:
        raise ServiceError(ErrorCode.INTERNAL, f"the reply to {endpoint.verb} does not fit its contract "
                                               f"({readable(exc)}): is a service of another version running?"
                           ) from None


def _json_or_none(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _error_of(error: object, verb: str) -> ServiceError:
    """The error an error reply reports; one this version cannot read (a newer code, no message) as `internal`,
    with its message when it has one."""
    try:
        failed = RpcError.model_validate(error, extra="ignore")
    except ValidationError:
        message = error.get("message") if isinstance(error, dict) else None
        said = f": {message}" if isinstance(message, str) and message else ""
        return ServiceError(ErrorCode.INTERNAL, f"{verb} failed with an error this version cannot read (is a service "
                                                f"of another version running?){said}")
    return ServiceError(failed.code, failed.message)


class Empty(Contract):
    """A request with nothing to say."""


Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
_ALL: list[tuple[str, Endpoint[BaseModel, BaseModel]]] = []


@dataclass(frozen=True, eq=False)
class Endpoint(Generic[Req, Rep]):
    """One request-reply endpoint: `reroute.rpc.<service>.<verb>` for each service in `services`."""

    verb: str
    request: type[Req]
    reply: type[Rep]
    summary: str
    services: tuple[str, ...] = field(default=SERVICES)
    roles: frozenset[Role] = field(default=frozenset())
    """The people who may ask it, by role, on `reroute.ask.<person id>.<service>.<verb>`; none: the services only
    (on `reroute.rpc.<service>.<verb>`). The NATS permissions and the README's role table come from this."""
    acts_as: str | None = None
    """The request field that records who asked (`asked_by`, `by`): the service sets it to the person the subject
    names, whatever the body says. Only a service may fill it in itself, passing on the person it acts for."""

    def __post_init__(self) -> None:
        if "error" in self.reply.model_fields:
            raise TypeError(f"{self.reply.__name__} may not have a field called error: it is the error shape's")
        if self.acts_as is not None and self.acts_as not in self.request.model_fields:
            raise TypeError(f"{self.verb}: {self.request.__name__} has no field {self.acts_as}")
        declared_in = sys._getframe(2).f_globals.get("__name__", "")  # the module whose Endpoint(...) made it
        _ALL.append((declared_in, self))  # type: ignore[arg-type]  # a registry of every declared endpoint

    def service(self, service: str | None) -> str:
        """The service to ask: the one given, else the only one that answers."""
        if service is None:
            if len(self.services) != 1:
                raise ValueError(f"{self.verb} is answered by {', '.join(self.services)}: say which to ask")
            return self.services[0]
        if service not in self.services:
            raise ValueError(f"{service} does not answer {self.verb}")
        return service


def all_endpoints() -> Iterator[Endpoint[BaseModel, BaseModel]]:
    """Every endpoint declared anywhere in shared/contracts: by module (rpc, intake, risk, safeguarding, scheduling),
    then in declaration order."""
    from shared.contracts import (  # noqa: F401 - importing declares them
        intake_rpc,
        risk_rpc,
        safeguarding_rpc,
        scheduling_rpc,
    )

    order = [__name__, *(f"shared.contracts.{m}_rpc" for m in ("intake", "risk", "safeguarding", "scheduling"))]
    # by module, then as declared: the documents and the role table must not depend on which module was imported first
    ranked = sorted(enumerate(_ALL), key=lambda i: (order.index(i[1][0]) if i[1][0] in order else len(order), i[0]))
    yield from (endpoint for _, (_, endpoint) in ranked)


class Health(Contract):
    """A replica's own view of its health."""

    service: str
    pid: int
    live: bool = Field(description="The process is working: restart it when false.")
    ready: bool = Field(description="Live, and NATS, the database and the outbox all work.")
    problems: list[str] = Field(description="What is wrong, in words, when not live or not ready.")
    http_url: str | None = Field(default=None, description="Where its HTTP API listens, when it has one.")
    ops_url: str | None = Field(default=None, description="Where its probes (/healthz, /readyz) and /metrics are "
                                "served, once started (REROUTE_OPS_PORT).")


class ConsumerFigures(Contract):
    """One durable consumer of the service: its backlog as JetStream reports it, and what this replica did."""

    durable: str
    stream: str
    pending: int | None = Field(description="Messages in the stream the consumer has not had yet (JetStream "
                                "consumer info, read as asked); None when NATS did not say.")
    ack_pending: int | None = Field(description="Delivered and not acknowledged yet (the same consumer info).")
    redelivered: int | None = Field(description="Delivered more than once and not acknowledged yet.")
    processed: int = Field(description="Messages this replica committed since it started.")
    processed_last_minute: int = Field(description="...of which in the last 60 seconds.")


class ServiceStatistics(Contract):
    """What one replica says of itself and of its service's backlog: the figures its /metrics exports, as of asking."""

    health: Health
    started_at: datetime
    asked_at: datetime
    consumers: list[ConsumerFigures]
    published: int = Field(description="Events NATS confirmed from this replica since it started.")
    published_last_minute: int
    outbox_backlog: int | None = Field(description="Events in the outbox not yet confirmed by NATS (its database); "
                                       "None when the database did not answer.")
    outbox_oldest_unsent_seconds: float | None = None
    outbox_parked: int | None = Field(description="Events NATS refused for good, parked in the outbox.")
    dead_letters_open: int | None = Field(description="Dead letters kept and not yet replayed or discarded.")


class ReferralIds(Contract):
    referral_ids: list[str] = Field(max_length=1000)


class PersonalData(Contract):
    """Everything one service holds about some referrals (a subject access request)."""

    service: str
    data: dict[str, object]


class Erased(Contract):
    """What one service erased, counted by kind (anonymous counts stay)."""

    service: str
    erased: dict[str, int]


_OPERATOR = frozenset({Role.OPERATOR})
CASEWORK = frozenset({Role.SCHEDULER, Role.RISK_LEAD, Role.DSL, Role.OPERATOR})
"""Everyone who follows a referral (`reroute status`): ids, dates, tiers and bookings, never a name."""

PING = Endpoint("ping", Empty, Health, "Liveness and readiness of the replica that answers, with what is wrong.",
                roles=_OPERATOR)
STATISTICS = Endpoint("statistics", Empty, ServiceStatistics,
                      "The answering replica's health and throughput, its consumers' backlog (JetStream consumer "
                      "info), its outbox and open dead letters, as of asking.", roles=_OPERATOR)
DEAD_LETTERS = Endpoint("deadletters.list", DeadLetterListRequest, DeadLetterList,
                        "This service's dead letters, newest first, with the open ones counted by reason.",
                        roles=_OPERATOR)
DEAD_LETTER = Endpoint("deadletters.show", DeadLetterShowRequest, DeadLetterDetail,
                       "One dead letter with its headers; its body only when asked for (and that is logged).",
                       roles=_OPERATOR, acts_as="asked_by")
HELD = Endpoint("deadletters.held", HeldRequest, Held,
                "Which of these referrals have a message this service set aside (held for review).", roles=CASEWORK)
REPLAY = Endpoint("deadletters.replay", DeadLetterReplayRequest, DeadLetterResults,
                  "Run each through its consumer's handler once (its cause fixed); events are published once.",
                  roles=_OPERATOR, acts_as="asked_by")
DISCARD = Endpoint("deadletters.discard", DeadLetterDiscardRequest, DeadLetterResults,
                   "Set one aside for good, with the reason and who decided.", roles=_OPERATOR, acts_as="asked_by")
EXPORT_REFERRALS = Endpoint("person.export", ReferralIds, PersonalData,
                            "Everything this service holds about these referrals (a subject access request).",
                            services=("risk", "scheduling"), roles=frozenset({Role.ADMIN}))
ERASE_REFERRALS = Endpoint("person.erase", ReferralIds, Erased,
                           "Erase these referrals irreversibly, keeping anonymous counts only.",
                           services=("risk", "scheduling"), roles=frozenset({Role.ADMIN}))
ERASE_SPANS = Endpoint("spans.erase", ReferralIds, Erased,
                       "Erase every span of these referrals' traces (and of the callers' traces linked to them) from "
                       "the console's span store and the span files beside it; erased.spans counts them.",
                       services=("console",), roles=frozenset({Role.ADMIN}))
