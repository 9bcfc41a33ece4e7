"""A scheduler or mentor changes a session: confirm, cancel, or record it attended or missed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert

from services.scheduling.agency_reasons import Reason
from services.scheduling.lifecycle import CANCELLABLE, DISENGAGEMENT, OUTCOMES, Action, after_misses, transition
from services.scheduling.store import (
    case_sessions,
    load_case,
    load_session,
    set_case_status,
    set_session_status,
    upcoming_sessions,
)
from services.scheduling.tables import AlertRow
from shared.contracts.codes import Tier
from shared.contracts.risk import SafeguardingAlert
from shared.contracts.scheduling import CaseStatus, SessionsCancelled, SessionStatus
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects

DISENGAGEMENT_ACTIONS = ["dsl_review_within_2_working_days", "contact_referrer", "outreach_attempts_varied_time_place"]


def change_session(
    conn: Connection, session_id: str, action: Action, *, reason: str, now: datetime, subjects: Subjects
) -> tuple[dict[str, object], list[Outgoing]]:
    """Apply `action`; raises LifecycleRefused (or LookupError for an unknown session) with a readable reason."""
    session = load_session(conn, session_id)
    if session is None:
        raise LookupError(f"no session {session_id}")
    status = transition(session.status, action, start=session.start, now=now)
    set_session_status(conn, [session_id], status, now=now)
    case = load_case(conn, session.referral_id)
    assert case is not None
    out: list[Outgoing] = []
    if action == "cancel":
        event = SessionsCancelled(event_id=f"session:{session_id}:cancel", occurred_at=now,
                                  referral_id=case.referral_id, agency_id=case.agency_id, cancelled=[session_id],
                                  reason=reason or "cancelled by the scheduler")
        out.append(outgoing(event, subjects.cancelled(case.agency_id)))
    follow_up = None
    if action in ("attended", "missed"):
        outcomes = [s.status for s in case_sessions(conn, case.referral_id, OUTCOMES)]
        follow_up = after_misses(outcomes, Tier(case.wellbeing_tier) if case.wellbeing_tier else None)
        if follow_up == "escalate":
            alert = SafeguardingAlert(
                event_id=f"alert:{case.referral_id}:{DISENGAGEMENT}:{session_id}", occurred_at=now,
                referral_id=case.referral_id, agency_id=case.agency_id, rule_id=DISENGAGEMENT,
                actions=DISENGAGEMENT_ACTIONS, deadline=add_working_days(now, 2),
            )
            conn.execute(insert(AlertRow).values(
                event_id=alert.event_id, referral_id=alert.referral_id, agency_id=alert.agency_id,
                rule_id=alert.rule_id, raised_at=now, deadline=alert.deadline, actions=json.dumps(alert.actions)))
            out.append(outgoing(alert, subjects.alert(case.agency_id)))
        elif follow_up == "close":
            out += close(conn, case.referral_id, case.agency_id, now=now, subjects=subjects,
                         reason=Reason.shared("case closed after three missed sessions in a row"))
    return {"session_id": session_id, "status": status, "referral_id": case.referral_id,
            "follow_up": follow_up}, out


def close(conn: Connection, referral_id: str, agency_id: str, *, now: datetime, subjects: Subjects,
          reason: Reason) -> list[Outgoing]:
    """Close the case: cancel what has not happened, free the mentor's place, say why (in full in the case row,
    as the agency is told it in the event)."""
    ids = [s.session_id for s in upcoming_sessions(conn, [referral_id], CANCELLABLE, now=now)]
    set_session_status(conn, ids, SessionStatus.CANCELLED, now=now)
    set_case_status(conn, referral_id, CaseStatus.CLOSED, now=now, reason=reason)
    event = SessionsCancelled(event_id=f"closed:{referral_id}", occurred_at=now, referral_id=referral_id,
                              agency_id=agency_id, cancelled=ids, reason=reason.agency)
    return [outgoing(event, subjects.cancelled(agency_id))]


def add_working_days(start: datetime, days: int) -> datetime:
    """`days` working days (Monday to Friday) after `start`, at the same time of day."""
    current = start
    while days:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current
