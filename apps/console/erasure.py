"""The console's one request-reply endpoint: `spans.erase` (shared/contracts/rpc.py `ERASE_SPANS`), which
`reroute person erase` asks so that erasure reaches the console's span store wherever the console runs (its own
volume in compose or Kubernetes), not only a span store in the CLI's data dir.

It is asked on `reroute.ask.<person>.console.spans.erase`, which NATS lets only the people whose roles may erase
publish (shared/nats_auth.py, from the endpoint's roles), and on `reroute.rpc.console.spans.erase` (no user may
publish there; a namespaced copy without users uses it). Replicas share it as the queue group `console`."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from shared.contracts.rpc import ERASE_SPANS, Erased, ErrorCode, Invalid, ReferralIds, ServiceError, readable
from shared.nats_auth import unanswerable
from shared.span_store import SpanStore
from shared.subjects import Subjects

log = logging.getLogger(__name__)
CONSOLE = "console"


class SpanErasure:
    """Answers `spans.erase` from the console's span store."""

    def __init__(self, store: SpanStore) -> None:
        self.store = store
        self._subscriptions: list[Subscription] = []

    @staticmethod
    def subjects(subjects: Subjects) -> list[str]:
        """Where it answers (the AsyncAPI document names them)."""
        return [subjects.rpc(CONSOLE, ERASE_SPANS.verb), subjects.ask("*", CONSOLE, ERASE_SPANS.verb)]

    async def start(self, nc: Client, subjects: Subjects) -> None:
        for subject in self.subjects(subjects):
            self._subscriptions.append(await nc.subscribe(subject, queue=CONSOLE, cb=self._asked))
        await nc.flush()  # subscribed at the server before anyone is told the console runs

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()

    async def _asked(self, msg: Msg) -> None:
        if why := unanswerable(msg.reply):  # as the services: only the asker's inbox gets an answer
            log.warning("console: %s: %s", ERASE_SPANS.verb, why)
            return
        await msg.respond(await self.answer(msg.data))

    async def answer(self, body: bytes) -> bytes:
        """The reply to one request's body: what was erased, or the error shape."""
        try:
            request = ReferralIds.model_validate_json(body or b"{}")
        except ValidationError as exc:
            return Invalid(f"{ERASE_SPANS.verb}: {readable(exc)}").reply().model_dump_json().encode()
        try:
            gone = await asyncio.to_thread(self.store.erase, request.referral_ids)
        except Exception as exc:
            log.exception("console: %s failed", ERASE_SPANS.verb)
            error = ServiceError(ErrorCode.INTERNAL, f"the console could not erase the spans ({type(exc).__name__}); "
                                                     "its log has the details")
            return error.reply().model_dump_json().encode()
        log.info("span store: erased %d spans of %d referrals", gone, len(request.referral_ids))
        erased = Erased(service=CONSOLE, erased={"referrals": len(request.referral_ids), "spans": gone})
        return erased.model_dump_json().encode()
