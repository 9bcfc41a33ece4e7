"""The batch round (`reroute plan`): re-optimise waitlisted referrals and unconfirmed assignments together with
the exact min-cost-flow planner, without chaos: a session the young person confirmed never moves, a young
person who has a mentor keeps them unless the round gives them another, and every booking is re-checked."""

from __future__ import annotations

from datetime import datetime

from opentelemetry import trace
from sqlalchemy import Connection, insert, select, update
from sqlmodel import col

from services.scheduling.constraints import MentorState, first_exclusion, venues_for
from services.scheduling.handlers import (
    BOOKING_LOCK,
    case_from,
    counted_tier,
    load_mentor_states,
    load_rooms,
    session_row,
    set_status,
    slots_for,
    subject_for,
)
from services.scheduling.matching import calendar, with_booking, without_booking
from services.scheduling.optimiser import optimise
from services.scheduling.tables import CaseRow, SessionRow
from shared.contracts.common import Event
from shared.contracts.scheduling import SessionsRescheduled, SessionsScheduled
from shared.db import lock_for_update
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects


def run_round(
    conn: Connection, *, now: datetime, subjects: Subjects, tracer: trace.Tracer, time_limit_s: float = 30
) -> tuple[dict[str, object], list[Outgoing]]:
    lock_for_update(conn, BOOKING_LOCK)
    rows = [CaseRow.model_validate(r._mapping) for r in conn.execute(
        select(CaseRow).where(col(CaseRow.status).in_(["waitlisted", "scheduled"]),
                              col(CaseRow.facts).is_not(None)))]
    confirmed = set(conn.execute(select(col(SessionRow.referral_id)).where(
        col(SessionRow.status) == "confirmed", col(SessionRow.start) > now)).scalars())
    movable = [r for r in rows if r.referral_id not in confirmed]
    mentors = load_mentor_states(conn, now=now)
    future = _future_unconfirmed(conn, [r.referral_id for r in movable if r.status == "scheduled"], now)
    released = _release(mentors, [r for r in movable if r.status == "scheduled"], future)
    cases = [case_from(r) for r in movable]
    result = optimise(cases, list(released.values()), now=now, time_limit_s=time_limit_s)

    state = dict(mentors)  # as it stands: kept assignments keep their sessions
    rooms = load_rooms(conn, now=now)
    out: list[Outgoing] = []
    placed = moved = 0
    for row, case in zip(movable, cases, strict=True):
        chosen = result.assignments.get(row.referral_id)
        if chosen is None or chosen.mentor_id == row.mentor_id:
            continue  # nobody loses a mentor, and an unchanged choice keeps its sessions
        mentor = state.get(chosen.mentor_id)
        if mentor is None or first_exclusion(case, mentor) is not None:
            continue
        old_sessions = future.get(row.referral_id, [])
        for _, start, end, venue_id in old_sessions:  # its rooms are free for the new plan (incl. its own)
            rooms.release(venue_id, start, end)
        cal = calendar(case, mentor, rooms)
        sessions = [s for s in chosen.sessions if cal.fits(s[0])]
        bookings = rooms.place(venues_for(case, mentor), sessions) if sessions[:1] == chosen.sessions[:1] else []
        if not bookings:  # the first slot is gone since the solve: leave this case as it is
            for _, start, end, venue_id in old_sessions:
                if venue_id is not None:
                    rooms.hold(venue_id, start, end)
            continue
        slots = slots_for(bookings)
        cancelled = [sid for sid, *_ in old_sessions]
        if cancelled:
            conn.execute(update(SessionRow).where(col(SessionRow.session_id).in_(cancelled))
                         .values(status="cancelled", sequence=col(SessionRow.sequence) + 1, updated_at=now))
        if row.mentor_id in state:
            state[row.mentor_id] = without_booking(
                state[row.mentor_id], (s for _, s, *_ in old_sessions), counted_tier(row))
        conn.execute(insert(SessionRow), [session_row(row.referral_id, chosen.mentor_id, slot, now, venue)
                                          for slot, (_, venue) in zip(slots, bookings, strict=True)])
        state[chosen.mentor_id] = with_booking(mentor, [i for i, _ in bookings], case.tier)
        set_status(conn, row.referral_id, "scheduled", now, mentor_id=chosen.mentor_id,
                    deadline_met=chosen.deadline_met, reason="placed by the batch round")
        event: Event
        if row.status == "waitlisted":
            placed += 1
            event = SessionsScheduled(
                event_id=f"scheduled:{row.referral_id}", occurred_at=now, referral_id=row.referral_id,
                agency_id=row.agency_id, mentor_id=chosen.mentor_id, tier=case.tier, sessions=slots,
                deadline_met=chosen.deadline_met)
        else:
            moved += 1
            event = SessionsRescheduled(
                event_id=f"round:{row.referral_id}:{int(now.timestamp())}", occurred_at=now,
                referral_id=row.referral_id, agency_id=row.agency_id, mentor_id=chosen.mentor_id,
                previous_mentor_id=row.mentor_id or "", tier=case.tier, sessions=slots, cancelled=cancelled,
                reason="batch round: another mentor lets more young people be placed")
        span = tracer.start_span("scheduling batch round", attributes={"referral.id": row.referral_id})
        out.append(outgoing(event, subject_for(subjects, event, row.agency_id), span=span))
        span.end()
    waiting = sum(1 for r in movable if r.status == "waitlisted")
    return {"considered": len(movable), "pinned": len(rows) - len(movable), "waitlisted_before": waiting,
            "placed": placed, "moved": moved, "solve_seconds": round(result.solve_seconds, 3)}, out


Held = tuple[str, datetime, datetime, str | None]  # a booked session: id, start, end, venue id


def _future_unconfirmed(conn: Connection, referral_ids: list[str], now: datetime) -> dict[str, list[Held]]:
    found: dict[str, list[Held]] = {}
    for rid, sid, start, end, venue_id in conn.execute(
        select(col(SessionRow.referral_id), col(SessionRow.session_id), col(SessionRow.start), col(SessionRow.end), col(SessionRow.venue_id))
        .where(col(SessionRow.referral_id).in_(referral_ids), col(SessionRow.status) == "booked",
               col(SessionRow.start) > now)
    ):
        found.setdefault(rid, []).append((sid, start, end, venue_id))
    return found


def _release(mentors: dict[str, MentorState], rows: list[CaseRow],
             future: dict[str, list[Held]]) -> dict[str, MentorState]:
    released = dict(mentors)
    for row in rows:
        if row.mentor_id in released:
            released[row.mentor_id] = without_booking(
                released[row.mentor_id], (s for _, s, *_ in future.get(row.referral_id, [])), counted_tier(row))
    return released
