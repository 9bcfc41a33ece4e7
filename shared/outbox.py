"""Transactional outbox and inbox: a state change and the events it causes commit together.

Handlers add `Outgoing` messages in the same transaction as their state; the relay publishes them with
`Nats-Msg-Id` = event id (so the stream drops a re-publish) and marks them sent. An inbox row per processed
inbound message makes every consumer idempotent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlmodel import Field, SQLModel, col

from shared.contracts.common import Event

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


def outgoing(event: Event, subject: str, *, span: trace.Span | None = None) -> Outgoing:
    """Serialise an event, carrying the trace context of `span` (or the current one) on its headers."""
    headers: dict[str, str] = {"content-type": "application/json"}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _propagator.inject(headers, context=ctx)
    return Outgoing(event.event_id, subject, event.model_dump_json().encode(), headers)


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


class OutboxRelay:
    """Publishes outbox rows: right after each commit, and in a sweep for anything left behind by a crash."""

    def __init__(self, engine: Engine, js: JetStreamContext, *, sweep_seconds: float = 1.0) -> None:
        self._engine = engine
        self._js = js
        self._sweep_seconds = sweep_seconds
        self._lock = asyncio.Lock()
        self._sent: list[str] = []

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish with pipelined PubAcks, then mark sent. A failure leaves rows for the sweep."""
        if not messages:
            return
        async with self._lock:
            try:
                futures = [
                    await self._js.publish_async(m.subject, m.payload, headers={**m.headers, "Nats-Msg-Id": m.event_id})
                    for m in messages
                ]
                await asyncio.gather(*futures)
            except Exception:
                log.warning("publishing %d outbox events failed; the sweep will retry", len(messages), exc_info=True)
                return
            self._sent.extend(m.event_id for m in messages)

    def mark_sent(self, conn: Connection, *, now: datetime) -> None:
        """Record as sent what was published since the last call, inside the caller's transaction.

        Folding this into the next batch's transaction saves a commit per batch; the sweep flushes it when
        no batch follows. If the caller's transaction rolls back the rows stay unsent and are re-published
        with the same Nats-Msg-Id, which the stream and every consumer's inbox drop.
        """
        ids, self._sent = self._sent, []
        for chunk in range(0, len(ids), 500):
            conn.execute(
                update(OutboxRow)
                .where(col(OutboxRow.event_id).in_(ids[chunk : chunk + 500]))
                .values(sent_at=now)
            )

    async def sweep_once(self, *, older_than: timedelta = timedelta(seconds=2), limit: int = 500) -> int:
        """Publish unsent rows older than `older_than`; returns how many were found."""
        cutoff = datetime.now(UTC) - older_than
        with self._engine.begin() as conn:
            self.mark_sent(conn, now=datetime.now(UTC))
            rows = conn.execute(
                select(OutboxRow)
                .where(col(OutboxRow.sent_at).is_(None), col(OutboxRow.created_at) <= cutoff)
                .order_by(col(OutboxRow.created_at))
                .limit(limit)
            ).all()
        messages = [Outgoing(r.event_id, r.subject, r.payload, json.loads(r.headers)) for r in rows]
        await self.publish(messages)
        return len(messages)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until stopped; prune rows sent more than a day ago once an hour."""
        last_prune = datetime.min.replace(tzinfo=UTC)
        while not stop.is_set():
            try:
                await self.sweep_once()
                if datetime.now(UTC) - last_prune > timedelta(hours=1):
                    last_prune = datetime.now(UTC)
                    with self._engine.begin() as conn:
                        conn.execute(delete(OutboxRow).where(col(OutboxRow.sent_at) < last_prune - timedelta(days=1)))
            except Exception:
                log.exception("outbox sweep failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._sweep_seconds)
            except TimeoutError:
                pass
