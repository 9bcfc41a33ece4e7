"""The re-optimisation round (`reroute plan`, and every REROUTE_PLAN_EVERY_MINUTES; "the batch round" in the CLI,
the README and the events' reasons): waitlisted referrals and unconfirmed assignments are placed again together by
the exact min-cost-flow optimiser, without chaos:

- a session the young person confirmed never moves;
- a mentor a scheduler chose by hand (`reroute assign`: `CaseRow.assigned_by`, while the case's mentor is still
  `assigned_mentor_id`) is kept, sessions and all, even with a first session past the horizon: the round never
  undoes a person's decision, for a score, its horizon or to make room. Its exemption sets aside the mentor's
  caseload and risk-weighted load (a cut to either moves the services' own placements, never this one), and no
  other rule: it stands until a person changes it, or until the mentor truly can no longer keep the young person:
  barred or their licence suspended (mentor_changes.py), or another hard rule that now fails (then the round may
  move them, as below). Like a confirmed session's, such a case is left out of the plan and counted as pinned.
  The round is not the only re-plan: an online re-plan after a new assessment (booking's reschedule) keeps the
  mentor where their booked weekly time still fits, else searches the online match's 28 days, so it can still
  move a hand-chosen case whose mentor has no time until past the horizon, and the choice ends with that move;
- a young person who has a mentor keeps them (continuity: a rupture harms trust), unless moving them is what lets the
  round place someone (a waiting young person, or one whose mentor can no longer keep them), or their own mentor can
  no longer keep them: no longer eligible for them (a check, a licence, a rule), no free time within the horizon, or
  a caseload cut below the young people they have. Never for a better score. The optimiser makes that choice (its
  `current` mentors, three cost levels: placements, then moves, then the match), and the result counts each move
  under its reason;
- a move happens only with as many sessions, as regular (`no_worse`);
- every booking is re-checked."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

from opentelemetry import trace
from sqlalchemy import Connection

from services.scheduling.agency_reasons import MENTOR_UNAVAILABLE, REPLANNED, Reason
from services.scheduling.booking import slots_for, subject_for
from services.scheduling.constraints import Case, MentorState, first_exclusion, venues_for
from services.scheduling.matching import (
    CADENCE,
    HORIZON_DAYS,
    LONDON,
    Match,
    calendar,
    deadline_for,
    sessions_from,
    with_booking,
    without_booking,
)
from services.scheduling.optimiser import Allocation
from services.scheduling.planning import PlanJob
from services.scheduling.rooms import Rooms
from services.scheduling.slots import Interval, earliest_start, to_utc
from services.scheduling.store import (
    UpcomingSession,
    add_sessions,
    case_from,
    cases_in,
    counted_tier,
    load_cases,
    load_mentor_states,
    load_rooms,
    lock_bookings,
    referrals_with_confirmed_sessions,
    session_row,
    set_case_status,
    set_session_status,
    upcoming_sessions,
)
from services.scheduling.tables import CaseRow
from shared.contracts.codes import Tier
from shared.contracts.common import Event, SessionSlot
from shared.contracts.scheduling import CaseStatus, SessionsRescheduled, SessionsScheduled, SessionStatus
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects
from shared.telemetry import referral_trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundInput:
    """What the optimiser plans from, as read at one moment, without the booking lock."""

    now: datetime
    considered: list[CaseRow]  # waitlisted and scheduled cases with their facts
    movable: list[CaseRow]  # of those, the ones neither a confirmed session nor a scheduler's choice pins
    cases: list[Case]  # the matcher's view of each movable case
    mentors: list[MentorState]  # as if every movable case's unconfirmed sessions and place were free


def read_round(conn: Connection, *, now: datetime) -> RoundInput:
    """The round's input: no lock taken, as the plan is checked again when it is booked (`book_round`)."""
    rows = [r for r in cases_in(conn, CaseStatus.WAITLISTED, CaseStatus.SCHEDULED) if r.facts is not None]
    confirmed = referrals_with_confirmed_sessions(conn, now=now)
    mentors = load_mentor_states(conn, now=now)
    movable = [r for r in rows if r.referral_id not in confirmed and not kept_by_hand(r, mentors)]
    scheduled = [r for r in movable if r.status == CaseStatus.SCHEDULED]
    released = _release(mentors, scheduled, _unconfirmed(conn, [r.referral_id for r in scheduled], now))
    return RoundInput(now, rows, movable, [case_from(r) for r in movable], list(released.values()))


def kept_by_hand(row: CaseRow, mentors: Mapping[str, MentorState]) -> bool:
    """Whether a scheduler chose the case's mentor by hand, the case still has that mentor (`assigned_mentor_id`: a
    replica that changed the mentor without clearing `assigned_by` ends the choice all the same), and the mentor
    may still take it: every hard rule passes but the caseload and the risk-weighted load, which are set aside (a
    cut to either moves the services' own placements; a mentor who may no longer mentor hands their cases on in
    mentor_changes.py). Such a case keeps its mentor and sessions in the round, whatever their free time within
    the horizon."""
    mentor = mentors.get(row.mentor_id or "")
    if (row.status != CaseStatus.SCHEDULED or row.assigned_by is None or mentor is None
            or row.assigned_mentor_id != row.mentor_id):
        return False
    return first_exclusion(case_from(row), replace(mentor, caseload=0, points=0.0)) is None


TIME_LIMIT_S = 30.0
"""The round's bound on the optimiser's repair re-solves (`optimise`'s time_limit_s)."""


def round_job(round_input: RoundInput, *, time_limit_s: float = TIME_LIMIT_S) -> PlanJob:
    """What the optimiser plans from, as plain data: the service plans it in a process of its own
    (services/scheduling/planning.py)."""
    current = {r.referral_id: r.mentor_id for r in round_input.movable
               if r.status == CaseStatus.SCHEDULED and r.mentor_id is not None}
    return PlanJob.of(round_input.cases, round_input.mentors, now=round_input.now, current=current,
                      time_limit_s=time_limit_s)


def plan_round(round_input: RoundInput, *, time_limit_s: float = TIME_LIMIT_S) -> Allocation:
    """The optimiser's plan in this process (pure and CPU-bound: the service makes it in a process of its own)."""
    plan = round_job(round_input, time_limit_s=time_limit_s).plan()
    warn_if_urgent_level_dropped(round_input, plan)
    return plan


def warn_if_urgent_level_dropped(round_input: RoundInput, plan: Allocation) -> None:
    if plan.urgent_level_dropped:
        log.warning("batch round over %d referrals: too wide to weigh very high referrals' 24 h deadlines above the "
                    "match; planned without (very high still placed first). Smaller rounds keep it.",
                    len(round_input.cases))


def book_round(
    conn: Connection, planned: RoundInput, result: Allocation, *, now: datetime, subjects: Subjects,
    tracer: trace.Tracer,
) -> tuple[dict[str, object], list[Outgoing]]:
    """Book the plan under the booking lock against the cases, mentors and rooms as they stand now: a case that
    changed since the plan was read (a newer assessment, a booking, a confirmed session, a scheduler's choice of
    mentor) stays as it is, and every booking is checked again, so nothing booked meanwhile, here or by another
    replica, is double-booked.

    The plan decides who goes to which mentor; its times give way where they no longer fit (`_sessions_now`). A
    case whose new mentor has no place until another case moves on is tried again once that move is booked,
    whatever order the cases were read in."""
    lock_bookings(conn)
    confirmed = referrals_with_confirmed_sessions(conn, now=now)
    fresh = load_cases(conn, [r.referral_id for r in planned.movable])
    rows = [now_row for r in planned.movable  # in the order the plan was read, as one transaction would book
            if (now_row := fresh.get(r.referral_id)) is not None and now_row.updated_at == r.updated_at
            and r.referral_id not in confirmed]  # updated_at: any write to the case since, an assignment too
    mentors = load_mentor_states(conn, now=now)
    future = _unconfirmed(conn, [r.referral_id for r in rows if r.status == CaseStatus.SCHEDULED], now)
    state = dict(mentors)  # as it stands: kept assignments keep their sessions
    rooms = load_rooms(conn, now=now)
    # nobody loses a mentor, and an unchanged choice keeps its sessions
    to_book = [(row, chosen) for row in rows
               if (chosen := result.assignments.get(row.referral_id)) is not None and chosen.mentor_id != row.mentor_id]
    out: list[Outgoing] = []
    placed = moved = mentor_cannot_keep = 0
    while to_book:
        left: list[tuple[CaseRow, Match]] = []
        for row, chosen in to_book:
            why = _why(row, result)
            booked = _book(conn, row, chosen, state, rooms, future.get(row.referral_id, []), why, now=now)
            if booked is None:
                left.append((row, chosen))
                continue
            event: Event
            if row.status == CaseStatus.WAITLISTED:
                placed += 1
                event = SessionsScheduled(
                    event_id=f"scheduled:{row.referral_id}", occurred_at=now, referral_id=row.referral_id,
                    agency_id=row.agency_id, mentor_id=chosen.mentor_id, tier=counted_tier(row), sessions=booked.slots,
                    deadline_met=booked.deadline_met)
            else:
                moved += 1
                mentor_cannot_keep += row.referral_id in result.must_move
                event = SessionsRescheduled(
                    event_id=f"round:{row.referral_id}:{int(now.timestamp())}", occurred_at=now,
                    referral_id=row.referral_id, agency_id=row.agency_id, mentor_id=chosen.mentor_id,
                    previous_mentor_id=row.mentor_id or "", tier=counted_tier(row), sessions=booked.slots,
                    cancelled=booked.cancelled, reason=why.agency)
            span = tracer.start_span("scheduling batch round", context=referral_trace(row.trace_context),
                                     attributes={"referral.id": row.referral_id})
            out.append(outgoing(event, subject_for(subjects, event, row.agency_id), span=span))
            span.end()
        if len(left) == len(to_book):  # nothing booked in this pass: nothing left can be
            break
        to_book = left
    waiting = sum(1 for r in planned.movable if r.status == CaseStatus.WAITLISTED)
    return {"considered": len(planned.movable), "pinned": len(planned.considered) - len(planned.movable),
            "waitlisted_before": waiting,
            "placed": placed, "moved": moved, "moved_to_make_room": moved - mentor_cannot_keep,
            "moved_mentor_cannot_keep": mentor_cannot_keep, "solve_seconds": round(result.solve_seconds, 3)}, out


def _why(row: CaseRow, result: Allocation) -> Reason:
    """Why the round books the case with another mentor, for schedulers and as the agency is told it."""
    if row.status == CaseStatus.WAITLISTED:
        return Reason("placed by the batch round", REPLANNED)
    cannot_keep = result.must_move.get(row.referral_id)
    if cannot_keep is None:
        return Reason("moved by the batch round to make room for another young person", REPLANNED)
    return Reason(f"moved by the batch round: {row.mentor_id} can no longer keep them ({cannot_keep})",
                  MENTOR_UNAVAILABLE)


@dataclass(frozen=True)
class _Booked:
    """What booking one case with its new mentor gave it."""

    slots: list[SessionSlot]
    cancelled: list[str]  # the session ids the case had before
    deadline_met: bool


def _book(conn: Connection, row: CaseRow, chosen: Match, state: dict[str, MentorState], rooms: Rooms,
          old: list[UpcomingSession], why: Reason, *, now: datetime) -> _Booked | None:
    """Book the case with the plan's mentor as things stand: its sessions and rooms, both mentors' places and the
    case's status. None, with nothing changed, when the mentor cannot take it now, or when the young person has
    sessions and would have fewer, or fewer on their cadence (`no_worse`)."""
    case = case_from(row)
    mentor = state.get(chosen.mentor_id)
    if mentor is None or first_exclusion(case, mentor) is not None:
        return None
    for s in old:  # its rooms are free for its new sessions (and for others)
        rooms.release(s.venue_id, s.start, s.end)
    bookings = rooms.place(venues_for(case, mentor), _sessions_now(case, mentor, chosen, rooms, now=now),
                           mentor.itinerary)
    if not bookings or not no_worse([(s.start, s.end) for s in old], [i for i, _ in bookings], case.tier):
        for (start, end), venue in bookings:
            if venue is not None:
                rooms.release(venue.venue.id, start, end)
        for s in old:
            if s.venue_id is not None:
                rooms.hold(s.venue_id, s.start, s.end)
        return None
    slots = slots_for(bookings)
    cancelled = [s.session_id for s in old]
    set_session_status(conn, cancelled, SessionStatus.CANCELLED, now=now)
    if row.mentor_id in state:
        state[row.mentor_id] = without_booking(state[row.mentor_id], (s.start for s in old), counted_tier(row))
    add_sessions(conn, [session_row(row.referral_id, chosen.mentor_id, slot, now, venue)
                        for slot, (_, venue) in zip(slots, bookings, strict=True)])
    state[chosen.mentor_id] = with_booking(mentor, [i for i, _ in bookings], case.tier,
                                           venues=[venue for _, venue in bookings])
    deadline_met = to_utc(bookings[0][0][0]) <= to_utc(deadline_for(case))
    set_case_status(conn, row.referral_id, CaseStatus.SCHEDULED, now=now, mentor_id=chosen.mentor_id,
                    deadline_met=deadline_met, reason=why)
    return _Booked(slots, cancelled, deadline_met)


def _sessions_now(case: Case, mentor: MentorState, chosen: Match, rooms: Rooms, *, now: datetime) -> list[Interval]:
    """The case's sessions with the plan's mentor as things stand now. The plan's times leave rooms out (and the
    round takes a while), so where one no longer fits (its room taken, or too soon now) the tier's follow-ups are
    found again from the planned first session, or from the mentor's next free start as the online match would
    find it; none when the mentor has no free start within the horizon."""
    cal = calendar(case, mentor, rooms)
    earliest = earliest_start(now)
    first = chosen.sessions[0][0]
    if to_utc(first) >= earliest and cal.fits(first):
        if all(cal.fits(start) for start, _ in chosen.sessions[1:]):
            return chosen.sessions
        return sessions_from(case, mentor, first, rooms)
    found = cal.first_fit(not_before=earliest, not_after=to_utc(now) + timedelta(days=HORIZON_DAYS))
    return [] if found is None else sessions_from(case, mentor, found.astimezone(LONDON), rooms)


def no_worse(current: Sequence[Interval], proposed: Sequence[Interval], tier: Tier) -> bool:
    """Whether a young person with `current` sessions still to come may move to `proposed`: as many sessions, and
    as many of them on the tier's cadence (`on_cadence`), so a re-plan never leaves gaps that were not there."""
    return len(proposed) >= len(current) and on_cadence(proposed, tier) >= on_cadence(current, tier)


def on_cadence(sessions: Sequence[Interval], tier: Tier) -> int:
    """How many sessions follow the one before on the tier's cadence: one of its intervals later, at the same
    London wall-clock time."""
    intervals = set(CADENCE[tier])
    starts = sorted(start.astimezone(LONDON) for start, _ in sessions)
    return sum(1 for before, after in pairwise(starts)
               if after.time() == before.time() and (after.date() - before.date()).days in intervals)


def _unconfirmed(conn: Connection, referral_ids: list[str], now: datetime) -> dict[str, list[UpcomingSession]]:
    """Each referral's booked sessions still to come that the young person has not confirmed."""
    found: dict[str, list[UpcomingSession]] = {}
    for s in upcoming_sessions(conn, referral_ids, [SessionStatus.BOOKED], now=now):
        found.setdefault(s.referral_id, []).append(s)
    return found


def _release(mentors: Mapping[str, MentorState], rows: list[CaseRow],
             future: dict[str, list[UpcomingSession]]) -> dict[str, MentorState]:
    released = dict(mentors)
    for row in rows:
        if row.mentor_id in released:
            released[row.mentor_id] = without_booking(
                released[row.mentor_id], (s.start for s in future.get(row.referral_id, [])), counted_tier(row))
    return released
