"""Re-planning when a mentor changes: leave moves only the sessions it touches; an expired check or a suspended
licence moves the mentor's cases to other mentors. Every move is published with its reason."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from opentelemetry import trace
from sqlalchemy import Connection, insert, select, update
from sqlmodel import col

from services.scheduling.constraints import MentorState, venues_for
from services.scheduling.handlers import (
    BOOKING_LOCK,
    Work,
    case_from,
    leave_interval,
    load_mentor_states,
    load_rooms,
    plan,
    subject_for,
    venue_columns,
)
from services.scheduling.matching import LONDON, calendar
from services.scheduling.slots import SESSION, to_utc
from services.scheduling.tables import CaseRow, LeaveRow, SessionRow
from shared.contracts.common import SessionSlot
from shared.contracts.scheduling import SessionsRescheduled
from shared.db import lock_for_update
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects


def add_leave(
    conn: Connection, mentor_id: str, first: date, last: date, *, now: datetime, subjects: Subjects,
    tracer: trace.Tracer,
) -> tuple[dict[str, object], list[Outgoing]]:
    """Record leave and move each session it touches: same mentor, same time, later that week where possible."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    lock_for_update(conn, BOOKING_LOCK)
    mentors = load_mentor_states(conn, now=now)
    if mentor_id not in mentors:
        raise LookupError(f"no mentor {mentor_id}")
    conn.execute(insert(LeaveRow).values(mentor_id=mentor_id, first_day=first, last_day=last, created_at=now))
    away = leave_interval(first, last)
    affected = [SessionRow.model_validate(r._mapping) for r in conn.execute(
        select(SessionRow).where(
            col(SessionRow.mentor_id) == mentor_id, col(SessionRow.status).in_(["booked", "confirmed"]),
            col(SessionRow.start) < away[1], col(SessionRow.end) > away[0], col(SessionRow.start) > now,
        ).order_by(col(SessionRow.start))
    )]
    by_case: dict[str, list[SessionRow]] = defaultdict(list)
    for s in affected:
        by_case[s.referral_id].append(s)
    mentor = mentors[mentor_id]
    taken = {s.start for s in affected}
    state = MentorState(mentor.record, mentor.caseload, [(b, e) for b, e in mentor.busy if b not in taken] + [away],
                        mentor.points, mentor.vetting_expired, mentor.venues)
    out: list[Outgoing] = []
    moved = dropped = 0
    reason = f"{mentor_id} is on leave {first.isoformat()} to {last.isoformat()}"
    rooms = load_rooms(conn, now=now, excluding=[s.session_id for s in affected])
    for referral_id, sessions in by_case.items():
        row = CaseRow.model_validate(conn.execute(select(CaseRow).where(col(CaseRow.referral_id) == referral_id)).one()._mapping)
        case = case_from(row)
        new_slots, cancelled = [], []
        for s in sessions:
            cal = calendar(case, state, rooms)  # a time when a safe venue has a room free
            local = s.start.astimezone(LONDON)
            start = cal.follow_up(target=local.date(), at=local.time(), days=7,
                                  not_after=to_utc(local + timedelta(days=7)))
            # the same venue if it still has a room, else the best other safe one (rooms and routes re-checked)
            venues = sorted(venues_for(case, state), key=lambda f: f.venue.id != s.venue_id)
            placed = rooms.place(venues, [(start, start + SESSION)]) if start is not None else []
            if start is None or not placed:
                cancelled.append(s.session_id)
                continue
            end, where = start + SESSION, placed[0][1]
            conn.execute(update(SessionRow).where(col(SessionRow.session_id) == s.session_id)
                         .values(start=start, end=end, sequence=col(SessionRow.sequence) + 1, updated_at=now,
                                 **venue_columns(where)))
            state = MentorState(state.record, state.caseload, [*state.busy, (start, end)], state.points,
                                state.vetting_expired, state.venues)
            new_slots.append(SessionSlot(session_id=s.session_id, start=start.astimezone(LONDON),
                                         end=end.astimezone(LONDON), venue=where.venue.name if where else None))
        if cancelled:
            conn.execute(update(SessionRow).where(col(SessionRow.session_id).in_(cancelled))
                         .values(status="cancelled", sequence=col(SessionRow.sequence) + 1, updated_at=now))
        moved, dropped = moved + len(new_slots), dropped + len(cancelled)
        event = SessionsRescheduled(
            event_id=f"leave:{referral_id}:{mentor_id}:{first.isoformat()}:{int(now.timestamp())}", occurred_at=now,
            referral_id=referral_id, agency_id=row.agency_id, mentor_id=mentor_id, previous_mentor_id=mentor_id,
            tier=case.tier, sessions=new_slots, cancelled=cancelled,
            reason=reason + ("" if not cancelled else f"; {len(cancelled)} could not be moved within a week"))
        span = tracer.start_span("scheduling move sessions for leave", attributes={"referral.id": referral_id})
        out.append(outgoing(event, subject_for(subjects, event, row.agency_id), span=span))
        span.end()
    return {"mentor_id": mentor_id, "moved": moved, "cancelled": dropped, "cases": len(by_case)}, out


def replan_mentor(
    conn: Connection, mentor_id: str, why: str, *, now: datetime, subjects: Subjects, tracer: trace.Tracer
) -> tuple[int, list[Outgoing]]:
    """Move every case of a mentor who may no longer take them (expired check, suspended licence)."""
    rows = [CaseRow.model_validate(r._mapping) for r in conn.execute(
        select(CaseRow).where(col(CaseRow.mentor_id) == mentor_id, col(CaseRow.status) == "scheduled"))]
    work = []
    for row in rows:
        span = tracer.start_span("scheduling replan for mentor change", attributes={"referral.id": row.referral_id})
        work.append(Work(row, span, "replan", why))
    out = plan(conn, work, now=now, subjects=subjects)
    for w in work:
        w.span.end()
    return len(rows), out
