"""What a scheduler sees and decides by hand: recommendations, a chosen assignment, and the waitlist."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime, timedelta

from sqlalchemy import Connection

from services.scheduling.agency_reasons import CHOSEN, Reason
from services.scheduling.booking import slots_for, subject_for
from services.scheduling.constraints import Case, MentorState, SafeVenue, first_exclusion, venues_for
from services.scheduling.lifecycle import CANCELLABLE, HOLDING_A_PLACE, LIVE
from services.scheduling.matching import (
    HORIZON_DAYS,
    LONDON,
    calendar,
    deadline_for,
    rank,
    sessions_from,
    without_booking,
)
from services.scheduling.rooms import Rooms, reachable
from services.scheduling.slots import SESSION, earliest_start, to_utc
from services.scheduling.store import (
    add_sessions,
    case_from,
    counted_tier,
    load_case,
    load_mentor_states,
    load_rooms,
    lock_bookings,
    session_row,
    set_case_status,
    set_session_status,
    upcoming_sessions,
    waitlisted_cases,
)
from services.scheduling.tables import CaseRow
from services.scheduling.travel import says
from shared.contracts.common import Event
from shared.contracts.scheduling import CaseStatus, SessionsRescheduled, SessionsScheduled, SessionStatus
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects


class AssignmentRefused(ValueError):
    """The chosen mentor or slot breaks a hard constraint; the message names it."""


def _case_row(conn: Connection, referral_id: str) -> CaseRow:
    case = load_case(conn, referral_id)
    if case is None:
        raise LookupError(f"no referral {referral_id} in scheduling")
    if case.facts is None or case.tier is None:
        raise LookupError(f"{referral_id} is not assessed yet")
    return case


def _without(mentors: MutableMapping[str, MentorState], row: CaseRow, conn: Connection, now: datetime) -> Rooms:
    """The mentors and rooms as if this case held no place and no future sessions (to weigh it afresh)."""
    future = upcoming_sessions(conn, [row.referral_id], LIVE, now=now)
    rooms = load_rooms(conn, now=now, excluding=[s.session_id for s in future])
    if row.mentor_id is None or row.mentor_id not in mentors:
        return rooms
    mentors[row.mentor_id] = without_booking(mentors[row.mentor_id], (s.start for s in future), counted_tier(row))
    return rooms


def recommend(conn: Connection, referral_id: str, *, now: datetime) -> dict[str, object]:
    """The top three mentor + first-slot options with their scores, and why every other mentor is out."""
    row = _case_row(conn, referral_id)
    case = case_from(row)
    mentors = load_mentor_states(conn, now=now)
    rooms = _without(mentors, row, conn, now)
    options = rank(case, list(mentors.values()), now=now, rooms=rooms)
    top = options[:3]
    where = {o.mentor_id: _venue(case, mentors[o.mentor_id], rooms, o.first) for o in top}
    shown = {o.mentor_id for o in top}
    others = []
    for mentor_id, m in mentors.items():
        if mentor_id in shown:
            continue
        ex = first_exclusion(case, m)
        if ex is not None:
            others.append({"mentor_id": mentor_id, "reason": ex.reason})
        elif mentor_id in {o.mentor_id for o in options}:
            others.append({"mentor_id": mentor_id, "reason": "fits, but ranks below the top three"})
        else:
            others.append({"mentor_id": mentor_id, "reason": f"no free slot in the next {HORIZON_DAYS} days"})
    return {
        "referral_id": referral_id, "tier": case.tier.value, "current_mentor": row.mentor_id,
        "options": [{"mentor_id": o.mentor_id, "first_start": o.first[0].isoformat(), "first_end": o.first[1].isoformat(),
                     "deadline_met": o.deadline_met, "score": o.total, "breakdown": o.score,
                     "venue": where[o.mentor_id].venue.name, "route": list(where[o.mentor_id].route),
                     "mentor_route": list(r) if (r := where[o.mentor_id].mentor_route) else None} for o in top],
        "excluded": others,
    }


def _venue(case: Case, mentor: MentorState, rooms: Rooms, first: tuple[datetime, datetime]) -> SafeVenue:
    """Where the first session would be held: the best safe venue with a room free that the mentor can reach in
    time (`rooms.place`); the best safe venue should none (an eligible mentor has at least one)."""
    venues = venues_for(case, mentor)
    return reachable(venues, first[0], first[1], mentor.itinerary, rooms) or venues[0]


def assign(
    conn: Connection, referral_id: str, mentor_id: str, *, start: datetime | None, reason: str, by: str,
    now: datetime, subjects: Subjects,
) -> tuple[dict[str, object], list[Outgoing]]:
    """Book the scheduler's chosen mentor (and first slot), re-checking every hard constraint now."""
    if not reason.strip() or not by.strip():
        raise AssignmentRefused("say who chose this (by) and why (reason): the choice is recorded")
    lock_bookings(conn)
    row = _case_row(conn, referral_id)
    case = case_from(row)
    mentors = load_mentor_states(conn, now=now)
    if mentor_id not in mentors:
        raise AssignmentRefused(f"no mentor {mentor_id}")
    rooms = _without(mentors, row, conn, now)
    mentor = mentors[mentor_id]
    excluded = first_exclusion(case, mentor)
    if excluded is not None:
        raise AssignmentRefused(f"{mentor_id} cannot take this case: {excluded.reason}")
    cal = calendar(case, mentor, rooms)
    earliest = earliest_start(now)
    if start is not None:
        if to_utc(start) < earliest:
            raise AssignmentRefused("the first session must start at least two hours from now, on :00 or :30")
        if start.minute % 30 or start.second or start.microsecond:
            raise AssignmentRefused(f"sessions start on the hour or at half past, not at {start:%H:%M}")
        if not cal.fits(start):
            when = f"{start.astimezone(LONDON):%a %d %b %H:%M}"
            too_far = _travel_refusal(case, mentor, rooms, start) if cal.changed(room_free=None).fits(start) else None
            raise AssignmentRefused(f"{mentor_id} cannot meet at {when}: " + (too_far or (
                "outside their or the young person's availability, already booked, past a licence return time, or no "
                "room free at a safe venue")))
        first = to_utc(start)
    else:
        found = cal.first_fit(not_before=earliest, not_after=to_utc(now) + timedelta(days=HORIZON_DAYS))
        if found is None:
            raise AssignmentRefused(f"{mentor_id} has no free slot in the next {HORIZON_DAYS} days")
        first = found
    cancelled = [s.session_id for s in upcoming_sessions(conn, [referral_id], CANCELLABLE, now=now)]
    set_session_status(conn, cancelled, SessionStatus.CANCELLED, now=now)
    sessions = sessions_from(case, mentor, first.astimezone(LONDON), rooms)
    placed = rooms.place(venues_for(case, mentor), sessions, mentor.itinerary)
    if not placed:
        raise AssignmentRefused(f"no venue has a room free at {mentor_id}'s times")
    slots = slots_for(placed)
    add_sessions(conn, [session_row(referral_id, mentor_id, slot, now, venue)
                        for slot, (_, venue) in zip(slots, placed, strict=True)])
    note = Reason(f"assigned by {by.strip()}: {reason.strip()}", CHOSEN)  # who chose and why: for schedulers only
    # the batch round keeps a person's choice (reoptimisation.kept_by_hand) while the case has the mentor chosen
    set_case_status(conn, referral_id, CaseStatus.SCHEDULED, now=now, mentor_id=mentor_id, reason=note,
                    assigned_by=by.strip(), assigned_mentor_id=mentor_id)
    event: Event
    if row.mentor_id is not None and row.status in HOLDING_A_PLACE:
        event = SessionsRescheduled(
            event_id=f"assigned:{referral_id}:{int(now.timestamp())}", occurred_at=now, referral_id=referral_id,
            agency_id=row.agency_id, mentor_id=mentor_id, previous_mentor_id=row.mentor_id, tier=case.tier,
            sessions=slots, cancelled=cancelled, reason=note.agency)
    else:
        event = SessionsScheduled(
            event_id=f"scheduled:{referral_id}", occurred_at=now, referral_id=referral_id, agency_id=row.agency_id,
            mentor_id=mentor_id, tier=case.tier, sessions=slots, deadline_met=first <= to_utc(deadline_for(case)))
    return {"referral_id": referral_id, "mentor_id": mentor_id, "sessions": len(slots),
            "first": slots[0].start.isoformat()}, [outgoing(event, subject_for(subjects, event, row.agency_id))]


def _travel_refusal(case: Case, mentor: MentorState, rooms: Rooms, start: datetime) -> str | None:
    """Why a start the mentor's and young person's times allow is refused, when the travel rule is why: every
    safe venue with a room free then is too far from the mentor's session before or after. Said of the best of
    them, where the booking would hold it: 'they have a session in Croydon until 17:00 and need 90 minutes to reach
    Enfield (the travel time between venues)'."""
    begin = to_utc(start)
    end = begin + SESSION
    with_room = [fit for fit in venues_for(case, mentor) if reachable([fit], begin, end, None, rooms) is not None]
    if not with_room or reachable(with_room, begin, end, mentor.itinerary) is not None:
        return None
    place = with_room[0].place
    clash = mentor.itinerary.clash(begin, end, place)
    return None if clash is None else f"{says(clash, place, begin, mentor.itinerary.avoid)} (the travel time between venues)"


def waitlist(conn: Connection, *, now: datetime) -> list[dict[str, object]]:
    """Who waits, since when, why, and what capacity would place them."""
    rows = waitlisted_cases(conn)
    mentors = load_mentor_states(conn, now=now)
    result: list[dict[str, object]] = []
    for row in rows:
        case = case_from(row)
        full = [m.record.id for m in mentors.values()
                if (ex := first_exclusion(case, m)) is not None and ex.rule == "capacity"]
        result.append({
            "referral_id": row.referral_id, "agency_id": row.agency_id, "tier": case.tier.value,
            "waiting_since": row.updated_at.isoformat(), "days": (now - row.updated_at).days,
            "reason": row.reason, "would_place": _would_place(case, full),
        })
    return result


def _would_place(case: Case, full: list[str]) -> str:
    if full:
        return f"one more place with {', '.join(sorted(full)[:3])}" + (" (or others)" if len(full) > 3 else "")
    who = "a staff mentor" if case.tier.rank >= 2 else "a mentor"
    gender = "" if case.mentor_gender in ("any", "not_stated") else f" ({case.mentor_gender.replace('_', '-')})"
    return (f"{who}{gender} covering {case.borough} who speaks {' or '.join(case.languages)}, with a free weekly slot"
            + (" in the young person's availability" if case.availability else ""))
