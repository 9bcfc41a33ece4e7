"""JetStream plumbing: idempotent stream declaration and the batched consumer loop every service uses.

The hot path is a plain nats-py pull loop (see docs/performance.md): fetch up to a batch, run the
handler for the whole batch in ONE database transaction (inbox check, state, outbox), publish the outbox
rows with pipelined PubAcks, then ack. A failing batch is retried message by message, so one poison
message cannot hold the others back; after `max_deliver` attempts it goes to the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError
from opentelemetry import trace
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine

from shared.outbox import OutboxRelay, Outgoing, add_to_outbox, record_processed, seen
from shared.subjects import DUPLICATE_WINDOW_SECONDS, Subjects
from shared.telemetry import extract_context

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseModel)


async def ensure_streams(js: JetStreamContext, subjects: Subjects) -> None:
    """Declare every stream with the same settings from every service, so no start-up order drifts them."""
    for spec in subjects.streams():
        config = StreamConfig(
            name=spec.name,
            subjects=spec.subjects,
            storage=StorageType.FILE,
            max_age=spec.max_age_days * 86_400,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be processed: dead-lettered at once, with this reason."""


@dataclass
class Delivery:
    """One inbound message inside a batch, with its processing span."""

    msg: Msg
    key: str
    span: trace.Span

    @property
    def subject(self) -> str:
        return self.msg.subject

    @property
    def data(self) -> bytes:
        return self.msg.data

    @property
    def headers(self) -> dict[str, str]:
        return self.msg.headers or {}


def parse_event(model: type[E], d: Delivery) -> E:
    """Decode an internal event; one that does not match its contract is poison (dead-lettered with the reason)."""
    try:
        return model.model_validate_json(d.data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise PoisonMessage(f"not a valid {model.__name__}: {problems}") from exc


BatchHandler = Callable[[Connection, list[Delivery], datetime], list[Outgoing]]
"""Decide for a batch inside the open transaction; return the events to publish. Raise only on bugs."""


def message_key(msg: Msg) -> str:
    """Identity of an inbound message for idempotency: its Nats-Msg-Id, else its stream position."""
    msg_id = (msg.headers or {}).get("Nats-Msg-Id")
    if msg_id:
        return f"{msg.subject}|{msg_id}"
    meta = msg.metadata
    return f"seq|{meta.stream}|{meta.sequence.stream}"


class BatchConsumer:
    """A durable pull consumer shared by every replica of a service."""

    def __init__(
        self,
        *,
        service: str,
        js: JetStreamContext,
        engine: Engine,
        relay: OutboxRelay,
        tracer: trace.Tracer,
        subjects: Subjects,
        stream: str,
        filter_subjects: list[str],
        durable: str,
        handler: BatchHandler,
        batch_size: int = 256,
        max_deliver: int = 5,
    ) -> None:
        self.service = service
        self._js = js
        self._engine = engine
        self._relay = relay
        self._tracer = tracer
        self._subjects = subjects
        self._stream = stream
        self._filters = filter_subjects
        self._durable = durable
        self._handler = handler
        self._batch_size = batch_size
        self._max_deliver = max_deliver
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=10,  # a crashed replica's unacked batch is redelivered after this; batches take milliseconds
            max_ack_pending=self._batch_size * 4,
            filter_subjects=self._filters,  # one consumer, so a referral's submission and update keep their order
        )
        try:  # creates the consumer, or updates one made by an earlier version (the server allows most changes)
            await self._js.add_consumer(self._stream, config)
        except APIError as exc:  # a change the server cannot make in place: keep going with the consumer as it is
            log.error("%s: consumer %s keeps its earlier settings (%s); delete it to apply the new ones",
                      self.service, self._durable, exc.description)
        sub = await self._js.pull_subscribe_bind(durable=self._durable, stream=self._stream)
        self.ready.set()
        log.info("%s consuming %s as %s", self.service, ", ".join(self._filters), self._durable)
        try:
            await self._loop(sub, stop)
        finally:
            await sub.unsubscribe()  # else the connection's drain at shutdown waits on it forever

    async def _loop(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self._batch_size, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # nats-py can raise the builtin TimeoutError too (see docs/performance.md)
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError, nats.errors.NoRespondersError):
                await asyncio.sleep(0.5)
                continue
            try:
                await self._process(msgs)
            except Exception:  # never let the loop die; messages not acked are redelivered
                log.exception("%s: unexpected failure processing a batch of %d", self.service, len(msgs))

    async def _process(self, msgs: Sequence[Msg]) -> None:
        deliveries = [self._delivery(m) for m in msgs]
        try:
            out = self._commit(deliveries)
        except Exception as exc:
            if len(deliveries) == 1:
                await self._failed(deliveries[0], exc)
                return
            log.warning("%s: batch of %d failed; retrying one by one", self.service, len(deliveries), exc_info=True)
            for d in deliveries:
                try:
                    single = self._commit([d])
                except Exception as single_exc:  # noqa: BLE001 - whatever breaks one message dead-letters it alone
                    await self._failed(d, single_exc)
                    continue
                await self._relay.publish(single)
                await d.msg.ack()
                d.span.end()
            return
        await self._relay.publish(out)
        for d in deliveries:
            await d.msg.ack()
            d.span.end()

    def _delivery(self, msg: Msg) -> Delivery:
        span = self._tracer.start_span(
            f"{self.service} process {msg.subject}",
            context=extract_context(msg.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": self._durable,
                "messaging.message.body.size": len(msg.data),
            },
        )
        return Delivery(msg=msg, key=message_key(msg), span=span)

    def _commit(self, deliveries: list[Delivery]) -> list[Outgoing]:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            done = seen(conn, (d.key for d in deliveries))
            fresh: list[Delivery] = []
            keys: set[str] = set(done)
            for d in deliveries:
                if d.key in keys:
                    d.span.set_attribute("reroute.duplicate", True)
                    continue
                keys.add(d.key)
                fresh.append(d)
            out = self._handler(conn, fresh, now) if fresh else []
            record_processed(conn, [d.key for d in fresh], consumer=self._durable, now=now)
            add_to_outbox(conn, out, now=now)
            self._relay.mark_sent(conn, now=now)
        return out

    async def _failed(self, d: Delivery, exc: Exception) -> None:
        """A message that fails on its own: retry later, or dead-letter it (at once when it is poison)."""
        delivered = d.msg.metadata.num_delivered
        d.span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
        poison = isinstance(exc, PoisonMessage)
        if poison:
            log.error("%s: message %s cannot be processed: %s", self.service, d.key, exc)
        else:
            log.error("%s: message %s failed (delivery %d of %d)", self.service, d.key, delivered, self._max_deliver,
                      exc_info=exc)
        if not poison and delivered < self._max_deliver:
            await d.msg.nak(delay=min(2.0**delivered, 30.0))
        else:
            reason = str(exc) if poison else f"{type(exc).__name__} after {delivered} deliveries; see the service log"
            headers = {
                **d.headers,
                "Reroute-Failed-Subject": d.subject,
                "Reroute-Failed-Service": self.service,
                "Reroute-Failed-Reason": " ".join(reason.split())[:500],
                "Nats-Msg-Id": f"dead:{d.key}",
            }
            try:
                await self._js.publish(self._subjects.dead_letter(self.service), d.data, headers=headers)
                await d.msg.term()
                log.error("%s: dead-lettered %s after %d deliveries", self.service, d.key, delivered)
            except Exception:
                log.exception("%s: could not dead-letter %s; it will be redelivered", self.service, d.key)
                await d.msg.nak(delay=30.0)
        d.span.end()
