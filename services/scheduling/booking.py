"""Booking: each case in turn is booked, rescheduled, suspended or resumed against the mentors as they stand,
so no mentor and no room is double-booked; the sessions, the case's outcome and its events are stored in the
caller's transaction.

The consumers (`handlers.py`), a mentor import (retrying the waitlist), a closure that frees a mentor's place
(`retry_freed`) and moving a barred mentor's cases (`mentor_changes.py`) all book through `carry_out`.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from opentelemetry import trace
from sqlalchemy import Connection

from services.scheduling.agency_reasons import NEW_MENTOR, Reason, no_mentor_yet
from services.scheduling.constraints import Case, MentorIndex, venues_for
from services.scheduling.lifecycle import CANCELLABLE, LIVE
from services.scheduling.matching import LONDON, Match, Waitlist, match, reschedule, with_booking, without_booking
from services.scheduling.rooms import Placed, Rooms
from services.scheduling.slots import to_utc
from services.scheduling.store import (
    Outcome,
    UpcomingSession,
    add_sessions,
    booking_state,
    case_from,
    cases_in,
    keep,
    lock_bookings,
    mentor_record,
    move_session,
    previous_mentors,
    remember,
    session_row,
    set_case_status,
    set_outcomes,
    set_session_status,
    upcoming_sessions,
)
from services.scheduling.tables import CaseRow
from shared.contracts.codes import place_key
from shared.contracts.common import Event, SessionSlot
from shared.contracts.scheduling import (
    CaseStatus,
    SessionsCancelled,
    SessionsRescheduled,
    SessionsScheduled,
    SessionStatus,
    SessionsWaitlisted,
)
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects
from shared.telemetry import referral_trace

NO_REASON = Reason("", "")  # a booking needs none


@dataclass
class CaseTask:
    """A case to book; to reschedule (its cadence tier changed, it resumes, or its mentor may no longer take it);
    or to suspend (the young person is missing). `why` is said for every kind but "book"."""

    row: CaseRow
    span: trace.Span
    kind: Literal["book", "reschedule", "suspend", "resume"] = "book"
    why: Reason = NO_REASON


def carry_out(conn: Connection, tasks: list[CaseTask], *, now: datetime, subjects: Subjects) -> list[Outgoing]:
    """Book, reschedule or suspend each case in turn against the mentors as they stand, so no mentor is
    double-booked."""
    if not tasks:
        return []
    lock_bookings(conn)
    mentors, rooms = booking_state(conn, now=now)
    # Only plain bookings change the mentors and rooms here exactly as they change the stored rows; after any other
    # kind (a reschedule keeps or moves sessions, a suspension holds them) the next batch loads them again.
    plain = all(task.kind == "book" and task.row.mentor_id is None for task in tasks)
    earlier = previous_mentors(conn, [t.row for t in tasks if t.kind == "book" or t.row.mentor_id is None])
    out: list[Outgoing] = []
    new_sessions: list[dict[str, object]] = []
    outcomes: list[Outcome] = []
    for task in tasks:
        row, span = task.row, task.span
        case = case_from(row)
        if task.kind == "suspend":
            out += [outgoing(e, subject_for(subjects, e, row.agency_id), span=span)
                    for e in _suspend(conn, task, case, now=now)]
            span.set_attribute("reroute.outcome", CaseStatus.SUSPENDED.value)
            continue
        said: Reason | None = None  # why a reschedule moved the case, in full and as the agency is told it
        before: list[UpcomingSession] = []  # a rescheduled case's sessions to come: each is kept or cancelled
        if task.kind == "book" or row.mentor_id is None:
            case = replace(case, previous_mentor=earlier.get(row.referral_id))
            result = match(case, mentors, now=now, rooms=rooms)  # only those covering the borough are looked at
            events = _booking_events(row, case, result, now=now)
        else:
            before = upcoming_sessions(conn, [row.referral_id], CANCELLABLE, now=now)
            result, events, said = _reschedule(task, case, mentors, rooms, before, now=now)
        if isinstance(result, Match):
            taker = mentors[result.mentor_id]
            placed = rooms.place(venues_for(case, taker), result.sessions, taker.itinerary)
            if placed:
                result = replace(result, sessions=[interval for interval, _ in placed])
            else:
                room = "no room free at a safe venue at the mentor's times"
                result, said = Waitlist(room, no_mentor_yet(room)), None
                events = [*_cancellations(events), waitlisted(row, case, result.agency_reason, now=now)]
        kept: dict[int, UpcomingSession] = {}
        if isinstance(result, Match):
            if result.mentor_id == row.mentor_id:
                kept = _same_slots(before, placed)
            slots = slots_for(placed, kept)
            for i, (slot, (_, venue)) in enumerate(zip(slots, placed, strict=True)):
                if i in kept:  # the same mentor at the same time: the session stays (same UID in calendars)
                    move_session(conn, slot.session_id, start=slot.start, end=slot.end, venue=venue, now=now,
                                 status=SessionStatus.BOOKED if kept[i].status == SessionStatus.SUSPENDED else None)
                else:
                    new_sessions.append(session_row(row.referral_id, result.mentor_id, slot, now, venue))
            events = [e.model_copy(update={"sessions": slots}) if hasattr(e, "sessions") else e for e in events]
            mentors[result.mentor_id] = with_booking(mentors[result.mentor_id], result.sessions, case.tier,
                                                     venues=[venue for _, venue in placed])
            outcomes.append(Outcome(row.referral_id, CaseStatus.SCHEDULED, result.mentor_id, result.deadline_met, said))
            row.status, row.mentor_id = CaseStatus.SCHEDULED, result.mentor_id
            span.set_attribute("mentor.id", result.mentor_id)
            span.set_attribute("sessions.count", len(slots))
        else:
            outcomes.append(Outcome(row.referral_id, CaseStatus.WAITLISTED, None, None,
                                    said or Reason(result.reason, result.agency_reason)))
            row.status, row.mentor_id = CaseStatus.WAITLISTED, None
        if before:
            staying = {s.session_id for s in kept.values()}
            gone = [s.session_id for s in before if s.session_id not in staying]
            set_session_status(conn, gone, SessionStatus.CANCELLED, now=now)
            events = [e.model_copy(update={"cancelled": gone}) if hasattr(e, "cancelled") else e for e in events]
        span.set_attribute("reroute.outcome", CaseStatus(row.status).value)
        out += [outgoing(e, subject_for(subjects, e, row.agency_id), span=span) for e in events]
    add_sessions(conn, new_sessions)
    set_outcomes(conn, outcomes, now=now)
    remember(mentors)  # the next batch reuses what it can of these, where the rows it reads then agree
    if plain:
        keep(conn, mentors, rooms, now=now)  # and all of them, if nothing else changes meanwhile
    return out


def retry_freed(conn: Connection, mentor_ids: Collection[str | None], *, now: datetime, subjects: Subjects,
                tracer: trace.Tracer, tried: Collection[str] = ()) -> list[Outgoing]:
    """Closed cases freed these mentors' places: the waiting cases in a borough one of them covers are tried again,
    as after a mentor import. Call it once per transaction, after the closures, and leave out the cases `tried`
    in it already (a case tried twice in one transaction would repeat its waitlisted event's id)."""
    boroughs: set[str] = set()
    for mentor_id in {m for m in mentor_ids if m}:
        if record := mentor_record(conn, mentor_id):
            boroughs |= {place_key(b) for b in record.boroughs}
    if not boroughs:
        return []
    waiting = [CaseTask(row, tracer.start_span("scheduling retry waitlisted", attributes={
        "referral.id": row.referral_id}, context=referral_trace(row.trace_context)))
        for row in cases_in(conn, CaseStatus.WAITLISTED)
        if row.referral_id not in tried and row.facts is not None and row.tier is not None
        and case_from(row).borough_key in boroughs]
    try:
        return carry_out(conn, waiting, now=now, subjects=subjects)
    finally:
        for task in waiting:
            task.span.end()


def _booking_events(row: CaseRow, case: Case, result: Match | Waitlist, *, now: datetime) -> list[Event]:
    if isinstance(result, Match):
        return [SessionsScheduled(
            event_id=f"scheduled:{row.referral_id}", occurred_at=now, referral_id=row.referral_id,
            agency_id=row.agency_id, mentor_id=result.mentor_id, tier=case.tier, sessions=[],
            deadline_met=result.deadline_met,
        )]
    return [waitlisted(row, case, result.agency_reason, now=now)]


def _reschedule(
    task: CaseTask, case: Case, mentors: MentorIndex, rooms: Rooms, before: list[UpcomingSession], *,
    now: datetime,
) -> tuple[Match | Waitlist, list[Event], Reason]:
    """Book the case again (at the new tier's cadence) as if its sessions to come, `before`, were free; the
    caller keeps those the new plan repeats and cancels the rest. The events say why as the agency is told it;
    the reason returned says it in full too."""
    row = task.row
    assert row.mentor_id is not None
    ids = [s.session_id for s in before]
    for s in before:
        rooms.release(s.venue_id, s.start, s.end)
    # As if the case had no place yet: its points (already at its new tier) go too, as booking adds them back.
    current = without_booking(mentors[row.mentor_id], (s.start for s in before), case.tier)
    mentors[row.mentor_id] = current
    prefer = before[0].start.astimezone(LONDON) if before else None
    result = reschedule(case, current, list(mentors.values()), now=now, prefer=prefer, rooms=rooms)
    why = task.why
    if isinstance(result, Match):
        if result.mentor_id != row.mentor_id:  # which rule ruled the mentor out stays with schedulers
            why = why.then(Reason(f"{row.mentor_id} cannot take a {case.tier.value} case, so a new mentor", NEW_MENTOR))
        return result, [SessionsRescheduled(
            event_id=f"rescheduled:{row.referral_id}:{row.assessment_number}", occurred_at=now,
            referral_id=row.referral_id, agency_id=row.agency_id, mentor_id=result.mentor_id,
            previous_mentor_id=row.mentor_id, tier=case.tier, sessions=[], cancelled=ids, reason=why.agency,
        )], why
    why = why.then(Reason(result.reason, result.agency_reason))
    return result, [_cancelled(row, ids, why.agency, now=now), waitlisted(row, case, result.agency_reason, now=now)], why


def _cancelled(row: CaseRow, ids: list[str], reason: str, *, now: datetime) -> SessionsCancelled:
    return SessionsCancelled(
        event_id=f"cancelled:{row.referral_id}:{row.assessment_number}", occurred_at=now,
        referral_id=row.referral_id, agency_id=row.agency_id, cancelled=ids, reason=reason,
    )


def _cancellations(events: list[Event]) -> list[Event]:
    """A rescheduled case that found no room after all: its sessions are cancelled, said as the move was."""
    return [SessionsCancelled(event_id=e.event_id.replace("rescheduled:", "cancelled:", 1), occurred_at=e.occurred_at,
                              referral_id=e.referral_id, agency_id=e.agency_id, cancelled=e.cancelled, reason=e.reason)
            for e in events if isinstance(e, SessionsRescheduled)]


def _same_slots(before: list[UpcomingSession], placed: list[Placed]) -> dict[int, UpcomingSession]:
    """Which placed sessions repeat one the case already had (same start and end): by index in `placed`."""
    by_time = {(to_utc(s.start), to_utc(s.end)): s for s in before}
    return {i: by_time[key] for i, ((start, end), _) in enumerate(placed)
            if (key := (to_utc(start), to_utc(end))) in by_time}


def _suspend(conn: Connection, task: CaseTask, case: Case, *, now: datetime) -> list[Event]:
    """Hold the case's future sessions while the young person is missing; the mentor keeps the place."""
    row = task.row
    ids = [s.session_id for s in upcoming_sessions(conn, [row.referral_id], LIVE, now=now)]
    set_session_status(conn, ids, SessionStatus.SUSPENDED, now=now)
    set_case_status(conn, row.referral_id, CaseStatus.SUSPENDED, now=now, reason=task.why)
    row.status = CaseStatus.SUSPENDED
    if row.mentor_id is None:  # not booked yet: nothing to hold, the case waits
        return [waitlisted(row, case, task.why.agency, now=now)]
    return [SessionsCancelled(
        event_id=f"suspended:{row.referral_id}:{row.assessment_number}", occurred_at=now,
        referral_id=row.referral_id, agency_id=row.agency_id, cancelled=ids, reason=task.why.agency,
    )]


def waitlisted(row: CaseRow, case: Case, reason: str, *, now: datetime) -> SessionsWaitlisted:
    """`sessions.waitlisted`: `reason` is what the agency is told (`agency_reasons`)."""
    return SessionsWaitlisted(
        event_id=f"waitlisted:{row.referral_id}:{int(now.timestamp())}", occurred_at=now,
        referral_id=row.referral_id, agency_id=row.agency_id, tier=case.tier, reason=reason,
    )


def slots_for(placed: list[Placed], kept: dict[int, UpcomingSession] | None = None) -> list[SessionSlot]:
    """The placed sessions as the events carry them: a kept session keeps its id, any other gets a new one."""
    kept = kept or {}
    return [SessionSlot(session_id=kept[i].session_id if i in kept else f"ses_{secrets.token_hex(8)}", start=s, end=e,
                        venue=v.venue.name if v else None)
            for i, ((s, e), v) in enumerate(placed)]


def subject_for(subjects: Subjects, event: Event, agency: str) -> str:
    by_type = {SessionsScheduled: subjects.scheduled, SessionsWaitlisted: subjects.waitlisted,
               SessionsRescheduled: subjects.rescheduled, SessionsCancelled: subjects.cancelled}
    return by_type[type(event)](agency)
