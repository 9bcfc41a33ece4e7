"""Events the console's live pages show as they happen: one NATS subscription per kind, fanned out to each open
page's queue; the page's server-sent events stream (text/event-stream) reads its queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from shared.contracts.risk import SafeguardingAlert
from shared.server_replies import is_server_reply

log = logging.getLogger(__name__)
QUEUE_SIZE = 100
"""Events kept for one page that does not read them (a stalled browser): later ones are dropped for it alone."""


class AlertFeed:
    """Safeguarding alerts as risk and scheduling raise them (`safeguarding.alert.<agency>`)."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[SafeguardingAlert]] = set()
        self._subscription: Subscription | None = None

    async def start(self, nc: Client, subject: str) -> None:
        self._subscription = await nc.subscribe(subject, cb=self._heard)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _heard(self, msg: Msg) -> None:
        if is_server_reply(msg.data):  # the server's answer, aimed here by a client as its reply subject: no alert
            return
        try:
            alert = SafeguardingAlert.model_validate_json(msg.data)
        except ValidationError:
            log.warning("a safeguarding alert on %s does not fit its contract; not shown live", msg.subject)
            return
        self.publish([alert])

    def publish(self, alerts: Iterable[SafeguardingAlert]) -> None:
        for alert in alerts:
            for queue in self._listeners:
                if queue.full():
                    continue
                queue.put_nowait(alert)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[SafeguardingAlert]]:
        queue: asyncio.Queue[SafeguardingAlert] = asyncio.Queue(QUEUE_SIZE)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
