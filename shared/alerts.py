"""The safeguarding alerts a service raised, kept in its own database: listed, and acknowledged once by a person.

Risk (escalation rules on referrals) and scheduling (disengagement) each keep the alerts they publish in a table of
their own with these columns (`AlertColumns`), stored in the same transaction as the event's outbox row, and answer
`alerts.list` and `alerts.ack` (shared/contracts/safeguarding_rpc.py) from it with the functions here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, or_, select, update
from sqlmodel import Field, SQLModel, col

from shared.contracts.rpc import NotFound, Refused
from shared.contracts.safeguarding_rpc import SafeguardingAlertView
from shared.metrics import Sample

ERASED = "erased_"
"""The prefix of the random id an erased referral's rows keep (anonymous counts): no one can act on those alerts."""


class AlertColumns(SQLModel):
    """A safeguarding alert as its service keeps it (each service's table adds its name)."""

    event_id: str = Field(primary_key=True, max_length=120)
    referral_id: str = Field(index=True, max_length=40)
    agency_id: str | None = Field(default=None, max_length=64)
    rule_id: str = Field(max_length=80)
    raised_at: datetime
    deadline: datetime
    actions: str = Field(description="JSON list of actions.")
    acknowledged_by: str | None = Field(default=None, max_length=200, description="The person who took it up.")
    acknowledged_at: datetime | None = Field(default=None, index=True)
    acknowledgement_note: str | None = Field(default=None, max_length=2000)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def view(row: AlertColumns, *, service: str, now: datetime) -> SafeguardingAlertView:
    deadline = _utc(row.deadline)
    return SafeguardingAlertView(
        alert_id=row.event_id, service=service, referral_id=row.referral_id, agency_id=row.agency_id,
        rule_id=row.rule_id, actions=json.loads(row.actions), raised_at=_utc(row.raised_at), deadline=deadline,
        overdue=row.acknowledged_at is None and deadline < now, acknowledged_by=row.acknowledged_by,
        acknowledged_at=_utc(row.acknowledged_at) if row.acknowledged_at else None, note=row.acknowledgement_note)


def listing(conn: Connection, table: type[AlertColumns], *, service: str, now: datetime, acknowledged_days: float,
            limit: int) -> list[SafeguardingAlertView]:
    """Unacknowledged alerts and those acknowledged within `acknowledged_days`: unacknowledged first, then by
    deadline (the most overdue first), newest first among equal deadlines."""
    since = now - timedelta(days=acknowledged_days)
    acknowledged = col(table.acknowledged_at)
    rows = conn.execute(
        select(table).where(or_(acknowledged.is_(None), acknowledged >= since),
                            col(table.referral_id).not_like(f"{ERASED}%"))
        .order_by(acknowledged.is_not(None), col(table.deadline), col(table.raised_at).desc()).limit(limit)).all()
    return [view(table.model_validate(r._mapping), service=service, now=now) for r in rows]


def acknowledge(conn: Connection, table: type[AlertColumns], alert_id: str, *, service: str, by: str, note: str,
                now: datetime) -> SafeguardingAlertView:
    """Record `by` as having taken the alert up, once; NotFound for an alert this service did not raise, Refused
    (naming who and when) for one acknowledged already."""
    by, note = " ".join(by.split()), note.strip()
    if not by:
        raise Refused("say who acknowledges it: an acknowledgement records the person")
    done = conn.execute(update(table).where(col(table.event_id) == alert_id, col(table.acknowledged_at).is_(None))
                        .values(acknowledged_by=by, acknowledged_at=now, acknowledgement_note=note or None))
    row = conn.execute(select(table).where(col(table.event_id) == alert_id)).first()
    if row is None:
        raise NotFound(f"{service} raised no safeguarding alert {alert_id}")
    alert = view(table.model_validate(row._mapping), service=service, now=now)
    if done.rowcount == 0:
        raise Refused(f"alert {alert_id} was acknowledged already, by {alert.acknowledged_by} at "
                      f"{alert.acknowledged_at:%Y-%m-%d %H:%M} UTC")
    return alert


def unacknowledged_samples(conn: Connection, table: type[AlertColumns], *, now: datetime) -> list[Sample]:
    """The gauge `safeguarding_alerts_unacknowledged` by agency and whether overdue: every agency with an alert is
    reported, 0 once all are acknowledged (erased referrals' alerts are not counted)."""
    overdue = col(table.deadline) < now
    rows = conn.execute(
        select(col(table.agency_id), overdue, func.count())
        .where(col(table.acknowledged_at).is_(None), col(table.referral_id).not_like(f"{ERASED}%"),
               col(table.agency_id).is_not(None))
        .group_by(col(table.agency_id), overdue))
    counts = {(agency, bool(late)): count for agency, late, count in rows}
    agencies = sorted({a for a in conn.execute(select(col(table.agency_id)).distinct()).scalars() if a is not None})
    return [Sample("safeguarding_alerts_unacknowledged", counts.get((agency, late), 0),
                   {"agency": agency, "overdue": str(late).lower()})
            for agency in agencies for late in (False, True)]
