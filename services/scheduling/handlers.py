"""Scheduling's batch handlers: collect each referral's facts and tier, then book a mentor or waitlist."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from services.scheduling.constraints import Case, MentorState
from services.scheduling.matching import LONDON, Match, match, with_booking
from services.scheduling.tables import CaseRow, MentorRow, SessionRow
from shared.contracts.codes import Tier
from shared.contracts.common import SessionSlot
from shared.contracts.intake import ReferralAccepted
from shared.contracts.risk import RiskAssessed
from shared.contracts.scheduling import MentorRecord, SessionsScheduled, SessionsWaitlisted
from shared.db import lock_for_update
from shared.messaging import Delivery, parse_event
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects
from opentelemetry import trace

BOOKING_LOCK = "scheduling:booking"


def handle_accepted(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Keep the facts scheduling needs; book when the assessment is already here."""
    events = [(d, parse_event(ReferralAccepted, d)) for d in batch]
    cases = _cases(conn, [e.referral_id for _, e in events])
    ready: list[tuple[CaseRow, trace.Span]] = []
    new_rows: list[dict[str, object]] = []
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = cases.get(event.referral_id)
        if row is not None and row.facts is not None:
            continue  # a repeat submission: the referral is already known
        facts = event.model_dump_json()
        if row is None:
            values = {"referral_id": event.referral_id, "agency_id": event.agency_id, "facts": facts,
                      "status": "awaiting_assessment", "updated_at": now}
            new_rows.append(values)
            cases[event.referral_id] = CaseRow.model_validate(values)
        else:
            conn.execute(
                update(CaseRow).where(CaseRow.referral_id == event.referral_id).values(facts=facts, updated_at=now)  # type: ignore[arg-type]
            )
            row.facts = facts
            ready.append((row, d.span))
    if new_rows:
        conn.execute(insert(CaseRow), new_rows)
    return book(conn, ready, now=now, subjects=subjects)


def handle_assessed(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Record the tier; book when the referral's facts are already here."""
    events = [(d, parse_event(RiskAssessed, d)) for d in batch]
    cases = _cases(conn, [e.referral_id for _, e in events])
    ready: list[tuple[CaseRow, trace.Span]] = []
    new_rows: list[dict[str, object]] = []
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = cases.get(event.referral_id)
        if row is not None and (row.tier is not None or row.status in {"scheduled", "waitlisted"}):
            continue  # already assessed: re-planning on a changed tier is not handled here
        if row is None:
            values = {"referral_id": event.referral_id, "agency_id": event.agency_id, "tier": event.tier.value,
                      "status": "awaiting_referral", "updated_at": now}
            new_rows.append(values)
            cases[event.referral_id] = CaseRow.model_validate(values)
            continue
        conn.execute(
            update(CaseRow).where(CaseRow.referral_id == event.referral_id).values(tier=event.tier.value, updated_at=now)  # type: ignore[arg-type]
        )
        row.tier = event.tier.value
        ready.append((row, d.span))
    if new_rows:
        conn.execute(insert(CaseRow), new_rows)
    return book(conn, ready, now=now, subjects=subjects)


def book(
    conn: Connection, cases: list[tuple[CaseRow, trace.Span]], *, now: datetime, subjects: Subjects
) -> list[Outgoing]:
    """Match each case in turn against the mentors as they stand, so no mentor is double-booked."""
    if not cases:
        return []
    lock_for_update(conn, BOOKING_LOCK)
    mentors = load_mentor_states(conn, now=now)
    out: list[Outgoing] = []
    session_rows: list[dict[str, object]] = []
    for row, span in cases:
        case = case_from(row)
        result = match(case, list(mentors.values()), now=now)
        if isinstance(result, Match):
            slots = [SessionSlot(session_id=f"ses_{secrets.token_hex(8)}", start=s, end=e) for s, e in result.sessions]
            session_rows += [
                {
                    "session_id": slot.session_id,
                    "referral_id": row.referral_id,
                    "mentor_id": result.mentor_id,
                    "start": slot.start,
                    "end": slot.end,
                    "status": "booked",
                    "created_at": now,
                }
                for slot in slots
            ]
            _set_status(conn, row.referral_id, "scheduled", now, mentor_id=result.mentor_id, deadline_met=result.deadline_met)
            mentors[result.mentor_id] = with_booking(mentors[result.mentor_id], result.sessions)
            event: SessionsScheduled | SessionsWaitlisted = SessionsScheduled(
                event_id=f"scheduled:{row.referral_id}",
                occurred_at=now,
                referral_id=row.referral_id,
                agency_id=row.agency_id,
                mentor_id=result.mentor_id,
                tier=case.tier,
                sessions=slots,
                deadline_met=result.deadline_met,
            )
            span.set_attribute("mentor.id", result.mentor_id)
            span.set_attribute("sessions.count", len(slots))
            span.set_attribute("reroute.outcome", "scheduled")
            out.append(outgoing(event, subjects.scheduled(row.agency_id), span=span))
        else:
            _set_status(conn, row.referral_id, "waitlisted", now, reason=result.reason)
            event = SessionsWaitlisted(
                event_id=f"waitlisted:{row.referral_id}:{int(now.timestamp())}",
                occurred_at=now,
                referral_id=row.referral_id,
                agency_id=row.agency_id,
                tier=case.tier,
                reason=result.reason,
            )
            span.set_attribute("reroute.outcome", "waitlisted")
            out.append(outgoing(event, subjects.waitlisted(row.agency_id), span=span))
    if session_rows:
        conn.execute(insert(SessionRow), session_rows)
    return out


def load_mentor_states(conn: Connection, *, now: datetime) -> dict[str, MentorState]:
    caseloads = Counter(
        dict(
            conn.execute(
                select(CaseRow.mentor_id, func.count())
                .where(CaseRow.status == "scheduled")
                .group_by(CaseRow.mentor_id)
            ).all()
        )
    )
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    for mentor_id, start, end in conn.execute(
        select(SessionRow.mentor_id, SessionRow.start, SessionRow.end).where(
            SessionRow.status == "booked", SessionRow.end > now - timedelta(days=1)
        )
    ):
        busy.setdefault(mentor_id, []).append((start.astimezone(LONDON), end.astimezone(LONDON)))
    states: dict[str, MentorState] = {}
    for mentor_id, record in conn.execute(select(MentorRow.mentor_id, MentorRow.record).order_by(MentorRow.mentor_id)):
        states[mentor_id] = MentorState(
            record=MentorRecord.model_validate_json(record),
            caseload=caseloads.get(mentor_id, 0),
            busy=busy.get(mentor_id, []),
        )
    return states


def case_from(row: CaseRow) -> Case:
    assert row.facts is not None and row.tier is not None
    facts = ReferralAccepted.model_validate_json(row.facts)
    return Case(
        referral_id=row.referral_id,
        tier=Tier(row.tier),
        borough=facts.person.borough,
        languages=facts.person.languages,
        mentor_gender=facts.preferences.mentor_gender,
        preferred_language=facts.preferences.language,
        availability=facts.availability,
        unsafe_areas=facts.unsafe_areas,
        accepted_at=facts.occurred_at,
    )


def _cases(conn: Connection, referral_ids: list[str]) -> dict[str, CaseRow]:
    rows = conn.execute(select(CaseRow).where(CaseRow.referral_id.in_(referral_ids)))  # type: ignore[attr-defined]
    return {r.referral_id: CaseRow.model_validate(r._mapping) for r in rows}


def _set_status(conn: Connection, referral_id: str, status: str, now: datetime, **values: object) -> None:
    conn.execute(
        update(CaseRow).where(CaseRow.referral_id == referral_id).values(status=status, updated_at=now, **values)  # type: ignore[arg-type]
    )
