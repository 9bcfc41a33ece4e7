"""JetStream plumbing: idempotent stream declaration and the batched consumer loop every service uses.

The hot path is a plain nats-py pull loop (see docs/performance.md): fetch up to a batch, run the
handler for the whole batch in ONE database transaction (inbox check, state, outbox), publish the outbox
rows with pipelined PubAcks, then ack. A failing batch is retried message by message, so one poison
message cannot hold the others back; after `max_deliver` attempts it goes to the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError
from opentelemetry import trace
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared import deadletters
from shared.db import DatabaseThread, is_unavailable
from shared.logs import about
from shared.outbox import OutboxRelay, Outgoing, add_to_outbox, describe, record_processed, seen
from shared.server_replies import SERVER_REPLY, is_server_reply
from shared.subjects import Subjects
from shared.telemetry import extract_context

if TYPE_CHECKING:
    from shared.metrics import ServiceMetrics

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseModel)


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be processed: dead-lettered at once, with this reason."""


@dataclass
class Delivery:
    """One inbound message inside a batch, with its processing span (`msg` is None for a replayed dead letter)."""

    subject: str
    data: bytes
    headers: dict[str, str]
    key: str
    span: trace.Span
    msg: Msg | None = None
    duplicate: bool = False
    """Set by `commit_batch` when the inbox had already processed this message (a redelivery after a crash)."""
    server_reply: bool = False
    """Set by `drop_if_server_reply`: one of the NATS server's own answers, acknowledged and counted, never processed."""

    @property
    def received(self) -> Msg:
        assert self.msg is not None, "only messages fetched from JetStream are acked"
        return self.msg


def drop_if_server_reply(d: Delivery) -> bool:
    """For a message that did not decode as its contract: whether it is one of the NATS server's own answers, which a
    client aimed at this subject by naming it as a reply subject (shared/server_replies.py). If so, it is marked, the
    handler leaves it out of its decisions, and the consumer acknowledges it, counts it and answers nothing: no one
    is told of a rejection or left a dead letter that no one caused. No contract we consume can read such an answer
    (tests/unit/test_server_replies.py), so asking only on a failed decode misses none and costs nothing otherwise."""
    d.server_reply = is_server_reply(d.data)
    return d.server_reply


def parse_events(model: type[E], batch: list[Delivery]) -> list[tuple[Delivery, E]]:
    """Decode internal events, leaving out the NATS server's own answers (`drop_if_server_reply`); any other message
    that does not match its contract is poison (dead-lettered with the reason)."""
    events: list[tuple[Delivery, E]] = []
    for d in batch:
        try:
            events.append((d, model.model_validate_json(d.data)))
        except ValidationError as exc:
            if drop_if_server_reply(d):
                continue
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
            raise PoisonMessage(f"not a valid {model.__name__}: {problems}") from exc
    return events


BatchHandler = Callable[[Connection, list[Delivery], datetime], list[Outgoing]]
"""Decide for a batch inside the open transaction; return the events to publish. Raise only on bugs."""


def message_key(msg: Msg) -> str:
    """Identity of an inbound message for idempotency: its Nats-Msg-Id, else its stream position."""
    msg_id = (msg.headers or {}).get("Nats-Msg-Id")
    if msg_id:
        return f"{msg.subject}|{msg_id}"
    meta = msg.metadata
    return f"seq|{meta.stream}|{meta.sequence.stream}"


ACK_WAIT_SECONDS = 10
"""A crashed replica's unacked batch is redelivered after this; batches take milliseconds."""
EXTEND_EVERY_SECONDS = 3.0
"""While a batch waits for the database, its ack deadline is extended this often (well inside ACK_WAIT)."""

SLOW_DATABASE_SECONDS = 10.0
"""A database call running this long is reported (a hung link, a lock held elsewhere): the replica is not ready."""


class Stopping(Exception):
    """The service is stopping while a batch waits for its database: the batch is left unacked (redelivered)."""


class BatchConsumer:
    """A durable pull consumer shared by every replica of a service.

    Failures are sorted by whose fault they are. A message that fails on its own spends one of its
    `max_deliver` attempts (a poison message all of them at once) and is then dead-lettered. A dependency
    that fails (the database unreachable or not answering, NATS without a stream leader or reconnecting)
    is nobody's message's fault: consumption pauses, the batch in hand is kept (its ack deadline extended),
    and the same batch is tried again once the dependency is back. The outage is logged once when it
    starts and once when it ends.
    """

    def __init__(
        self,
        *,
        service: str,
        js: JetStreamContext,
        database: DatabaseThread,
        relay: OutboxRelay,
        tracer: trace.Tracer,
        subjects: Subjects,
        stream: str,
        filter_subjects: list[str],
        durable: str,
        handler: BatchHandler,
        batch_size: int = 256,
        max_deliver: int = 5,
        seal: deadletters.Seal = bytes,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.service = service
        self._metrics = metrics
        self._js = js
        self._database = database
        self._engine = database.engine
        self._relay = relay
        self._tracer = tracer
        self._subjects = subjects
        self._stream = stream
        self._filters = filter_subjects
        self.durable = durable
        self._handler = handler
        self._batch_size = batch_size
        self._max_deliver = max_deliver
        self._seal = seal
        self.ready = asyncio.Event()
        self.last_progress = time.monotonic()
        """When the loop last fetched (messages or an empty answer) or finished a batch: liveness."""
        self.problem: str | None = None
        """What the consumer is waiting for, when a dependency is down (readiness); None when it is not."""
        self._problem_since = 0.0
        self.waiting_on_database = False
        """True while a batch waits for the database thread (a slow database is not a hung consumer)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Bind to the durable consumer (retrying while NATS cannot answer) and consume until stopped."""
        while not stop.is_set():
            try:
                sub = await self._bind()
            except Exception as exc:  # noqa: BLE001 - no leader yet, reconnecting: keep trying
                self._trouble(f"cannot set up consumer {self.durable} ({describe(exc)})")
                await _pause(stop, 1.0)
                continue
            self.ready.set()
            self._recovered()
            log.info("%s consuming %s as %s", self.service, ", ".join(self._filters), self.durable)
            try:
                await self._loop(sub, stop)
            finally:
                try:
                    await asyncio.wait_for(sub.unsubscribe(), timeout=2)  # else the drain at shutdown waits on it
                except Exception:  # noqa: BLE001, S110 - the connection is gone already
                    pass
            return

    async def _bind(self) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=self._batch_size * 4,
            filter_subjects=self._filters,  # one consumer, so a referral's submission and update keep their order
        )
        try:  # creates the consumer, or updates one made by an earlier version (the server allows most changes)
            await self._js.add_consumer(self._stream, config)
        except APIError as exc:  # a change the server cannot make in place: keep the consumer as it is
            if isinstance(exc, (ServiceUnavailableError, NotFoundError)):
                raise  # no leader yet, or the stream is not provisioned yet: try again
            log.error("%s: consumer %s keeps its earlier settings (%s); delete it to apply the new ones",
                      self.service, self.durable, exc.description)
        return await self._js.pull_subscribe_bind(durable=self.durable, stream=self._stream)

    async def _loop(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self._batch_size, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                self.last_progress = time.monotonic()  # idle is healthy
                self._recovered()
                continue  # nats-py can raise the builtin TimeoutError too (see docs/performance.md)
            except Exception as exc:  # noqa: BLE001 - no stream leader, reconnecting, closed: never let the loop die
                self.last_progress = time.monotonic()  # waiting on NATS is not being hung
                self._trouble(f"cannot fetch from {self._stream} ({describe(exc)})")
                await _pause(stop, 1.0)
                continue
            self.last_progress = time.monotonic()
            try:
                await self._process(msgs, stop)
            except Stopping:
                return
            except Exception:  # a bug: never let the loop die; messages not acked are redelivered
                log.exception("%s: unexpected failure processing a batch of %d", self.service, len(msgs))
            self.last_progress = time.monotonic()

    async def _process(self, msgs: Sequence[Msg], stop: asyncio.Event) -> None:
        deliveries = [self._delivery(m) for m in msgs]
        try:
            try:
                out = await self._commit_when_available(deliveries, stop)
            except IntegrityError:
                # Another replica committed some of these first (a redelivery after its ack deadline): a fresh
                # transaction sees its rows, and the inbox skips what it did. Not one message's fault.
                out = await self._commit_when_available(deliveries, stop)
        except Stopping:
            _end_spans(deliveries)
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below: one message's fault, or the batch's
            if len(deliveries) == 1:
                await self._failed(deliveries[0], exc)
                return
            log.warning("%s: batch of %d failed (%s); retrying one by one", self.service, len(deliveries),
                        describe(exc))
            for i, d in enumerate(deliveries):
                try:
                    single = await self._commit_when_available([d], stop)
                except Stopping:
                    _end_spans(deliveries[i:])
                    raise
                except Exception as single_exc:  # noqa: BLE001 - whatever breaks one message dead-letters it alone
                    await self._failed(d, single_exc)
                    continue
                self._count([d])
                await self._relay.publish(single)
                await _ack(d)
            return
        self._count(deliveries)
        await self._relay.publish(out)
        await _ack(*deliveries)

    def _count(self, deliveries: list[Delivery]) -> None:
        """Count the messages processed, and report the NATS server's answers the handler dropped unread."""
        dropped = [d for d in deliveries if d.server_reply]
        for d in dropped:
            d.span.set_attribute("reroute.outcome", SERVER_REPLY)
        if self._metrics is not None:
            self._metrics.processed(self.durable, [d for d in deliveries if not (d.duplicate or d.server_reply)],
                                    datetime.now(UTC))
            if dropped:
                self._metrics.dropped(self.durable, SERVER_REPLY, len(dropped))
        if dropped:
            log.warning("%s: dropped %d answer(s) of the NATS server on %s: a client named the subject as the reply "
                        "subject of its own message", self.service, len(dropped),
                        ", ".join(sorted({d.subject for d in dropped})))

    async def _commit_when_available(self, deliveries: list[Delivery], stop: asyncio.Event) -> list[Outgoing]:
        """Commit the batch; while the database is unavailable, keep the batch and try again."""
        wait = 0.5
        while True:
            try:
                out = await self._await_database(deliveries)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                problem = exc
            else:
                self._recovered()
                return out
            self.last_progress = time.monotonic()  # waiting on a dependency is not being hung
            self._trouble(f"database unavailable ({describe(problem)}); consumption paused, nothing is "
                          "dead-lettered for it")
            await self._extend(deliveries)
            await _pause(stop, wait)
            if stop.is_set():
                raise Stopping from problem
            wait = min(wait * 2, 5.0)

    async def _await_database(self, deliveries: list[Delivery]) -> list[Outgoing]:
        """Commit on the database thread. A database that does not answer (a hung link) is waited for,
        with the batch's ack deadline extended meanwhile, so it is not redelivered behind our back."""
        self.waiting_on_database = True
        commit = asyncio.ensure_future(self._database.run(lambda: self._commit(deliveries)))
        try:
            while True:
                done, _ = await asyncio.wait({commit}, timeout=EXTEND_EVERY_SECONDS)
                if done:
                    return commit.result()
                if (busy := self._database.busy_for()) > SLOW_DATABASE_SECONDS:
                    self._trouble(f"the database has not answered for {busy:.0f} s; waiting for it")
                await self._extend(deliveries)
        finally:
            self.waiting_on_database = False

    async def _extend(self, deliveries: list[Delivery]) -> None:
        """Tell JetStream the batch is still being worked on (resets its ack deadline)."""
        await _settle_each(d.received.in_progress for d in deliveries)

    def _trouble(self, problem: str) -> None:
        """Say once that a dependency is down (not once per message or per retry)."""
        if self.problem is None:
            self._problem_since = time.monotonic()
            log.warning("%s: %s: %s", self.service, self.durable, problem)
        self.problem = problem

    def _recovered(self) -> None:
        if self.problem is not None:
            log.warning("%s: %s: recovered after %.0f s (%s)", self.service, self.durable,
                        time.monotonic() - self._problem_since, self.problem)
            self.problem = None

    def _delivery(self, msg: Msg) -> Delivery:
        span = self._tracer.start_span(
            f"{self.service} process {msg.subject}",
            context=extract_context(msg.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": self.durable,
                "messaging.message.body.size": len(msg.data),
            },
        )
        return Delivery(msg.subject, msg.data, msg.headers or {}, message_key(msg), span, msg)

    def _commit(self, deliveries: list[Delivery]) -> list[Outgoing]:
        return commit_batch(self._engine, self._handler, deliveries, consumer=self.durable, relay=self._relay)

    async def _failed(self, d: Delivery, exc: Exception) -> None:
        """A message that fails on its own: retry later, or dead-letter it (at once when it is poison)."""
        delivered = d.received.metadata.num_delivered
        d.span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
        poison = isinstance(exc, PoisonMessage)
        context = about(span=d.span, referral_id=deadletters.referral_named(d.data))
        if poison:
            log.error("%s: message %s cannot be processed: %s", self.service, d.key, exc, extra=context)
        else:
            log.error("%s: message %s failed (delivery %d of %d)", self.service, d.key, delivered, self._max_deliver,
                      exc_info=exc, extra=context)
        if not poison and delivered < self._max_deliver:
            await _settle(d.received.nak(delay=min(2.0**delivered, 30.0)))
        else:
            await self._dead_letter(d, str(exc) if poison else
                                    f"{type(exc).__name__} after {delivered} deliveries; see the service log",
                                    delivered)
        d.span.end()

    async def _dead_letter(self, d: Delivery, reason: str, delivered: int) -> None:
        """Keep the message in this service's own store, then terminate it; a notice (no body) goes on the
        broker for anyone watching. If it cannot be kept, it is redelivered instead: never dropped."""
        reason = " ".join(reason.split())
        try:
            dead_letter_id = await self._database.run(lambda: self._keep(d, reason, delivered))
        except Exception as exc:  # noqa: BLE001 - kept later: the message comes back
            log.warning("%s: could not keep dead letter %s (%s); it will be redelivered", self.service, d.key,
                        describe(exc))
            await _settle(d.received.nak(delay=30.0))
            return
        await _settle(d.received.term())
        if self._metrics is not None:
            self._metrics.dead_lettered(self.durable)
        log.error("%s: dead-lettered %s as %s after %d deliveries: %s", self.service, d.key, dead_letter_id,
                  delivered, reason, extra=about(span=d.span, referral_id=deadletters.referral_named(d.data)))
        notice = {
            "Reroute-Dead-Letter-Id": dead_letter_id,
            "Reroute-Failed-Subject": d.subject,
            "Reroute-Failed-Service": self.service,
            "Reroute-Failed-Reason": reason[:500],
            "Nats-Msg-Id": f"dead:{dead_letter_id}",
        }
        try:
            await self._js.publish(self._subjects.dead_letter(self.service), b"", headers=notice, timeout=5)
        except Exception as exc:  # noqa: BLE001 - the record is kept; the notice is a courtesy
            log.warning("%s: dead letter %s kept, but its notice was not published (%s)", self.service,
                        dead_letter_id, describe(exc))

    def _keep(self, d: Delivery, reason: str, delivered: int) -> str:
        with self._engine.begin() as conn:
            return deadletters.record(conn, service=self.service, key=d.key, consumer=self.durable, subject=d.subject,
                                      headers=d.headers, body=d.data, seal=self._seal, reason=reason,
                                      deliveries=delivered, now=datetime.now(UTC))


def commit_batch(engine: Engine, handler: BatchHandler, deliveries: list[Delivery], *, consumer: str,
                 relay: OutboxRelay, also: Callable[[Connection, datetime], None] | None = None) -> list[Outgoing]:
    """One transaction: skip what the inbox has seen, decide for the rest, record them as processed, and
    write the events they cause to the outbox (with `also`, e.g. marking a dead letter replayed)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        done = seen(conn, (d.key for d in deliveries))
        fresh: list[Delivery] = []
        keys: set[str] = set(done)
        for d in deliveries:
            d.duplicate, d.server_reply = d.key in keys, False  # as found by this transaction, not an earlier try
            if d.duplicate:
                d.span.set_attribute("reroute.duplicate", True)
                continue
            keys.add(d.key)
            fresh.append(d)
        out = handler(conn, fresh, now) if fresh else []
        record_processed(conn, [d.key for d in fresh if not d.server_reply], consumer=consumer, now=now)
        add_to_outbox(conn, out, now=now)
        relay.record_outcomes(conn, now=now)
        if also is not None:
            also(conn, now)
    return out


SETTLE_SECONDS = 5.0
"""The bound on acking (or extending) a message, or a batch's messages together."""


async def _settle(call: Awaitable[object]) -> None:
    """Ack, nak, term or extend a message. If NATS is away the message is simply redelivered later, which the
    inbox makes harmless, so a failure here is no reason to stop."""
    try:
        await asyncio.wait_for(call, timeout=SETTLE_SECONDS)
    except Exception:  # noqa: BLE001, S110 - see above
        pass


async def _settle_each(calls: Iterable[Callable[[], Awaitable[object]]]) -> None:
    """`_settle` for many messages: each ack (or extension) is a write to the client's buffer, not a round trip, so
    they share one bound instead of a task and a timer each (which cost ten times the ack itself). One that fails is
    skipped, as `_settle` would, and the rest go on. The bound is also checked before each one: nats-py's write
    swallows the cancellation that ends one blocked on a stalled link, and the next would block again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS

    async def each() -> None:
        for call in calls:
            if loop.time() >= deadline:
                return  # the rest are redelivered, which the inbox makes harmless
            try:
                await call()
            except Exception:  # noqa: BLE001, S110 - see _settle
                pass

    await _settle(each())


async def _ack(*deliveries: Delivery) -> None:
    """Ack the messages (after their commit and publish), then end their spans."""
    await _settle_each(d.received.ack for d in deliveries)
    for d in deliveries:
        d.span.end()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


def _end_spans(deliveries: Sequence[Delivery]) -> None:
    for d in deliveries:
        d.span.set_attribute("reroute.abandoned", True)
        d.span.end()
