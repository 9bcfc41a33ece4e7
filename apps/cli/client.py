"""The CLI's NATS client: request-reply to the services, with errors a person can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from pydantic import BaseModel

from shared.contracts.rpc import Endpoint, ServiceError, decode_reply
from shared.nats_auth import ADMIN, LocalCredentials
from shared.settings import CREDENTIALS_FILE, ServiceSettings
from shared.subjects import Subjects

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


class CliError(RuntimeError):
    """Something the person at the terminal can fix; printed without a traceback."""


class ServiceClient:
    """Asks the services over NATS request-reply; every reply is validated into its contract's model."""

    def __init__(self, nc: Client, subjects: Subjects, url: str) -> None:
        self.nc = nc
        self.subjects = subjects
        self.url = url

    async def call(self, endpoint: Endpoint[Req, Rep], request: Req, *, service: str | None = None,
                   timeout: float = 5) -> Rep:
        """The typed reply; a service's refusal is raised as `ServiceError` (its code and message), no answer
        as `CliError` saying what to do."""
        asked = endpoint.service(service)
        try:
            reply = await self.nc.request(self.subjects.rpc(asked, endpoint.verb), request.model_dump_json().encode(),
                                          timeout=timeout)
        except nats.errors.NoRespondersError:
            raise CliError(f"The {asked} service is not running (no answer on {self.url}). Start it with `reroute "
                           "up`.") from None
        except nats.errors.TimeoutError:
            raise CliError(f"The {asked} service did not answer within {timeout:.0f} s.") from None
        try:
            return decode_reply(endpoint, reply.data)
        except ServiceError as exc:
            raise ServiceError(exc.code, f"{asked}: {exc.message}") from None


def operator_url(settings: ServiceSettings) -> str:
    """NATS_URL as given; else the local server `reroute up` started, as its operator user."""
    url = settings.resolved_nats_url()
    creds = settings.data_dir / CREDENTIALS_FILE
    if settings.nats_url or not creds.exists():
        return url
    return LocalCredentials.load_or_create(creds).url(ADMIN, url)


@asynccontextmanager
async def connect(settings: ServiceSettings) -> AsyncIterator[ServiceClient]:
    url = operator_url(settings)
    try:
        nc = await nats.connect(url, max_reconnect_attempts=1, connect_timeout=3, reconnect_time_wait=0.2,
                                allow_reconnect=False, name="reroute-cli")
    except (OSError, TimeoutError, nats.errors.Error):
        shown = url.split("@")[-1]
        raise CliError(f"Cannot reach NATS at {shown}. Is `reroute up` running (or NATS_URL right)?") from None
    try:
        yield ServiceClient(nc, Subjects(settings.namespace), url.split("@")[-1])
    finally:
        await nc.close()
