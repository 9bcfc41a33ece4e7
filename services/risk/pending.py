"""Lowerings of a tier waiting for a second risk lead (the `pending_override` table): at most one per referral is
pending; asking again replaces it; unsigned past its expiry it no longer counts (read as lapsed, not swept)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, insert, select, update
from sqlmodel import col

from services.risk.review import ASKED_AGAIN, AskedLowering
from services.risk.tables import PendingOverrideRecord
from shared.contracts.codes import Tier
from shared.contracts.risk_rpc import PendingOverride
from shared.contracts.rpc import Refused


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _public(row: PendingOverrideRecord) -> PendingOverride:
    return PendingOverride(referral_id=row.referral_id, tier=Tier(row.tier), reason=row.reason, by=row.requested_by,
                           requested_at=_utc(row.requested_at), expires_at=_utc(row.expires_at))


def latest(conn: Connection, referral_id: str) -> tuple[int, PendingOverride] | None:
    """The referral's pending lowering (its row id with it), lapsed or not; None when none is pending."""
    row = conn.execute(select(PendingOverrideRecord).where(
        col(PendingOverrideRecord.referral_id) == referral_id, col(PendingOverrideRecord.status) == "pending",
    ).order_by(col(PendingOverrideRecord.id).desc())).first()
    return (row.id, _public(row)) if row is not None else None  # type: ignore[arg-type]


def asked(conn: Connection, referral_id: str, requested_at: datetime) -> AskedLowering | None:
    """The referral's lowering asked at exactly `requested_at`, whatever became of it; None when none was."""
    rows = conn.execute(select(PendingOverrideRecord).where(
        col(PendingOverrideRecord.referral_id) == referral_id).order_by(col(PendingOverrideRecord.id))).all()
    for row in rows:  # compared here, not in SQL: how each database stores a time differs, its value does not
        if _utc(row.requested_at) == requested_at:
            return AskedLowering(tier=Tier(row.tier), by=row.requested_by, requested_at=_utc(row.requested_at),
                                 status=row.status, decided_by=row.decided_by, decision=row.decision_reason)
    return None


def in_force(conn: Connection, referral_id: str, *, now: datetime) -> PendingOverride | None:
    """The pending lowering that a countersignature could still make take effect."""
    found = latest(conn, referral_id)
    return found[1] if found is not None and now < found[1].expires_at else None


def waiting(conn: Connection, *, now: datetime) -> list[PendingOverride]:
    """Every pending lowering a countersignature could still make take effect, oldest asked first."""
    rows = conn.execute(select(PendingOverrideRecord).where(
        col(PendingOverrideRecord.status) == "pending").order_by(col(PendingOverrideRecord.id))).all()
    return [p for p in (_public(r) for r in rows) if now < p.expires_at]  # type: ignore[arg-type]


def ask(conn: Connection, *, referral_id: str, tier: Tier, reason: str, by: str, now: datetime,
        lasts: timedelta) -> PendingOverride:
    """Record a lowering asked for; one pending before it is replaced."""
    decide_all(conn, referral_id, status="replaced", by=by, reason=ASKED_AGAIN, now=now)
    conn.execute(insert(PendingOverrideRecord).values(
        referral_id=referral_id, tier=tier.value, reason=reason, requested_by=by, requested_at=now,
        expires_at=now + lasts, status="pending"))
    found = latest(conn, referral_id)
    assert found is not None
    return found[1]


def decide(conn: Connection, row_id: int, *, status: str, by: str, reason: str | None, now: datetime) -> None:
    """Record what became of a lowering still pending; `Refused` (the caller's transaction rolls back) when it was
    decided meanwhile: a lowering has one fate, never a second written over it."""
    changed = conn.execute(update(PendingOverrideRecord).where(
        col(PendingOverrideRecord.id) == row_id, col(PendingOverrideRecord.status) == "pending",
    ).values(status=status, decided_by=by, decided_at=now, decision_reason=reason))
    if changed.rowcount != 1:
        raise Refused("the lowering was decided by someone else meanwhile: nothing changed; open the case again")


def decide_all(conn: Connection, referral_id: str, *, status: str, by: str, reason: str, now: datetime) -> None:
    """Close whatever is pending for the referral (a newer decision on its tier replaces it)."""
    conn.execute(update(PendingOverrideRecord).where(
        col(PendingOverrideRecord.referral_id) == referral_id, col(PendingOverrideRecord.status) == "pending",
    ).values(status=status, decided_by=by, decided_at=now, decision_reason=reason))
