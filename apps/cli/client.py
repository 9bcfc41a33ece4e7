"""The CLI's NATS client: request-reply to the services, with errors a person can act on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from shared.nats_auth import ADMIN, LocalCredentials
from shared.settings import CREDENTIALS_FILE, ServiceSettings
from shared.subjects import Subjects


class CliError(RuntimeError):
    """Something the person at the terminal can fix; printed without a traceback."""


class ServiceClient:
    def __init__(self, nc: Client, subjects: Subjects, url: str) -> None:
        self.nc = nc
        self.subjects = subjects
        self.url = url

    async def rpc(self, service: str, verb: str, payload: dict[str, Any] | None = None, *, timeout: float = 5) -> dict[str, Any]:
        subject = self.subjects.rpc(service, verb)
        try:
            reply = await self.nc.request(subject, json.dumps(payload or {}).encode(), timeout=timeout)
        except nats.errors.NoRespondersError:
            raise CliError(f"The {service} service is not running (no answer on {self.url}). Start it with `reroute up`.") from None
        except nats.errors.TimeoutError:
            raise CliError(f"The {service} service did not answer within {timeout:.0f} s.") from None
        data: dict[str, Any] = json.loads(reply.data)
        if "error" in data:
            raise CliError(f"{service}: {data['error']}")
        return data


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
