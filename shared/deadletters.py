"""Dead letters kept by the service that failed them: stored, listed, shown, replayed once, or discarded.

A consumer that gives up on a message writes it here, in its own database (sealed, where the service seals:
intake encrypts, since a submission holds personal data), and publishes only a notice without the body on
`deadletter.<service>`. An operator replays one once its cause is fixed: the service runs the message through
the same handler, in one transaction with the inbox (so it is processed at most once) and the outbox (so its
events are published once, with their own ids), and marks it replayed in that transaction.

An event of the service's own that NATS refused for good (too large) is parked in its outbox (shared/outbox.py)
and listed here too, as an open entry of the consumer `outbox`, counted with the rest and holding its referral
for review: it is the same kind of thing for an operator (something set aside that needs a person). It is shown
like a dead letter; replaying it puts it back in the outbox (once the limit that refused it is raised, the relay
publishes it, with its own id, so at most once); discarding it moves it here, discarded, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update
from sqlmodel import Field, SQLModel, col

from shared.contracts.deadletters import DeadLetter, DeadLetterStatus, HeldMessage
from shared.outbox import OutboxRow

Seal = Callable[[bytes], bytes]
REFERRAL_ID = re.compile(r"ref_[0-9a-f]{16}")
"""The form of intake's referral ids: anything else in a failed body is not taken for one (nor echoed)."""
PARKED = "outbox"
"""The `consumer` of a listed parked event (the outbox relay set it aside, not a consumer), and its id's prefix:
`outbox-<hex>`, which the dead-letter commands do not take for a dead letter's."""


class DeadLetterRow(SQLModel, table=True):
    __tablename__ = "dead_letters"

    id: str = Field(primary_key=True, max_length=100)
    message_key: str = Field(index=True, max_length=400)
    consumer: str = Field(max_length=100)
    subject: str = Field(max_length=300)
    headers: str = Field(description="JSON object of the message's NATS headers.")
    body: bytes = Field(description="The message body, sealed by the service's seal (intake: encrypted).")
    reason: str = Field(max_length=1000)
    deliveries: int
    failed_at: datetime = Field(index=True)
    referral_id: str | None = Field(default=None, index=True, max_length=100)
    status: str = Field(default="open", index=True, max_length=20)
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=1000)


def new_id(service: str) -> str:
    return f"{service}-{secrets.token_hex(5)}"


def service_of(dead_letter_id: str) -> str:
    """The service that keeps a dead letter, from its id."""
    return dead_letter_id.split("-", 1)[0]


def referral_named(body: bytes) -> str | None:
    """The referral a message concerns, when its body is a JSON object naming one (for status and listing)."""
    try:
        value = json.loads(body).get("referral_id")
    except (ValueError, RecursionError, AttributeError):
        return None
    return value if isinstance(value, str) and REFERRAL_ID.fullmatch(value) else None


def record(conn: Connection, *, service: str, key: str, consumer: str, subject: str, headers: dict[str, str],
           body: bytes, seal: Seal, reason: str, deliveries: int, now: datetime) -> str:
    """Keep a failed message; returns its id. One per message and consumer: a second failure of the same
    message (a redelivery that raced the first) returns the first record."""
    existing = conn.execute(
        select(col(DeadLetterRow.id)).where(col(DeadLetterRow.message_key) == key,
                                            col(DeadLetterRow.consumer) == consumer,
                                            col(DeadLetterRow.status) == "open")
    ).scalar()
    if existing is not None:
        return str(existing)
    dead_letter_id = new_id(service)
    conn.execute(insert(DeadLetterRow).values(
        id=dead_letter_id, message_key=key, consumer=consumer, subject=subject, headers=json.dumps(headers),
        body=seal(body), reason=reason[:1000], deliveries=deliveries, failed_at=now, referral_id=referral_named(body),
        status="open"))
    return dead_letter_id


def listing(conn: Connection, *, service: str, include_resolved: bool, limit: int) -> tuple[list[DeadLetter],
                                                                                             dict[str, int]]:
    """Dead letters and parked events, newest first, and the open ones counted by reason."""
    query = select(DeadLetterRow).order_by(col(DeadLetterRow.failed_at).desc()).limit(limit)
    if not include_resolved:
        query = query.where(col(DeadLetterRow.status) == "open")
    rows = [DeadLetterRow(**r) for r in conn.execute(query).mappings()]
    parked = parked_events(conn, service=service)
    found = sorted([*(public(service, r) for r in rows), *parked], key=lambda d: d.failed_at, reverse=True)[:limit]
    reasons = [*conn.execute(select(col(DeadLetterRow.reason)).where(col(DeadLetterRow.status) == "open")).scalars(),
               *(p.reason for p in parked)]
    return found, dict(Counter(_reason_kind(r) for r in reasons))


def parked_events(conn: Connection, *, service: str) -> list[DeadLetter]:
    """The service's own events NATS refused for good, as open entries (shared/outbox.py parks them)."""
    rows = conn.execute(select(col(OutboxRow.event_id), col(OutboxRow.subject), col(OutboxRow.payload),
                               col(OutboxRow.parked_at), col(OutboxRow.parked_reason))
                        .where(col(OutboxRow.parked_at).is_not(None)).order_by(col(OutboxRow.parked_at)))
    return [_parked_entry(service, event_id, subject, payload, parked_at, parked_reason)
            for event_id, subject, payload, parked_at, parked_reason in rows if parked_at is not None]


def _parked_entry(service: str, event_id: str, subject: str, payload: bytes, parked_at: datetime,
                  parked_reason: str | None) -> DeadLetter:
    return DeadLetter(id=parked_id(event_id), service=service, consumer=PARKED, subject=subject, deliveries=1,
                      failed_at=parked_at, status="open", referral_id=referral_named(payload),
                      reason=f"parked outbox event: {parked_reason or 'NATS refused it'} (event {event_id}, "
                             f"{len(payload)} bytes; kept in the outbox, not published again)")


def parked_id(event_id: str) -> str:
    return f"{PARKED}-{hashlib.sha256(event_id.encode()).hexdigest()[:10]}"


def is_parked_id(dead_letter_id: str) -> bool:
    """An id `reroute deadletter list` gave a parked outbox event (or, once discarded, its dead letter)."""
    return dead_letter_id.startswith(f"{PARKED}-")


def keepers(dead_letter_id: str, services: Sequence[str]) -> list[str]:
    """The service that keeps a dead letter (of `services`); for a parked outbox event (`outbox-…`), every one of
    them, to ask in turn; none for an id that is neither."""
    if is_parked_id(dead_letter_id):
        return list(services)
    return [service_of(dead_letter_id)] if service_of(dead_letter_id) in services else []


def find_parked(conn: Connection, dead_letter_id: str) -> OutboxRow | None:
    """The parked outbox row listed under this id, if it is still parked (few rows, if any: read them all)."""
    rows = conn.execute(select(OutboxRow).where(col(OutboxRow.parked_at).is_not(None))).mappings()
    return next((OutboxRow(**r) for r in rows if parked_id(r["event_id"]) == dead_letter_id), None)


def parked_detail(row: OutboxRow, *, service: str) -> DeadLetter:
    assert row.parked_at is not None
    return _parked_entry(service, row.event_id, row.subject, row.payload, row.parked_at, row.parked_reason)


def unpark(conn: Connection, row: OutboxRow) -> bool:
    """Put a parked event back in the outbox, to be published by the relay (parked again if NATS still refuses
    it); False when it was no longer parked."""
    done = conn.execute(update(OutboxRow).where(col(OutboxRow.event_id) == row.event_id,
                                                col(OutboxRow.parked_at).is_not(None))
                        .values(parked_at=None, parked_reason=None))
    return done.rowcount == 1


def discard_parked(conn: Connection, row: OutboxRow, *, seal: Seal, by: str, reason: str, now: datetime) -> bool:
    """Set a parked event aside for good: out of the outbox, kept as a discarded dead letter of the consumer
    `outbox` (sealed like the rest), with who decided and why. False when it was no longer parked."""
    gone = conn.execute(delete(OutboxRow).where(col(OutboxRow.event_id) == row.event_id,
                                                col(OutboxRow.parked_at).is_not(None)))
    if gone.rowcount != 1:
        return False
    assert row.parked_at is not None
    conn.execute(insert(DeadLetterRow).values(
        id=parked_id(row.event_id), message_key=f"outbox:{row.event_id}", consumer=PARKED, subject=row.subject,
        headers=row.headers, body=seal(row.payload), reason=(row.parked_reason or "NATS refused it")[:1000],
        deliveries=1, failed_at=row.parked_at, referral_id=referral_named(row.payload), status="discarded",
        resolved_at=now, resolved_by=by, note=reason[:1000]))
    return True


def load(conn: Connection, dead_letter_id: str, *, for_update: bool = False) -> DeadLetterRow | None:
    query = select(DeadLetterRow).where(col(DeadLetterRow.id) == dead_letter_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).mappings().first()
    return DeadLetterRow(**found) if found is not None else None


def resolve(conn: Connection, dead_letter_id: str, *, status: DeadLetterStatus, by: str, note: str,
            now: datetime) -> None:
    conn.execute(update(DeadLetterRow).where(col(DeadLetterRow.id) == dead_letter_id)
                 .values(status=status, resolved_at=now, resolved_by=by, note=note[:1000]))


def mark_replayed(conn: Connection, dead_letter_id: str, *, by: str, now: datetime) -> bool:
    """Mark an open dead letter replayed; False when it was no longer open (someone else resolved it)."""
    done = conn.execute(update(DeadLetterRow)
                        .where(col(DeadLetterRow.id) == dead_letter_id, col(DeadLetterRow.status) == "open")
                        .values(status="replayed", resolved_at=now, resolved_by=by, note="replayed"))
    return done.rowcount == 1


def open_for_referrals(conn: Connection, referral_ids: list[str]) -> dict[str, list[HeldMessage]]:
    """Open dead letters and parked events by the referral they concern (a referral held for review)."""
    if not referral_ids:
        return {}
    rows = conn.execute(select(col(DeadLetterRow.referral_id), col(DeadLetterRow.id), col(DeadLetterRow.reason))
                        .where(col(DeadLetterRow.referral_id).in_(referral_ids), col(DeadLetterRow.status) == "open"))
    held: dict[str, list[HeldMessage]] = {}
    for referral_id, dead_letter_id, reason in rows:
        held.setdefault(str(referral_id), []).append(HeldMessage(id=dead_letter_id, reason=reason))
    wanted = set(referral_ids)
    for parked in parked_events(conn, service=""):  # few, if any: read them all rather than search payloads
        if parked.referral_id in wanted:
            held.setdefault(parked.referral_id, []).append(HeldMessage(id=parked.id, reason=parked.reason))
    return held


def public(service: str, row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(id=row.id, service=service, consumer=row.consumer, subject=row.subject, reason=row.reason,
                      deliveries=row.deliveries, failed_at=row.failed_at, referral_id=row.referral_id,
                      status=row.status,  # type: ignore[arg-type]  # written only from DeadLetterStatus
                      resolved_at=row.resolved_at, resolved_by=row.resolved_by, note=row.note)


def _reason_kind(reason: str) -> str:
    """A reason without its specifics, for counting: the text before the first colon."""
    return reason.split(":", 1)[0][:80]
