"""When a mentor changes: leave moves only the sessions it touches; a mentor who may no longer mentor (an expired
check or a suspended licence, `constraints.barred`) has their cases moved to other mentors. Every move is
published with its reason as the agency is told it: that the mentor is on leave or no longer available, never
their check or licence (that stays with schedulers, `agency_reasons`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta

from opentelemetry import trace
from sqlalchemy import Connection

from services.scheduling.agency_reasons import MENTOR_UNAVAILABLE, Reason, on_leave
from services.scheduling.booking import CaseTask, carry_out, subject_for
from services.scheduling.constraints import barred, venues_for, without_check
from services.scheduling.matching import LONDON, calendar
from services.scheduling.slots import SESSION, leave_interval, to_utc
from services.scheduling.store import (
    add_leave,
    case_from,
    cases_in,
    load_case,
    load_mentor_states,
    load_rooms,
    lock_bookings,
    mentor_records,
    move_session,
    sessions_during,
    set_session_status,
)
from services.scheduling.tables import SessionRow
from shared.contracts.common import SessionSlot
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionsRescheduled, SessionStatus
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects
from shared.telemetry import referral_trace


def move_sessions_for_leave(
    conn: Connection, mentor_id: str, first: date, last: date, *, now: datetime, subjects: Subjects,
    tracer: trace.Tracer,
) -> tuple[dict[str, object], list[Outgoing]]:
    """Record leave and move each session it touches: same mentor, same time, later that week where possible."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    lock_bookings(conn)
    mentors = load_mentor_states(conn, now=now)
    if mentor_id not in mentors:
        raise LookupError(f"no mentor {mentor_id}")
    add_leave(conn, mentor_id, first, last, now=now)
    away = leave_interval(first, last)
    affected = sessions_during(conn, mentor_id, away, now=now)
    by_case: dict[str, list[SessionRow]] = defaultdict(list)
    for s in affected:
        by_case[s.referral_id].append(s)
    mentor = mentors[mentor_id]
    taken = {to_utc(s.start) for s in affected}  # by instant in UTC (see matching.without_booking)
    state = replace(mentor, busy=[(b, e) for b, e in mentor.busy if to_utc(b) not in taken] + [away],
                    places={b: p for b, p in mentor.places.items() if b not in taken})
    out: list[Outgoing] = []
    moved = dropped = 0
    rooms = load_rooms(conn, now=now, excluding=[s.session_id for s in affected])
    for referral_id, sessions in by_case.items():
        row = load_case(conn, referral_id)
        assert row is not None  # a session's case outlives it
        case = case_from(row)
        new_slots, cancelled = [], []
        for s in sessions:
            cal = calendar(case, state, rooms)  # a time when a safe venue has a room free
            local = s.start.astimezone(LONDON)
            start = cal.follow_up(target=local.date(), at=local.time(), days=7,
                                  not_after=to_utc(local + timedelta(days=7)))
            # the same venue if it still has a room, else the best other safe one (rooms and routes re-checked)
            venues = sorted(venues_for(case, state), key=lambda f: f.venue.id != s.venue_id)
            placed = rooms.place(venues, [(start, start + SESSION)], state.itinerary) if start is not None else []
            if start is None or not placed:
                cancelled.append(s.session_id)
                continue
            end, where = start + SESSION, placed[0][1]
            move_session(conn, s.session_id, start=start, end=end, venue=where, now=now)
            state = replace(state, busy=[*state.busy, (start, end)], places={
                **state.places, to_utc(start): (to_utc(start), to_utc(end), where.place)} if where else state.places)
            new_slots.append(SessionSlot(session_id=s.session_id, start=start.astimezone(LONDON),
                                         end=end.astimezone(LONDON), venue=where.venue.name if where else None))
        set_session_status(conn, cancelled, SessionStatus.CANCELLED, now=now)
        moved, dropped = moved + len(new_slots), dropped + len(cancelled)
        event = SessionsRescheduled(
            event_id=f"leave:{referral_id}:{mentor_id}:{first.isoformat()}:{int(now.timestamp())}", occurred_at=now,
            referral_id=referral_id, agency_id=row.agency_id, mentor_id=mentor_id, previous_mentor_id=mentor_id,
            tier=case.tier, sessions=new_slots, cancelled=cancelled, reason=on_leave(len(cancelled)))
        span = tracer.start_span("scheduling move sessions for leave", context=referral_trace(row.trace_context),
                                 attributes={"referral.id": referral_id})
        out.append(outgoing(event, subject_for(subjects, event, row.agency_id), span=span))
        span.end()
    return {"mentor_id": mentor_id, "moved": moved, "cancelled": dropped, "cases": len(by_case)}, out


def why_cases_move(record: MentorRecord, today: date) -> Reason | None:
    """Why a mentor may no longer keep their cases, if so (`constraints.barred`): in full for schedulers; the
    agency is told only that the mentor is no longer available."""
    bar = barred(record, without_check=without_check(record, today))
    if bar is None:
        return None
    if bar.rule == "licence":
        detail = f"{record.id}'s licence is suspended"
    elif record.vetting is None:
        detail = f"{record.id} has no enhanced check recorded"
    else:
        detail = f"{record.id}'s {bar.reason}"
    return Reason(detail, MENTOR_UNAVAILABLE)


def move_cases_away(
    conn: Connection, mentor_id: str, why: Reason, *, now: datetime, subjects: Subjects, tracer: trace.Tracer
) -> tuple[int, list[Outgoing]]:
    """Reschedule every case of a mentor who may no longer take them (`why_cases_move`) with other mentors: a
    scheduler's choice of that mentor (`CaseRow.assigned_by`) ends with the move (`store.set_outcomes`)."""
    rows = cases_in(conn, CaseStatus.SCHEDULED, mentor_id=mentor_id)
    tasks = []
    for row in rows:
        span = tracer.start_span("scheduling replan for mentor change", context=referral_trace(row.trace_context),
                                 attributes={"referral.id": row.referral_id})
        tasks.append(CaseTask(row, span, "reschedule", why))
    out = carry_out(conn, tasks, now=now, subjects=subjects)
    for t in tasks:
        t.span.end()
    return len(rows), out


def hand_on_barred_cases(conn: Connection, *, now: datetime, subjects: Subjects,
                         tracer: trace.Tracer) -> tuple[int, list[Outgoing]]:
    """Move every scheduled case of a mentor who may no longer mentor (`why_cases_move`): a check that has run out
    since the mentor was imported, or a mentor imported before an enhanced check was required. Run as scheduling
    starts and every REROUTE_VETTING_SWEEP_MINUTES, not only on an import."""
    today = now.astimezone(LONDON).date()
    moved: int = 0
    out: list[Outgoing] = []
    for record in mentor_records(conn):
        if (why := why_cases_move(record, today)) is not None and cases_in(conn, CaseStatus.SCHEDULED,
                                                                          mentor_id=record.id):
            cases, events = move_cases_away(conn, record.id, why, now=now, subjects=subjects, tracer=tracer)
            moved, out = moved + cases, out + events
    return moved, out
