"""The console's NATS client: asks the services in the name of the person logged in, over the typed request-reply
contracts (shared/contracts), and hears the events its live pages show.

The console's NATS user may ask any request a role may ask, in anyone's name (shared/nats_auth.py `console_user`),
so this is where a person's roles are checked before anything is sent: `ask` refuses a request none of their roles
may make. The services then record the person the subject names (`reroute.ask.<person>.<service>.<verb>`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from pydantic import BaseModel

from apps.console.settings import ConsoleSettings
from shared.contracts.intake_rpc import WHOAMI, WhoAmIRequest
from shared.contracts.rpc import Endpoint, ErrorCode, Role, ServiceError, decode_reply
from shared.subjects import Subjects

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Person:
    """Someone logged in to the console, with the roles intake gives them now."""

    person_id: str
    roles: frozenset[Role]

    def may(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)


class NotYours(ServiceError):
    """The person's roles do not allow this request (said before anything is sent)."""

    def __init__(self, person: Person, endpoint: Endpoint[BaseModel, BaseModel]) -> None:
        needs = ", ".join(sorted(endpoint.roles)) or "none: only the services ask it"
        super().__init__(ErrorCode.REFUSED, f"{person.person_id} may not ask {endpoint.verb}; the roles that may: "
                                            f"{needs}")


class ServicesClient:
    """Request-reply to the services for the people logged in, and the console's own requests (log-in)."""

    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self.nc = nc
        self.subjects = subjects

    async def ask(self, person: Person, endpoint: Endpoint[Req, Rep], request: Req, *, service: str | None = None,
                  timeout: float = 5) -> Rep:
        """`request` in `person`'s name: refused here unless one of their roles may ask it."""
        if not person.may(endpoint.roles):
            raise NotYours(person, endpoint)  # type: ignore[arg-type]
        asked = endpoint.service(service)
        return await self._request(self.subjects.ask(person.person_id, asked, endpoint.verb), endpoint, request,
                                   asked, timeout)

    async def call(self, endpoint: Endpoint[Req, Rep], request: Req, *, timeout: float = 5) -> Rep:
        """One of the requests only the console may ask (shared/contracts/intake_rpc.py `CONSOLE_ONLY`)."""
        asked = endpoint.service(None)
        return await self._request(self.subjects.rpc(asked, endpoint.verb), endpoint, request, asked, timeout)

    async def whoami(self, person_id: str) -> Person | None:
        """The person and their roles as intake has them now; None when they are not (or no longer) a person."""
        try:
            me = await self._request(self.subjects.ask(person_id, "intake", WHOAMI.verb), WHOAMI, WhoAmIRequest(),
                                     "intake", 5)
        except ServiceError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
        return Person(me.person_id, frozenset(me.roles))

    async def _request(self, subject: str, endpoint: Endpoint[Req, Rep], request: Req, service: str,
                       timeout: float) -> Rep:
        try:
            reply = await self.nc.request(subject, request.model_dump_json().encode(), timeout=timeout)
        except nats.errors.NoRespondersError:
            raise ServiceError(ErrorCode.UNAVAILABLE, f"the {service} service is not running; try again in a "
                                                      "minute") from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise ServiceError(ErrorCode.UNAVAILABLE, f"the {service} service did not answer within {timeout:g} s; "
                                                      "try again in a minute") from None
        return decode_reply(endpoint, reply.data)


async def connect(settings: ConsoleSettings) -> Client:
    """The console's own NATS connection (user `console` on a server with users), reconnecting for ever."""
    async def said(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    return await nats.connect(settings.nats_servers(), name="reroute-console", inbox_prefix=settings.inbox_prefix,
                              max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=said)

