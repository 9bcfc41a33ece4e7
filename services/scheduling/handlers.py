"""Scheduling's batch handlers: collect each referral's facts and tier, then book a mentor or waitlist, and
re-plan the remaining sessions when the tier changes."""

from __future__ import annotations

import json
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Literal

from opentelemetry import trace
from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlmodel import col

from services.scheduling.constraints import TIER_POINTS, Case, MentorState, SafeVenue, venues_for, vetting_expired
from services.scheduling.lifecycle import MISSING, cadence_after
from services.scheduling.matching import LONDON, Match, Waitlist, match, replan, with_booking, without_booking
from services.scheduling.rooms import Placed, Rooms
from services.scheduling.tables import CaseRow, LeaveRow, MentorRow, SessionRow, VenueRow
from shared.contracts.codes import Tier, place_key
from shared.contracts.common import Event, SessionSlot
from shared.contracts.intake import ReferralAccepted
from shared.contracts.risk import RiskAssessed
from shared.contracts.scheduling import (
    MentorRecord,
    SessionsCancelled,
    SessionsRescheduled,
    SessionsScheduled,
    SessionsWaitlisted,
    VenueRecord,
)
from shared.db import lock_for_update
from shared.messaging import Delivery, parse_event
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects

BOOKING_LOCK = "scheduling:booking"
MISSING_WHY = "the young person is reported missing (E05): sessions are suspended until they are found"


@dataclass
class Work:
    """A case to book, re-plan (its cadence tier changed, or it resumes), or suspend (the young person is missing)."""

    row: CaseRow
    span: trace.Span
    kind: Literal["book", "replan", "suspend", "resume"] = "book"
    why: str = ""


def handle_accepted(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Keep the facts scheduling needs; book when the assessment is already here."""
    events = [(d, parse_event(ReferralAccepted, d)) for d in batch]
    cases = _cases(conn, [e.referral_id for _, e in events])
    work: list[Work] = []
    new_rows: list[dict[str, object]] = []
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = cases.get(event.referral_id)
        facts = event.model_dump_json()
        if row is None:
            values: dict[str, object] = {
                "referral_id": event.referral_id, "agency_id": event.agency_id, "facts": facts,
                "person_id": event.person_id, "status": "awaiting_assessment", "updated_at": now}
            new_rows.append(values)
            cases[event.referral_id] = CaseRow.model_validate(values)
            continue
        if event.duplicate or (row.facts is not None and _revision(row.facts) >= event.revision):
            continue  # a repeat submission, or facts we already hold
        conn.execute(
            update(CaseRow).where(col(CaseRow.referral_id) == event.referral_id)
            .values(facts=facts, person_id=event.person_id, updated_at=now)
        )
        row.person_id = event.person_id
        waiting_for_facts = row.facts is None
        row.facts = facts
        if waiting_for_facts and row.tier is not None:
            work.append(Work(row, d.span, "suspend", MISSING_WHY) if row.missing else Work(row, d.span))
    if new_rows:
        conn.execute(insert(CaseRow), new_rows)
    return plan(conn, work, now=now, subjects=subjects)


def handle_assessed(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Record the tier; book when the facts are here; re-plan when the cadence changes; suspend while missing."""
    events = [(d, parse_event(RiskAssessed, d)) for d in batch]
    cases = _cases(conn, [e.referral_id for _, e in events])
    work: list[Work] = []
    new_rows: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []  # in order: a later assessment of the same referral wins
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = cases.get(event.referral_id)
        tier, wellbeing = event.tier.value, event.wellbeing.tier.value
        staffed = event.harm.tier.rank >= Tier.HIGH.rank or "risk_to_staff" in event.flags
        needs = json.dumps(event.focus)
        if row is None:
            values: dict[str, object] = {
                "referral_id": event.referral_id, "agency_id": event.agency_id, "tier": tier, "cadence_tier": tier,
                "wellbeing_tier": wellbeing, "assessment_number": event.number,
                "missing": MISSING in event.escalations, "staffed_only": staffed, "needs": needs,
                "status": "awaiting_referral", "updated_at": now}
            new_rows.append(values)
            cases[event.referral_id] = CaseRow.model_validate(values)
            continue
        if event.number <= row.assessment_number:
            continue  # an older or repeated assessment
        old_cadence = row.cadence_tier
        cadence, lower = (event.tier, 0) if old_cadence is None else cadence_after(
            Tier(old_cadence), event.tier, row.lower_reviews)
        updates.append({"rid": event.referral_id, "b_tier": tier, "b_cadence": cadence.value, "b_lower": lower,
                        "b_wellbeing": wellbeing, "b_number": event.number, "b_missing": MISSING in event.escalations,
                        "b_staffed": staffed, "b_needs": needs})
        safety_changed = staffed != row.staffed_only
        missing = MISSING in event.escalations
        row.tier, row.cadence_tier, row.lower_reviews = tier, cadence.value, lower
        row.wellbeing_tier, row.assessment_number, row.missing = wellbeing, event.number, missing
        row.staffed_only, row.needs = staffed, needs
        if row.facts is None or row.status == "closed":
            continue
        if missing and row.status != "suspended":
            work.append(Work(row, d.span, "suspend", MISSING_WHY))
        elif not missing and row.status == "suspended":
            work.append(Work(row, d.span, "resume", "the young person is no longer missing: sessions resume"))
        elif missing:
            continue
        elif row.status == "scheduled" and old_cadence != cadence.value:
            work.append(Work(row, d.span, "replan", f"tier changed {old_cadence} → {cadence.value}: new cadence"))
        elif row.status == "scheduled" and safety_changed and staffed:
            work.append(Work(row, d.span, "replan", "harm is now high or above: staffed venue, ending by 19:00"))
        elif row.status in {"awaiting_assessment", "waitlisted"}:
            work.append(Work(row, d.span))
    if new_rows:
        conn.execute(insert(CaseRow), new_rows)
    if updates:  # one statement for the batch, before planning reads the tiers back
        conn.execute(
            update(CaseRow).where(col(CaseRow.referral_id) == bindparam("rid")).values(
                tier=bindparam("b_tier"), cadence_tier=bindparam("b_cadence"), lower_reviews=bindparam("b_lower"),
                wellbeing_tier=bindparam("b_wellbeing"), assessment_number=bindparam("b_number"),
                missing=bindparam("b_missing"), staffed_only=bindparam("b_staffed"), needs=bindparam("b_needs"),
                updated_at=now),
            updates,
        )
    return plan(conn, work, now=now, subjects=subjects)


def plan(conn: Connection, work: list[Work], *, now: datetime, subjects: Subjects) -> list[Outgoing]:
    """Book or re-plan each case in turn against the mentors as they stand, so no mentor is double-booked."""
    if not work:
        return []
    lock_for_update(conn, BOOKING_LOCK)
    mentors = load_mentor_states(conn, now=now)
    rooms = load_rooms(conn, now=now)
    earlier = previous_mentors(conn, [item.row for item in work if item.kind == "book" or item.row.mentor_id is None])
    out: list[Outgoing] = []
    new_sessions: list[dict[str, object]] = []
    statuses: list[dict[str, object]] = []
    for item in work:
        row, span = item.row, item.span
        case = case_from(row)
        if item.kind == "suspend":
            out += [outgoing(e, subject_for(subjects, e, row.agency_id), span=span)
                    for e in _suspend(conn, item, case, mentors, now=now)]
            span.set_attribute("reroute.outcome", "suspended")
            continue
        if item.kind == "book" or row.mentor_id is None:
            case = replace(case, previous_mentor=earlier.get(row.referral_id))
            result = match(case, list(mentors.values()), now=now, rooms=rooms)
            events = _booking_events(row, case, result, now=now)
        else:
            result, events = _replan(conn, item, case, mentors, rooms, now=now)
        if isinstance(result, Match):
            placed = rooms.place(venues_for(case, mentors[result.mentor_id]), result.sessions)
            if placed:
                result = replace(result, sessions=[interval for interval, _ in placed])
            else:
                result = Waitlist("no venue has a room free at the mentor's times")
                events = [_waitlisted(row, case, result.reason, now=now)]
        if isinstance(result, Match):
            slots = slots_for(placed)
            new_sessions += [session_row(row.referral_id, result.mentor_id, slot, now, venue)
                             for slot, (_, venue) in zip(slots, placed, strict=True)]
            events = [e.model_copy(update={"sessions": slots}) if hasattr(e, "sessions") else e for e in events]
            mentors[result.mentor_id] = with_booking(mentors[result.mentor_id], result.sessions, case.tier)
            statuses.append({"rid": row.referral_id, "status": "scheduled", "mentor_id": result.mentor_id,
                             "deadline_met": result.deadline_met, "reason": None, "updated_at": now})
            row.status, row.mentor_id = "scheduled", result.mentor_id
            span.set_attribute("mentor.id", result.mentor_id)
            span.set_attribute("sessions.count", len(slots))
        else:
            statuses.append({"rid": row.referral_id, "status": "waitlisted", "mentor_id": None,
                             "deadline_met": None, "reason": result.reason, "updated_at": now})
            row.status, row.mentor_id = "waitlisted", None
        span.set_attribute("reroute.outcome", "scheduled" if isinstance(result, Match) else "waitlisted")
        out += [outgoing(e, subject_for(subjects, e, row.agency_id), span=span) for e in events]
    if new_sessions:
        conn.execute(insert(SessionRow), new_sessions)
    if statuses:  # one statement for the batch
        conn.execute(
            update(CaseRow).where(col(CaseRow.referral_id) == bindparam("rid"))
            .values(status=bindparam("status"), mentor_id=bindparam("mentor_id"),
                    deadline_met=bindparam("deadline_met"), reason=bindparam("reason"),
                    updated_at=bindparam("updated_at")),
            statuses,
        )
    return out


def _booking_events(row: CaseRow, case: Case, result: Match | Waitlist, *, now: datetime) -> list[Event]:
    if isinstance(result, Match):
        return [SessionsScheduled(
            event_id=f"scheduled:{row.referral_id}", occurred_at=now, referral_id=row.referral_id,
            agency_id=row.agency_id, mentor_id=result.mentor_id, tier=case.tier, sessions=[],
            deadline_met=result.deadline_met,
        )]
    return [_waitlisted(row, case, result.reason, now=now)]


def _replan(
    conn: Connection, item: Work, case: Case, mentors: dict[str, MentorState], rooms: Rooms, *, now: datetime
) -> tuple[Match | Waitlist, list[Event]]:
    """Cancel the case's sessions that have not started and plan them again at the new tier's cadence."""
    row = item.row
    assert row.mentor_id is not None
    cancelled = conn.execute(
        select(col(SessionRow.session_id), col(SessionRow.start), col(SessionRow.end), col(SessionRow.venue_id))
        .where(col(SessionRow.referral_id) == row.referral_id,
               col(SessionRow.status).in_(["booked", "confirmed", "suspended"]),
               col(SessionRow.start) > now)
        .order_by(col(SessionRow.start))
    ).all()
    ids = [sid for sid, *_ in cancelled]
    for _, start, end, venue_id in cancelled:
        rooms.release(venue_id, start, end)
    if ids:
        conn.execute(
            update(SessionRow)
            .where(col(SessionRow.session_id).in_(ids))
            .values(status="cancelled", sequence=col(SessionRow.sequence) + 1, updated_at=now)
        )
    # As if the case had no place yet: its points (already at its new tier) go too, as booking adds them back.
    current = without_booking(mentors[row.mentor_id], (start for _, start, *_ in cancelled), case.tier)
    mentors[row.mentor_id] = current
    prefer = cancelled[0][1].astimezone(LONDON) if cancelled else None
    result = replan(case, current, list(mentors.values()), now=now, prefer=prefer, rooms=rooms)
    why = item.why
    if isinstance(result, Match):
        moved = result.mentor_id != row.mentor_id
        reason = why + (f"; {row.mentor_id} cannot take a {case.tier.value} case, so a new mentor" if moved else "")
        return result, [SessionsRescheduled(
            event_id=f"rescheduled:{row.referral_id}:{row.assessment_number}", occurred_at=now,
            referral_id=row.referral_id, agency_id=row.agency_id, mentor_id=result.mentor_id,
            previous_mentor_id=row.mentor_id, tier=case.tier, sessions=[], cancelled=ids, reason=reason,
        )]
    cancel = SessionsCancelled(
        event_id=f"cancelled:{row.referral_id}:{row.assessment_number}", occurred_at=now,
        referral_id=row.referral_id, agency_id=row.agency_id, cancelled=ids, reason=f"{why}; {result.reason}",
    )
    return result, [cancel, _waitlisted(row, case, result.reason, now=now)]


def _suspend(conn: Connection, item: Work, case: Case, mentors: dict[str, MentorState], *,
             now: datetime) -> list[Event]:
    """Hold the case's future sessions while the young person is missing; the mentor keeps the place."""
    row = item.row
    ids = list(conn.execute(
        select(col(SessionRow.session_id)).where(
            col(SessionRow.referral_id) == row.referral_id,
            col(SessionRow.status).in_(["booked", "confirmed"]),
            col(SessionRow.start) > now,
        )
    ).scalars())
    if ids:
        conn.execute(
            update(SessionRow)
            .where(col(SessionRow.session_id).in_(ids))
            .values(status="suspended", sequence=col(SessionRow.sequence) + 1, updated_at=now)
        )
    set_status(conn, row.referral_id, "suspended", now, reason=item.why)
    row.status = "suspended"
    if row.mentor_id is None:  # not booked yet: nothing to hold, the case waits
        return [_waitlisted(row, case, item.why, now=now)]
    return [SessionsCancelled(
        event_id=f"suspended:{row.referral_id}:{row.assessment_number}", occurred_at=now,
        referral_id=row.referral_id, agency_id=row.agency_id, cancelled=ids, reason=item.why,
    )]


def _waitlisted(row: CaseRow, case: Case, reason: str, *, now: datetime) -> SessionsWaitlisted:
    return SessionsWaitlisted(
        event_id=f"waitlisted:{row.referral_id}:{int(now.timestamp())}", occurred_at=now,
        referral_id=row.referral_id, agency_id=row.agency_id, tier=case.tier, reason=reason,
    )


def slots_for(placed: list[Placed]) -> list[SessionSlot]:
    return [SessionSlot(session_id=f"ses_{secrets.token_hex(8)}", start=s, end=e, venue=v.venue.name if v else None)
            for (s, e), v in placed]


def load_rooms(conn: Connection, *, now: datetime, excluding: list[str] | None = None) -> Rooms:
    """The rooms taken at each venue by sessions still to come (other than those `excluding` names, which are
    being moved)."""
    held: dict[str, list[tuple[datetime, datetime]]] = {}
    query = select(col(SessionRow.venue_id), col(SessionRow.start), col(SessionRow.end)).where(
        col(SessionRow.venue_id).is_not(None), col(SessionRow.end) > now,
        col(SessionRow.status).in_(["booked", "confirmed"]),
    )
    if excluding:
        query = query.where(col(SessionRow.session_id).not_in(excluding))
    for venue_id, start, end in conn.execute(query):
        if venue_id is not None:  # (the query keeps only those with a venue)
            held.setdefault(venue_id, []).append((start, end))
    return Rooms(held)


def session_row(referral_id: str, mentor_id: str, slot: SessionSlot, now: datetime,
                venue: SafeVenue | None) -> dict[str, object]:
    """A sessions-table row for a newly booked slot, with the venue and the routes planned to it."""
    return {"session_id": slot.session_id, "referral_id": referral_id, "mentor_id": mentor_id, **venue_columns(venue),
            "start": slot.start, "end": slot.end, "status": "booked", "sequence": 0, "created_at": now,
            "updated_at": now}


def venue_columns(venue: SafeVenue | None) -> dict[str, str | None]:
    """A session's venue and planned routes, as stored."""
    if venue is None:
        return {"venue_id": None, "route": None, "mentor_route": None}
    mentor_route = json.dumps(list(venue.mentor_route)) if venue.mentor_route is not None else None
    return {"venue_id": venue.venue.id, "route": json.dumps(list(venue.route)), "mentor_route": mentor_route}


def subject_for(subjects: Subjects, event: Event, agency: str) -> str:
    by_type = {SessionsScheduled: subjects.scheduled, SessionsWaitlisted: subjects.waitlisted,
               SessionsRescheduled: subjects.rescheduled, SessionsCancelled: subjects.cancelled}
    return by_type[type(event)](agency)


def load_mentor_states(conn: Connection, *, now: datetime) -> dict[str, MentorState]:
    """Every mentor with their caseload, risk-weighted points, bookings and leave, vetting and venues, as of now."""
    caseloads: Counter[str] = Counter()
    points: defaultdict[str, float] = defaultdict(float)
    for mentor_id, tier in conn.execute(
        select(col(CaseRow.mentor_id), func.coalesce(col(CaseRow.cadence_tier), col(CaseRow.tier)))
        .where(col(CaseRow.status).in_(["scheduled", "suspended"]))
    ):
        if mentor_id is None:  # scheduled and suspended cases always have one
            continue
        caseloads[mentor_id] += 1
        points[mentor_id] += TIER_POINTS[Tier(tier)]
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    for mentor_id, start, end in conn.execute(
        select(col(SessionRow.mentor_id), col(SessionRow.start), col(SessionRow.end)).where(
            col(SessionRow.status).in_(["booked", "confirmed"]), col(SessionRow.end) > now - timedelta(days=1)
        )
    ):
        busy.setdefault(mentor_id, []).append((start.astimezone(LONDON), end.astimezone(LONDON)))
    today = now.astimezone(LONDON).date()
    for mentor_id, first, last in conn.execute(
        select(col(LeaveRow.mentor_id), col(LeaveRow.first_day), col(LeaveRow.last_day)).where(col(LeaveRow.last_day) >= today)
    ):
        busy.setdefault(mentor_id, []).append(leave_interval(first, last))
    venues = [VenueRecord.model_validate_json(r) for r in conn.execute(select(col(VenueRow.record))).scalars()]
    states: dict[str, MentorState] = {}
    for mentor_id, raw in conn.execute(select(col(MentorRow.mentor_id), col(MentorRow.record)).order_by(col(MentorRow.mentor_id))):
        record = MentorRecord.model_validate_json(raw)
        states[mentor_id] = MentorState(
            record=record,
            caseload=caseloads.get(mentor_id, 0),
            busy=busy.get(mentor_id, []),
            points=points.get(mentor_id, 0.0),
            vetting_expired=vetting_expired(record, today),
            venues=_venues_of(record, venues),
        )
    return states


def leave_interval(first: date, last: date) -> tuple[datetime, datetime]:
    """Leave from the start of `first` to the end of `last`, Europe/London days, both inclusive."""
    return (datetime.combine(first, time(0), tzinfo=LONDON),
            datetime.combine(last + timedelta(days=1), time(0), tzinfo=LONDON))


def _venues_of(record: MentorRecord, venues: list[VenueRecord]) -> tuple[VenueRecord, ...] | None:
    """The registered venues the mentor may use; None (the default staffed offices) when none apply."""
    if record.venues is not None:
        chosen = [v for v in venues if v.id in record.venues]
    else:
        boroughs = {place_key(b) for b in record.boroughs}
        chosen = [v for v in venues if place_key(v.borough) in boroughs]
    return tuple(chosen) if chosen else None


def counted_tier(row: CaseRow) -> Tier:
    """The tier a case is planned and counted at: its cadence tier, never below the risk tier."""
    return Tier(row.cadence_tier or row.tier or "low")


def case_from(row: CaseRow) -> Case:
    assert row.facts is not None and row.tier is not None
    facts = ReferralAccepted.model_validate_json(row.facts)
    needs = tuple(json.loads(row.needs)) if row.needs else ()
    return Case(
        referral_id=row.referral_id,
        tier=counted_tier(row),
        borough=facts.person.borough,
        languages=facts.person.languages,
        mentor_gender=facts.preferences.mentor_gender,
        preferred_language=facts.preferences.language,
        availability=facts.availability,
        unsafe_areas=facts.unsafe_areas,
        accepted_at=facts.occurred_at,
        staffed_only=row.staffed_only,
        needs=needs + tuple(i.code for i in facts.indicators),
        conflict_groups=tuple(facts.conflict_groups),
        gender_required=facts.preferences.mentor_gender_required,
    )


def previous_mentors(conn: Connection, rows: list[CaseRow]) -> dict[str, str]:
    """For each referral, the mentor of the same young person's most recently updated other referral, where
    there is one (continuity, S01); one query for the batch."""
    people = {r.person_id for r in rows if r.person_id is not None}
    if not people:
        return {}
    theirs: defaultdict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for person_id, referral_id, mentor_id, updated_at in conn.execute(
        select(col(CaseRow.person_id), col(CaseRow.referral_id), col(CaseRow.mentor_id), col(CaseRow.updated_at))
        .where(col(CaseRow.person_id).in_(people), col(CaseRow.mentor_id).is_not(None))
    ):
        if person_id is not None and mentor_id is not None:
            theirs[person_id].append((updated_at, referral_id, mentor_id))
    latest = {person: sorted(entries, reverse=True)[:2] for person, entries in theirs.items()}  # one may be itself
    found: dict[str, str] = {}
    for row in rows:
        other = next((mentor for _, rid, mentor in latest.get(row.person_id or "", []) if rid != row.referral_id), None)
        if other is not None:
            found[row.referral_id] = other
    return found


def _revision(facts: str) -> int:
    return ReferralAccepted.model_validate_json(facts).revision


def _cases(conn: Connection, referral_ids: list[str]) -> dict[str, CaseRow]:
    rows = conn.execute(select(CaseRow).where(col(CaseRow.referral_id).in_(referral_ids)))
    return {r.referral_id: CaseRow.model_validate(r._mapping) for r in rows}


def set_status(conn: Connection, referral_id: str, status: str, now: datetime, **values: object) -> None:
    conn.execute(
        update(CaseRow).where(col(CaseRow.referral_id) == referral_id).values(status=status, updated_at=now, **values)
    )
