"""Transactional outbox and inbox: a state change and the events it causes commit together.

Handlers add `Outgoing` messages in the same transaction as their state; the relay publishes them with
`Nats-Msg-Id` = event id (so the stream drops a re-publish) and marks them sent, or parked when NATS refuses one
for good (too large), so that it never holds back the rest. An inbox row per processed inbound message makes every
consumer idempotent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import nats.errors
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import APIError, NoStreamResponseError
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlmodel import Field, SQLModel, col

from shared.contracts.common import Event
from shared.db import DatabaseThread
from shared.logs import about

log = logging.getLogger(__name__)
_propagator = TraceContextTextMapPropagator()


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"

    event_id: str = Field(primary_key=True, max_length=200)
    subject: str = Field(max_length=300)
    payload: bytes
    headers: str = Field(description="JSON object of NATS headers, including traceparent.")
    created_at: datetime = Field(index=True)
    sent_at: datetime | None = Field(default=None, index=True)
    parked_at: datetime | None = Field(
        default=None, index=True, description="When NATS refused it for good; a parked row is never published again."
    )
    parked_reason: str | None = Field(default=None, max_length=1000, description="Why NATS refused it.")


class InboxRow(SQLModel, table=True):
    __tablename__ = "inbox"

    message_key: str = Field(primary_key=True, max_length=400)
    consumer: str = Field(max_length=100)
    processed_at: datetime


@dataclass(frozen=True)
class Outgoing:
    """One event to publish once the transaction that caused it commits."""

    event_id: str
    subject: str
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)


def outgoing(event: Event, subject: str, *, span: trace.Span | None = None, payload: str | None = None) -> Outgoing:
    """Serialise an event (unless given its `payload`, `event.model_dump_json()` done already), carrying the trace
    context of `span` (or the current one) on its headers."""
    headers: dict[str, str] = {"content-type": "application/json"}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _propagator.inject(headers, context=ctx)
    return Outgoing(event.event_id, subject, (payload or event.model_dump_json()).encode(), headers)


def add_to_outbox(conn: Connection, messages: Sequence[Outgoing], *, now: datetime) -> None:
    if not messages:
        return
    existing = set(
        conn.execute(
            select(col(OutboxRow.event_id)).where(col(OutboxRow.event_id).in_([m.event_id for m in messages]))
        ).scalars()
    )
    rows = [
        {
            "event_id": m.event_id,
            "subject": m.subject,
            "payload": m.payload,
            "headers": json.dumps(m.headers),
            "created_at": now,
            "sent_at": None,
        }
        for m in messages
        if m.event_id not in existing
    ]
    if rows:
        conn.execute(insert(OutboxRow), rows)


def seen(conn: Connection, keys: Iterable[str]) -> set[str]:
    """Which of these inbound message keys were processed already."""
    keys = list(keys)
    if not keys:
        return set()
    stmt = select(col(InboxRow.message_key)).where(col(InboxRow.message_key).in_(keys))
    return set(conn.execute(stmt).scalars())


def record_processed(conn: Connection, keys: Sequence[str], *, consumer: str, now: datetime) -> None:
    if keys:
        conn.execute(insert(InboxRow), [{"message_key": k, "consumer": consumer, "processed_at": now} for k in keys])


REFUSED_FOR_GOOD = {10054: "the stream's maximum message size"}
"""JetStream PubAck error codes that publishing the same message again can never turn into a PubAck (10054:
"message size exceeds maximum allowed"). Any other error is taken as transient and retried."""


class OutboxRelay:
    """Publishes outbox rows: right after each commit, and in a sweep for anything left behind.

    Each row is published as its own JetStream request, all of them in flight at once (pipelined, `PubAcks`), and
    each row's PubAck or error is handled on its own; every wait is bounded (`ack_timeout`) and no lock is held
    across it. A row that is not confirmed (connection lost, server restarting, stream without a leader) is
    simply left unsent, and the sweep publishes it again with the same `Nats-Msg-Id`, which the stream
    acknowledges as a duplicate if the first copy was stored. A row NATS refuses for good (larger than the
    server's `max_payload` or the stream's maximum message size) is parked: kept in the outbox with why and
    when, logged once, listed with the dead letters, and never again in the way of the rows behind it.

    Not `publish_async`: nats-py 2.16 never resolves nor fails its future when the PubAck is an error (it
    raises inside its own reply callback, a traceback in the log every sweep) or was in flight when the
    connection dropped (../shared/reliability-notes.md).
    """

    def __init__(self, database: DatabaseThread, js: JetStreamContext, *, sweep_seconds: float = 1.0,
                 ack_timeout: float = 5.0, on_published: Callable[[Sequence[Outgoing]], None] | None = None) -> None:
        self._on_published = on_published
        """Told of the events NATS confirmed (metrics count them)."""
        self._engine = database.engine
        self._database = database
        # publish() adds on the event loop, record_outcomes() takes on the database thread
        self._outcomes_lock = threading.Lock()
        self._js = js
        self._sweep_seconds = sweep_seconds
        self._ack_timeout = ack_timeout
        self._sent: list[str] = []
        self._parked: list[tuple[str, str, datetime]] = []  # event id, why, when
        self.oldest_unsent_age: float = 0.0
        """Seconds since the oldest unsent (and not parked) row was written, as of the last sweep (0: none)."""
        self._failing_since: float | None = None
        self._pubacks: PubAcks | None = None

    async def publish(self, messages: Sequence[Outgoing]) -> int:
        """Publish with pipelined PubAcks and remember what the stream confirmed or refused for good; returns how
        many were confirmed.

        Rows not confirmed within `ack_timeout` stay unsent for the sweep. Never raises for a broker problem, and
        never waits unbounded.
        """
        if not messages:
            return 0
        nc = _connection(self._js)
        max_payload = nc.max_payload
        sending: list[tuple[Outgoing, dict[str, str]]] = []
        parked: list[tuple[Outgoing, str]] = []
        for m in messages:
            headers = {**m.headers, "Nats-Msg-Id": m.event_id}
            size = message_size(m.payload, headers)
            if size > max_payload:  # the server would close the connection on it: never send it
                parked.append((m, f"{size} bytes, over the NATS server's max_payload of {max_payload} bytes"))
                continue
            sending.append((m, headers))
        confirmed: list[str] = []
        problem: BaseException | None = None
        if sending:
            if self._pubacks is None or self._pubacks.nc is not nc:
                self._pubacks = PubAcks(nc)
            answers = await self._pubacks.publish([(m.subject, m.payload, h) for m, h in sending], self._ack_timeout)
            unanswered = 0
            for (m, _), error in zip(sending, answers, strict=True):
                if error is None:
                    confirmed.append(m.event_id)
                elif (why := refused_for_good(error)) is not None:
                    parked.append((m, why))
                elif isinstance(error, NoAnswer):
                    unanswered += 1
                else:
                    problem = problem or error
            if unanswered and problem is None:
                problem = TimeoutError(f"{unanswered} PubAcks not received within {self._ack_timeout:g} s")
        now = datetime.now(UTC)
        for m, why in parked:
            log.error("outbox: NATS refused event %s on %s for good (%s); it is parked: kept in the outbox, not "
                      "published again, listed by `reroute deadletter list`; the events behind it go on",
                      m.event_id, m.subject, why)
        if confirmed:
            done_ids = set(confirmed)
            published = [m for m in messages if m.event_id in done_ids]
            if log.isEnabledFor(logging.INFO):  # reading each payload for its referral id costs more than the publish
                for m in published:  # an operator's trail: grep a referral id, or follow a trace id across services
                    log.info("published %s (event %s)", m.subject, m.event_id,
                             extra=about(headers=m.headers, referral_id=referral_of(m.payload)))
            if self._on_published is not None:
                self._on_published(published)
        with self._outcomes_lock:
            self._sent.extend(confirmed)
            self._parked.extend((m.event_id, f"NATS refused it: {why}", now) for m, why in parked)
        if problem is None:
            self._progressed()
        else:
            unconfirmed = len(messages) - len(confirmed) - len(parked)
            self._failed(f"{unconfirmed} events not confirmed by NATS ({describe(problem)}); "
                         "they stay in the outbox and are published again until they are")
        return len(confirmed)

    def _progressed(self) -> None:
        if self._failing_since is not None:
            log.warning("outbox: working again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None

    def _failed(self, what: str) -> None:
        if self._failing_since is None:  # said once per outage, not once per batch
            self._failing_since = time.monotonic()
            log.warning("outbox: %s", what)

    def record_outcomes(self, conn: Connection, *, now: datetime) -> None:
        """Record as sent what was published since the last call, and as parked what NATS refused for good, inside
        the caller's transaction.

        Folding this into the next batch's transaction saves a commit per batch; the sweep flushes it when
        no batch follows. If the caller's transaction rolls back the rows stay unsent and are re-published
        with the same Nats-Msg-Id, which the stream and every consumer's inbox drop (or refused, and parked, again).
        """
        with self._outcomes_lock:
            ids, self._sent = self._sent, []
            parked, self._parked = self._parked, []
        for chunk in range(0, len(ids), 500):
            conn.execute(
                update(OutboxRow)
                .where(col(OutboxRow.event_id).in_(ids[chunk : chunk + 500]))
                .values(sent_at=now)
            )
        for event_id, why, when in parked:
            conn.execute(update(OutboxRow).where(col(OutboxRow.event_id) == event_id)
                         .values(parked_at=when, parked_reason=why[:1000]))

    async def sweep_once(self, *, older_than: timedelta = timedelta(seconds=2), limit: int = 500) -> int:
        """Publish unsent rows older than `older_than` (never a parked one); returns how many were found."""
        now = datetime.now(UTC)

        def unsent() -> Sequence[Row[OutboxRow]]:
            with self._engine.begin() as conn:
                self.record_outcomes(conn, now=now)
                return conn.execute(
                    select(OutboxRow)
                    .where(col(OutboxRow.sent_at).is_(None), col(OutboxRow.parked_at).is_(None),
                           col(OutboxRow.created_at) <= now - older_than)
                    .order_by(col(OutboxRow.created_at))
                    .limit(limit)
                ).all()

        rows = await self._database.run(unsent)
        self.oldest_unsent_age = (now - _aware(rows[0].created_at)).total_seconds() if rows else 0.0
        if not rows:
            self._progressed()
            return 0
        await self.publish([Outgoing(r.event_id, r.subject, r.payload, json.loads(r.headers)) for r in rows])
        return len(rows)

    def _prune(self, *, sent_before: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(OutboxRow).where(col(OutboxRow.sent_at) < sent_before))

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until stopped; prune rows sent more than a day ago once an hour."""
        last_prune = datetime.min.replace(tzinfo=UTC)
        while not stop.is_set():
            try:
                await self.sweep_once()
                if datetime.now(UTC) - last_prune > timedelta(hours=1):
                    last_prune = datetime.now(UTC)
                    await self._database.run(partial(self._prune, sent_before=last_prune - timedelta(days=1)))
            except Exception as exc:  # noqa: BLE001 - the database is down: said once, retried every sweep
                self._failed(f"cannot read the outbox ({describe(exc)}); trying again every {self._sweep_seconds:g} s")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._sweep_seconds)
            except TimeoutError:
                pass


class NoAnswer(TimeoutError):
    """No PubAck within the time allowed (the server restarting, the stream without a leader, the link gone)."""


class PubAcks:
    """JetStream publishes in flight at once, each answered on one reply subscription of our own.

    What `js.publish` does for one message (a request whose answer is the PubAck or the stream's error), for many:
    every message is written, then the answers are awaited together under one bound. `js.publish` each in a task of
    its own cost three times as much CPU as the publish itself (a task, a future and a timer per message), which
    was the most of a service's cost per event after its transaction. Public nats-py API only: the reply subjects
    are under the client's inbox prefix (`_INBOX_<service>`, which its NATS user may subscribe to), and the
    subscription is made once and kept across reconnects by the client."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._prefix: str | None = None
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._next = itertools.count()
        self._subscribing = asyncio.Lock()

    async def publish(self, messages: Sequence[tuple[str, bytes, dict[str, str]]],
                      timeout: float) -> list[BaseException | None]:
        """Each message's outcome, in order: None (stored, or a duplicate the stream dropped), the stream's or the
        client's error, or `NoAnswer`. Returns within about `timeout`, writes and answers together, even when the
        link stalls: nats-py's publish swallows the cancellation that ends a write blocked on a full buffer, so the
        deadline is also checked before each write (what was not written keeps NoAnswer and is sent again later)."""
        outcomes: list[BaseException | None] = [NoAnswer() for _ in messages]
        asked: dict[asyncio.Future[Msg], int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    try:
                        prefix = await self._subscribed()
                    except Exception as exc:  # noqa: BLE001 - the connection closed or draining: every message's outcome
                        return [exc for _ in messages]
                    for i, (subject, payload, headers) in enumerate(messages):
                        if loop.time() >= deadline:
                            break
                        token = str(next(self._next))
                        answer: asyncio.Future[Msg] = loop.create_future()
                        self._waiting[token] = answer
                        try:
                            await self.nc.publish(subject, payload, reply=prefix + token, headers=headers)
                        except Exception as exc:  # noqa: BLE001 - closed, draining, too large: this one's outcome
                            del self._waiting[token]
                            outcomes[i] = exc
                            continue
                        asked[answer] = i
            except TimeoutError:
                pass  # held up writing (or subscribing): what was not written has NoAnswer
            if asked:
                await asyncio.wait(asked, timeout=max(0.0, deadline - loop.time()))
            for answer, i in asked.items():
                if answer.done() and not answer.cancelled():
                    outcomes[i] = _puback_error(answer.result())
        finally:
            for answer in asked:
                answer.cancel()
            self._waiting = {t: f for t, f in self._waiting.items() if not f.done()}
        return outcomes

    async def _subscribed(self) -> str:
        """The reply subjects' prefix, subscribed to once (the consumer's publishes and the sweep's may both ask first)."""
        async with self._subscribing:
            if self._prefix is None:
                prefix = self.nc.new_inbox() + "."
                await self.nc.subscribe(prefix + "*", cb=self._answered)
                self._prefix = prefix
            return self._prefix

    async def _answered(self, msg: Msg) -> None:
        assert self._prefix is not None
        answer = self._waiting.pop(msg.subject[len(self._prefix):], None)
        if answer is not None and not answer.done():
            answer.set_result(msg)


def _puback_error(msg: Msg) -> BaseException | None:
    """What `js.publish` would raise for this answer, or None for a PubAck."""
    if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS:
        return NoStreamResponseError()
    try:
        answer = json.loads(msg.data)
    except ValueError as exc:
        return exc
    if isinstance(answer, dict) and "error" in answer:
        try:
            APIError.from_error(answer["error"])  # raises the error's own class, as js.publish does
        except APIError as exc:
            return exc
        return APIError(description=str(answer["error"]))  # from_error always raises; never take an error for a PubAck
    return None


def referral_of(payload: bytes) -> str | None:
    """The referral an event is about (every event about one carries `referral_id`), for its log line."""
    try:
        value = json.loads(payload).get("referral_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def message_size(payload: bytes, headers: dict[str, str]) -> int:
    """The bytes NATS counts against `max_payload`: the body and the headers as nats-py writes them."""
    header_lines = sum(len(k.strip().encode()) + len(v.strip().encode()) + 4 for k, v in headers.items())
    return len(payload) + len(b"NATS/1.0\r\n") + header_lines + 2


def refused_for_good(error: BaseException) -> str | None:
    """Why publishing the same message again can never succeed, or None when a retry may (a timeout, no responders,
    a lost connection, a stream without a leader)."""
    if isinstance(error, nats.errors.MaxPayloadError):
        return "over the NATS server's max_payload"
    if isinstance(error, APIError) and error.err_code in REFUSED_FOR_GOOD:
        return f"{error.description or 'refused'} ({REFUSED_FOR_GOOD[error.err_code]}, error {error.err_code})"
    return None


def _connection(js: JetStreamContext) -> NATS:
    """The client under a JetStream context, for its server's max_payload (nats-py keeps no public handle on it)."""
    return js._nc


def describe(exc: BaseException) -> str:
    """One line for a log: the exception's type and the first line of its message."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
