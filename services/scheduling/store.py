"""Scheduling's store (a repository): every query of its tables, and the loading of rows into what the decisions read
(`Case`, `MentorState`, `Rooms`).

A session changes only through `set_session_status` or `move_session`, which bump its `sequence` so calendar
feeds send the change; a case's status changes through `set_case_status` or `set_outcomes`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, bindparam, case, cast, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlmodel import col

from services.scheduling.agency_reasons import Reason
from services.scheduling.constraints import (
    TIER_POINTS,
    Case,
    GenderRequest,
    MentorIndex,
    MentorState,
    SafeVenue,
    default_offices,
    without_check,
)
from services.scheduling.lifecycle import HOLDING_A_PLACE, HOLDING_A_ROOM, LIVE
from services.scheduling.rooms import Rooms
from services.scheduling.slots import LONDON, SESSION, Interval, leave_interval
from services.scheduling.tables import BookingVersionRow, CaseRow, LeaveRow, MentorRow, SessionRow, VenueRow
from services.scheduling.travel import WHOLE_DAY, Located, Place, place_of
from shared.contracts.codes import LONDON_BOROUGHS, Tier, place_key
from shared.contracts.common import SessionSlot, WeeklyWindow
from shared.contracts.intake import ReferralRecorded
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionStatus, VenueRecord
from shared.db import lock_for_update

BOOKING_LOCK = "scheduling:booking"


def lock_bookings(conn: Connection) -> None:
    """Take the booking lock for this transaction: one booking change at a time across replicas, so no mentor
    or room is double-booked.

    On PostgreSQL the booking version's row is locked first: every write booking reads changes that row (by
    trigger), so from here until commit no other transaction can change what booking reads, and the version read
    under the lock stays true (`booking_state`). Taking it before the advisory lock means that whoever holds the
    advisory lock holds the row too, so a transaction that changed the row before asking for the lock (a handler
    saving a case that holds a place, then booking) cannot deadlock with one that holds the lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(col(BookingVersionRow.token)).with_for_update())
    lock_for_update(conn, BOOKING_LOCK)


def booking_version(conn: Connection) -> str:
    """The token that every change to what booking reads replaces (migration 0007's triggers)."""
    return str(conn.execute(select(col(BookingVersionRow.token))).scalar_one())


# The mentors and rooms as this process's last booking left them, with the booking version and the day they are
# true for; taken (emptied) by whoever uses them, since booking changes them in place.
_KEPT: list[tuple[str, date, MentorIndex, Rooms]] = []


def booking_state(conn: Connection, *, now: datetime) -> tuple[MentorIndex, Rooms]:
    """The mentors and rooms as they stand, for booking under the lock: as this process's last booking left them
    when the booking version still reads as it did then (no change by anyone since, on any replica) on the same
    day, else loaded (`load_mentor_states`, `load_rooms`)."""
    kept = _KEPT.pop() if _KEPT else None
    if kept is not None and kept[:2] == (booking_version(conn), now.astimezone(LONDON).date()):
        return kept[2], kept[3]
    return load_mentor_states(conn, now=now), load_rooms(conn, now=now)


def keep(conn: Connection, mentors: MentorIndex, rooms: Rooms, *, now: datetime) -> None:
    """After a booking whose changes `mentors` and `rooms` hold exactly as stored: keep them for the next, tagged
    with the version this transaction leaves (a token no other transaction makes: if this one rolls back, or
    another writes after it, the next reads another and loads)."""
    _KEPT[:] = [(booking_version(conn), now.astimezone(LONDON).date(), mentors, rooms)]


def forget_bookings() -> None:
    """Keep nothing for the next booking (it loads)."""
    _KEPT.clear()


# Cases

def case_row(values: Mapping[Any, Any]) -> CaseRow:
    """A case from the columns a consumer inserts, validated (the rows read back are loaded by `_case_rows`)."""
    return CaseRow.model_validate(values)


def _case_rows(conn: Connection, query: Select[CaseRow]) -> list[CaseRow]:
    """The cases `query` selects, loaded as SQLAlchemy's ORM loads a mapped class: each row's values, already of their
    columns' types, go into the instance as they are, where `model_validate` set the 21 columns one by one through
    SQLAlchemy's instrumentation (45-100 µs a row, against 8-17 here: docs/performance.md). The session only loads:
    it joins the caller's transaction and leaves it open, and the rows it returns belong to no session. A caller that
    has begun none (a request's reads on `engine.connect()`) gets one begun here, as its first statement would have,
    so its later reads see the same state: a session that begins the transaction would end it on closing."""
    if not conn.in_transaction():
        conn.begin()
    with Session(conn) as session:
        return list(session.scalars(query))


def load_case(conn: Connection, referral_id: str) -> CaseRow | None:
    found = _case_rows(conn, select(CaseRow).where(col(CaseRow.referral_id) == referral_id))
    return found[0] if found else None


def load_cases(conn: Connection, referral_ids: Collection[str]) -> dict[str, CaseRow]:
    return {r.referral_id: r for r in _case_rows(conn, select(CaseRow).where(col(CaseRow.referral_id).in_(referral_ids)))}


def cases_in(conn: Connection, *statuses: CaseStatus, mentor_id: str | None = None) -> list[CaseRow]:
    """The cases in any of `statuses` (of one mentor, given `mentor_id`)."""
    query = select(CaseRow).where(col(CaseRow.status).in_(statuses))
    if mentor_id is not None:
        query = query.where(col(CaseRow.mentor_id) == mentor_id)
    return _case_rows(conn, query)


def waitlisted_cases(conn: Connection) -> list[CaseRow]:
    """The waitlist, longest waiting first."""
    return _case_rows(conn, select(CaseRow).where(col(CaseRow.status) == CaseStatus.WAITLISTED)
                      .order_by(col(CaseRow.updated_at)))


def closed_before(conn: Connection, cutoff: datetime) -> list[str]:
    """The referrals closed before `cutoff` (due for purging under the retention policy)."""
    return list(conn.execute(select(col(CaseRow.referral_id)).where(
        col(CaseRow.status) == CaseStatus.CLOSED, col(CaseRow.updated_at) < cutoff)).scalars())


def add_cases(conn: Connection, rows: list[dict[str, object]]) -> None:
    """New cases, one statement for the batch."""
    if rows:
        conn.execute(insert(CaseRow), rows)


def save_facts(conn: Connection, referral_id: str, *, facts: str, person_id: str | None, now: datetime) -> None:
    """A newer revision of the accepted referral's facts."""
    conn.execute(update(CaseRow).where(col(CaseRow.referral_id) == referral_id)
                 .values(facts=facts, person_id=person_id, updated_at=now))


def save_assessments(conn: Connection, rows: Sequence[CaseRow], *, now: datetime) -> None:
    """The assessment columns of each case as the rows now hold them, one statement for the batch."""
    latest = {row.referral_id: row for row in rows}
    if not latest:
        return
    conn.execute(
        update(CaseRow).where(col(CaseRow.referral_id) == bindparam("rid")).values(
            tier=bindparam("b_tier"), cadence_tier=bindparam("b_cadence"), lower_reviews=bindparam("b_lower"),
            wellbeing_tier=bindparam("b_wellbeing"), assessment_number=bindparam("b_number"),
            missing=bindparam("b_missing"), staffed_only=bindparam("b_staffed"), needs=bindparam("b_needs"),
            updated_at=now),
        [{"rid": r.referral_id, "b_tier": r.tier, "b_cadence": r.cadence_tier, "b_lower": r.lower_reviews,
          "b_wellbeing": r.wellbeing_tier, "b_number": r.assessment_number, "b_missing": r.missing,
          "b_staffed": r.staffed_only, "b_needs": r.needs} for r in latest.values()],
    )


def set_case_status(conn: Connection, referral_id: str, status: CaseStatus, *, now: datetime, reason: Reason,
                    **values: Any) -> None:
    """A case's new status and why (in full, and as its agency is told it), with any other columns that change
    with it (mentor_id, deadline_met, assigned_by and assigned_mentor_id). Unless `assigned_by` is given, a
    scheduler's choice of mentor stands only while the case keeps that mentor and a place with them
    (`_choice_kept`)."""
    if "assigned_by" not in values:
        if status not in HOLDING_A_PLACE:
            values |= {"assigned_by": None, "assigned_mentor_id": None}
        elif "mentor_id" in values:
            values |= _choice_kept(values["mentor_id"])
    conn.execute(update(CaseRow).where(col(CaseRow.referral_id) == referral_id)
                 .values(status=status, updated_at=now, reason=reason.detail, agency_reason=reason.agency, **values))


def _choice_kept(mentor_id: object) -> dict[str, ColumnElement[str | None]]:
    """`assigned_by` and `assigned_mentor_id` as a case's mentor is set to `mentor_id` (a value or a bound
    parameter): kept when it is the mentor the case has, else none (the services chose, or another path moved the
    case). Both databases read the row's old mentor_id on the right of an UPDATE's SET."""
    same = col(CaseRow.mentor_id) == mentor_id
    return {"assigned_by": case((same, col(CaseRow.assigned_by)), else_=None),
            "assigned_mentor_id": case((same, col(CaseRow.assigned_mentor_id)), else_=None)}


@dataclass(frozen=True)
class Outcome:
    """What booking decided for a case: scheduled with a mentor, or waitlisted with a reason."""

    referral_id: str
    status: CaseStatus
    mentor_id: str | None
    deadline_met: bool | None
    reason: Reason | None


def set_outcomes(conn: Connection, outcomes: Sequence[Outcome], *, now: datetime) -> None:
    """Each case's booking outcome, one statement for the batch: a scheduler's choice of mentor stands where the
    case keeps that mentor (`_choice_kept`), and ends where it moves or waits."""
    if not outcomes:
        return
    conn.execute(
        update(CaseRow).where(col(CaseRow.referral_id) == bindparam("rid"))
        .values(status=bindparam("b_status"), mentor_id=bindparam("b_mentor"), deadline_met=bindparam("b_met"),
                reason=bindparam("b_reason"), agency_reason=bindparam("b_agency_reason"), updated_at=now,
                **_choice_kept(bindparam("b_mentor"))),
        [{"rid": o.referral_id, "b_status": o.status, "b_mentor": o.mentor_id, "b_met": o.deadline_met,
          "b_reason": o.reason and o.reason.detail, "b_agency_reason": o.reason and o.reason.agency}
         for o in outcomes],
    )


def counted_tier(row: CaseRow) -> Tier:
    """The tier a case is planned and counted at: its cadence tier, never below the risk tier."""
    return Tier(row.cadence_tier or row.tier or "low")


def case_from(row: CaseRow) -> Case:
    """The matcher's view of an accepted, assessed case."""
    assert row.facts is not None and row.tier is not None
    facts = _matching_facts(row.facts)
    needs = tuple(json.loads(row.needs)) if row.needs else ()
    return Case(
        referral_id=row.referral_id,
        tier=counted_tier(row),
        borough=facts.borough,
        languages=list(facts.languages),  # lists of its own, as each case had from its own parse
        mentor_gender=facts.mentor_gender,
        preferred_language=facts.preferred_language,
        availability=list(facts.availability),
        unsafe_areas=list(facts.unsafe_areas),
        accepted_at=facts.accepted_at,
        staffed_only=row.staffed_only,
        needs=needs + facts.indicators,
        conflict_groups=facts.conflict_groups,
        gender_required=facts.gender_required,
    )


class MatchingFacts(NamedTuple):
    """What the matcher reads of a referral's facts (`ReferralRecorded`), immutable (its windows are frozen models)."""

    borough: str
    languages: tuple[str, ...]
    mentor_gender: GenderRequest
    preferred_language: str | None
    availability: tuple[WeeklyWindow, ...]
    unsafe_areas: tuple[str, ...]
    accepted_at: datetime
    indicators: tuple[str, ...]
    conflict_groups: tuple[str, ...]
    gender_required: bool

    @classmethod
    def of(cls, facts: ReferralRecorded) -> MatchingFacts:
        return cls(facts.person.borough, tuple(facts.person.languages), facts.preferences.mentor_gender,
                   facts.preferences.language, tuple(facts.availability), tuple(facts.unsafe_areas), facts.occurred_at,
                   tuple(i.code for i in facts.indicators), tuple(facts.conflict_groups),
                   facts.preferences.mentor_gender_required)


FACTS_KEPT = 4096
"""How many referrals' facts this process keeps parsed, by a digest of their stored text (`remember_facts`)."""
_FACTS: dict[bytes, MatchingFacts] = {}


def _digest(stored: str) -> bytes:
    """The key of a stored text: a digest, so that the process keeps no referral id, person id or offence history, only
    what the matcher reads (docs/security.md, *In the services' memory*)."""
    return hashlib.blake2b(stored.encode(), digest_size=16).digest()


def remember_facts(stored: str, facts: ReferralRecorded) -> None:
    """`facts`, stored as `stored` (its `model_dump_json()`): booking reads them from it without parsing it again. Kept
    by the text's digest, so what is found is always what the text says, whoever stored it; the oldest go first."""
    _FACTS[_digest(stored)] = MatchingFacts.of(facts)
    while len(_FACTS) > FACTS_KEPT:
        del _FACTS[next(iter(_FACTS))]


def forget_facts(stored: Iterable[str]) -> None:
    """Erasure: the facts kept for these stored texts go (this process's; another replica's go as newer ones come)."""
    for text in stored:
        _FACTS.pop(_digest(text), None)


def _matching_facts(stored: str) -> MatchingFacts:
    """The facts stored as `stored`: as remembered when this process stored them, else parsed (a case's facts stored
    by another replica, or long ago)."""
    found = _FACTS.get(_digest(stored))
    return found if found is not None else MatchingFacts.of(ReferralRecorded.model_validate_json(stored))


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


# Mentors, venues and leave


def mentor_record(conn: Connection, mentor_id: str) -> MentorRecord | None:
    raw = conn.execute(select(col(MentorRow.record)).where(col(MentorRow.mentor_id) == mentor_id)).scalar()
    return None if raw is None else MentorRecord.model_validate_json(raw)


def mentor_records(conn: Connection) -> list[MentorRecord]:
    """Every mentor, by id."""
    return [MentorRecord.model_validate_json(raw) for raw in
            conn.execute(select(col(MentorRow.record)).order_by(col(MentorRow.mentor_id))).scalars()]


def venue_records(conn: Connection) -> list[VenueRecord]:
    """Every venue, by id: parsed again only when a stored record changed since the last read (`_venue_set`)."""
    return list(_venue_set(conn)[1])


def save_mentors(conn: Connection, records: Sequence[MentorRecord], *, now: datetime) -> set[str]:
    """Create or update each mentor; the ids that already existed."""
    return _upsert(conn, MentorRow, "mentor_id", records, now=now)


def save_venues(conn: Connection, records: Sequence[VenueRecord], *, now: datetime) -> set[str]:
    """Create or update each venue; the ids that already existed."""
    return _upsert(conn, VenueRow, "venue_id", records, now=now)


def _upsert(conn: Connection, table: type[MentorRow | VenueRow], key: str,
            records: Sequence[MentorRecord | VenueRecord], *, now: datetime) -> set[str]:
    column = getattr(table, key)
    existing = set(conn.execute(select(column)).scalars())
    for record in records:
        values = {"record": record.model_dump_json(), "updated_at": now}
        if record.id in existing:
            conn.execute(update(table).where(column == record.id).values(**values))
        else:
            conn.execute(insert(table).values(**{key: record.id}, **values))
    return existing


def add_leave(conn: Connection, mentor_id: str, first: date, last: date, *, now: datetime) -> None:
    conn.execute(insert(LeaveRow).values(mentor_id=mentor_id, first_day=first, last_day=last, created_at=now))


def mentor_leave(conn: Connection, mentor_id: str, first: date, last: date) -> list[tuple[date, date]]:
    """The mentor's leave overlapping the days `first` to `last` (inclusive), in order."""
    return [(a, b) for a, b in conn.execute(
        select(col(LeaveRow.first_day), col(LeaveRow.last_day))
        .where(col(LeaveRow.mentor_id) == mentor_id, col(LeaveRow.last_day) >= first, col(LeaveRow.first_day) <= last)
        .order_by(col(LeaveRow.first_day)))]


def load_mentor_states(conn: Connection, *, now: datetime) -> MentorIndex:
    """Every mentor with their caseload, risk-weighted points, bookings and leave, vetting and venues, as of now.

    Every row is read again each time; what is worked out from them (the parsed record, the venues, each day's
    free starts, the safe venues) is reused from the last time only where everything it was worked out from reads
    the same (`_Seen`), so nothing another replica or a rolled-back transaction did can leave it stale."""
    caseloads: Counter[str] = Counter()
    points: defaultdict[str, float] = defaultdict(float)
    for mentor_id, tier in conn.execute(
        select(col(CaseRow.mentor_id), func.coalesce(col(CaseRow.cadence_tier), col(CaseRow.tier)))
        .where(col(CaseRow.status).in_(HOLDING_A_PLACE))
    ):
        if mentor_id is None:  # scheduled and suspended cases always have one
            continue
        caseloads[mentor_id] += 1
        points[mentor_id] += TIER_POINTS[Tier(tier)]
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    places: dict[str, dict[datetime, Located]] = {}
    venues = _venue_set(conn)
    where = _places(venues[1])
    # Booked sessions hold the mentor's time; for the travel rule, those that took place count too: attendance is
    # recorded once a session starts, and the mentor still has to get from it to the next (up to a day's reach,
    # WHOLE_DAY, which reaches further back than `recent`: so the query reads from `travel_from`).
    recent, travel_from = now - timedelta(days=1), now - WHOLE_DAY
    for mentor_id, start, end, venue_id, status in conn.execute(
        select(col(SessionRow.mentor_id), col(SessionRow.start), col(SessionRow.end), col(SessionRow.venue_id),
               col(SessionRow.status)).where(
            col(SessionRow.status).in_(HOLDING_A_ROOM), col(SessionRow.end) > travel_from
        )
    ):
        if status in LIVE and end > recent:
            busy.setdefault(mentor_id, []).append((start.astimezone(LONDON), end.astimezone(LONDON)))
        if venue_id is not None and (place := where.get(venue_id)) is not None and end > travel_from:
            start, end = start.astimezone(UTC), end.astimezone(UTC)
            places.setdefault(mentor_id, {})[start] = (start, end, place)
    today = now.astimezone(LONDON).date()
    for mentor_id, first, last in conn.execute(
        select(col(LeaveRow.mentor_id), col(LeaveRow.first_day), col(LeaveRow.last_day)).where(col(LeaveRow.last_day) >= today)
    ):
        busy.setdefault(mentor_id, []).append(leave_interval(first, last))
    states = MentorIndex()
    for mentor_id, raw in conn.execute(
        select(col(MentorRow.mentor_id), col(MentorRow.record)).order_by(col(MentorRow.mentor_id))
    ):
        seen = _SEEN.get(mentor_id)
        same_record = seen is not None and seen.raw == raw
        record = seen.state.record if seen is not None and same_record else MentorRecord.model_validate_json(raw)
        same_venues = same_record and seen is not None and seen.venues is venues
        fresh = MentorState(
            record=record,
            caseload=caseloads.get(record.id, 0),
            busy=busy.get(record.id, []),
            points=points.get(record.id, 0.0),
            without_check=without_check(record, today),
            venues=seen.state.venues if seen is not None and same_venues else _venues_of(record, venues[1]),
            places=places.get(record.id, {}),
        )
        states[record.id] = state = _reuse(seen.state, fresh) if seen is not None and same_venues else fresh
        _SEEN[mentor_id] = _Seen(raw, venues, state)
    return states


@dataclass(frozen=True)
class _Seen:
    """A mentor as last loaded or booked: the stored record, the venue set, and the state worked out from them."""

    raw: str
    venues: tuple[tuple[str, ...], list[VenueRecord]]
    state: MentorState


# By mentor id, in this process: reused only where the rows read again are the same (see load_mentor_states).
_SEEN: dict[str, _Seen] = {}
_VENUES: list[tuple[tuple[str, ...], list[VenueRecord]]] = []  # the venue set last read, parsed


def _venue_set(conn: Connection) -> tuple[tuple[str, ...], list[VenueRecord]]:
    """The venues as stored and parsed: the same object as last time when every stored record reads the same."""
    raws = tuple(conn.execute(select(col(VenueRow.record)).order_by(col(VenueRow.venue_id))).scalars())
    last = _VENUES[0] if _VENUES else None  # read once: calendar feeds call this from other threads
    if last is not None and last[0] == raws:
        return last
    fresh = (raws, [VenueRecord.model_validate_json(raw) for raw in raws])
    _VENUES[:] = [fresh]
    return fresh


def _reuse(before: MentorState, fresh: MentorState) -> MentorState:
    """`fresh`, with what was worked out for `before` (same record, same venues) where its inputs read the same:
    the whole state when nothing changed, else the safe venues and the free starts of every day that no added or
    removed booking or leave touches."""
    if (before.caseload, before.points, before.without_check, before.busy_utc, before.places) == (
            fresh.caseload, fresh.points, fresh.without_check, fresh.busy_utc, fresh.places):
        return before
    fresh.safe_venues.update(before.safe_venues)
    changed = set(before.busy_utc) ^ set(fresh.busy_utc)
    touched: set[date] = set()
    for start, end in changed:  # a start is affected from an hour before a booking until it ends
        day, last = (start - SESSION).astimezone(LONDON).date(), end.astimezone(LONDON).date()
        while day <= last:
            touched.add(day)
            day += timedelta(days=1)
    fresh.day_slots.update((day, slots) for day, slots in before.day_slots.items() if day not in touched)
    return fresh


def remember(states: MentorIndex) -> None:
    """Keep the states as booking left them, for the next load to reuse where the rows then read the same."""
    for mentor_id, state in states.items():
        seen = _SEEN.get(mentor_id)
        if seen is not None and seen.state.record is state.record:
            _SEEN[mentor_id] = _Seen(seen.raw, seen.venues, state)


def _places(venues: list[VenueRecord]) -> dict[str, Place]:
    """Where a stored session's venue id is, for the travel rule: the registered venues and every borough's default
    office (`default_offices`); a venue no longer registered is nowhere known. Worked out again only when the venue
    set is another (`_venue_set` returns the same list while the stored venues read the same)."""
    last = _PLACES[0] if _PLACES else None
    if last is not None and last[0] is venues:
        return last[1]
    found = {v.id: place_of(v) for v in default_offices(LONDON_BOROUGHS)}
    found.update((v.id, place_of(v)) for v in venues)
    _PLACES[:] = [(venues, found)]
    return found


_PLACES: list[tuple[list[VenueRecord], dict[str, Place]]] = []  # the last venue set's places


def _venues_of(record: MentorRecord, venues: list[VenueRecord]) -> tuple[VenueRecord, ...] | None:
    """The registered venues the mentor may use; None (the default staffed offices) when none apply."""
    if record.venues is not None:
        chosen = [v for v in venues if v.id in record.venues]
    else:
        boroughs = {place_key(b) for b in record.boroughs}
        chosen = [v for v in venues if place_key(v.borough) in boroughs]
    return tuple(chosen) if chosen else None


# Sessions


class UpcomingSession(NamedTuple):
    """A session still to come, as rescheduling needs it."""

    referral_id: str
    session_id: str
    start: datetime
    end: datetime
    venue_id: str | None
    status: SessionStatus


def upcoming_sessions(
    conn: Connection, referral_ids: Collection[str], statuses: Collection[SessionStatus], *, now: datetime
) -> list[UpcomingSession]:
    """The referrals' sessions in any of `statuses` that start after `now`, in order of start."""
    return [UpcomingSession(*r[:5], SessionStatus(r[5])) for r in conn.execute(
        select(col(SessionRow.referral_id), col(SessionRow.session_id), col(SessionRow.start), col(SessionRow.end),
               col(SessionRow.venue_id), col(SessionRow.status))
        .where(col(SessionRow.referral_id).in_(referral_ids), col(SessionRow.status).in_(statuses),
               col(SessionRow.start) > now)
        .order_by(col(SessionRow.start))
    )]


def referrals_with_confirmed_sessions(conn: Connection, *, now: datetime) -> set[str]:
    """The referrals with a session still to come that the young person has confirmed."""
    return set(conn.execute(select(col(SessionRow.referral_id)).where(
        col(SessionRow.status) == SessionStatus.CONFIRMED, col(SessionRow.start) > now)).scalars())


def load_session(conn: Connection, session_id: str) -> SessionRow | None:
    row = conn.execute(select(SessionRow).where(col(SessionRow.session_id) == session_id)).first()
    return None if row is None else SessionRow.model_validate(row._mapping)


def case_sessions(conn: Connection, referral_id: str, statuses: Collection[SessionStatus]) -> list[SessionRow]:
    """A case's sessions in any of `statuses`, past and future, in order of start."""
    return _sessions(conn, col(SessionRow.referral_id) == referral_id, col(SessionRow.status).in_(statuses))


def mentor_calendar(conn: Connection, mentor_id: str, start: datetime, end: datetime) -> list[SessionRow]:
    """The mentor's sessions, whatever their status, that start in [start, end), in order."""
    return _sessions(conn, col(SessionRow.mentor_id) == mentor_id, col(SessionRow.start) >= start,
                     col(SessionRow.start) < end)


def venue_sessions(conn: Connection, venue_ids: Collection[str], start: datetime, end: datetime,
                   statuses: Collection[SessionStatus]) -> list[SessionRow]:
    """The venues' sessions in any of `statuses` that start in [start, end), in order (by venue and start, migration
    0009's index)."""
    return _sessions(conn, col(SessionRow.venue_id).in_(venue_ids), col(SessionRow.start) >= start,
                     col(SessionRow.start) < end, col(SessionRow.status).in_(statuses))


def mentor_feed(conn: Connection, mentor_id: str, *, ending_after: datetime) -> list[SessionRow]:
    """The mentor's sessions, whatever their status, that end after `ending_after`, in order."""
    return _sessions(conn, col(SessionRow.mentor_id) == mentor_id, col(SessionRow.end) > ending_after)


def sessions_during(conn: Connection, mentor_id: str, away: Interval, *, now: datetime) -> list[SessionRow]:
    """The mentor's live sessions still to come that overlap `away` (their leave), in order."""
    return _sessions(conn, col(SessionRow.mentor_id) == mentor_id, col(SessionRow.status).in_(LIVE),
                     col(SessionRow.start) < away[1], col(SessionRow.end) > away[0], col(SessionRow.start) > now)


def _sessions(conn: Connection, *where: ColumnElement[bool]) -> list[SessionRow]:
    return [SessionRow.model_validate(r._mapping)
            for r in conn.execute(select(SessionRow).where(*where).order_by(col(SessionRow.start)))]


def set_session_status(conn: Connection, session_ids: Collection[str], status: SessionStatus, *,
                       now: datetime) -> None:
    """The sessions' new status; bumps each one's `sequence`, so calendar feeds send the change."""
    if session_ids:
        conn.execute(update(SessionRow).where(col(SessionRow.session_id).in_(session_ids))
                     .values(status=status, **_changed(now)))


def move_session(conn: Connection, session_id: str, *, start: datetime, end: datetime, venue: SafeVenue | None,
                 now: datetime, status: SessionStatus | None = None) -> None:
    """A session at a new time (and venue, with its routes), and in `status` if given; bumps its `sequence` too."""
    values = {"status": status} if status is not None else {}
    conn.execute(update(SessionRow).where(col(SessionRow.session_id) == session_id)
                 .values(start=start, end=end, **venue_columns(venue), **values, **_changed(now)))


def _changed(now: datetime) -> dict[str, Any]:
    return {"sequence": col(SessionRow.sequence) + 1, "updated_at": now}


def add_sessions(conn: Connection, rows: list[dict[str, object]]) -> None:
    """Newly booked sessions (`session_row`), one statement for the batch.

    On PostgreSQL the rows go as one array per column, unnested into one INSERT: an executemany there is one INSERT
    per row, and each fires migration 0007's statement trigger, which updates the booking version's one row (a batch
    of bookings, hundreds of sessions, updated it as many times in one transaction). SQLite keeps its executemany, a
    C loop (its triggers fire per row either way)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(SessionRow), rows)
        return
    into = insert(SessionRow)
    columns = [into.table.c[name] for name in rows[0]]
    arrays = [cast(bindparam(f"all_{c.name}", [row[c.name] for row in rows]), ARRAY(c.type)) for c in columns]
    given = func.unnest(*arrays).table_valued(*(c.name for c in columns)).render_derived()
    conn.execute(into.from_select([c.name for c in columns], select(*given.c)))


def session_row(referral_id: str, mentor_id: str, slot: SessionSlot, now: datetime,
                venue: SafeVenue | None) -> dict[str, object]:
    """A sessions-table row for a newly booked slot, with the venue and the routes planned to it."""
    return {"session_id": slot.session_id, "referral_id": referral_id, "mentor_id": mentor_id, **venue_columns(venue),
            "start": slot.start, "end": slot.end, "status": SessionStatus.BOOKED, "sequence": 0, "created_at": now,
            "updated_at": now}


def venue_columns(venue: SafeVenue | None) -> dict[str, str | None]:
    """A session's venue and planned routes, as stored."""
    if venue is None:
        return {"venue_id": None, "route": None, "mentor_route": None}
    mentor_route = json.dumps(list(venue.mentor_route)) if venue.mentor_route is not None else None
    return {"venue_id": venue.venue.id, "route": json.dumps(list(venue.route)), "mentor_route": mentor_route}


def load_rooms(conn: Connection, *, now: datetime, excluding: Collection[str] = ()) -> Rooms:
    """The rooms taken at each venue by sessions still to come (other than those `excluding` names, which are
    being moved)."""
    held: dict[str, list[tuple[datetime, datetime]]] = {}
    query = select(col(SessionRow.venue_id), col(SessionRow.start), col(SessionRow.end)).where(
        col(SessionRow.venue_id).is_not(None), col(SessionRow.end) > now, col(SessionRow.status).in_(LIVE),
    )
    if excluding:
        query = query.where(col(SessionRow.session_id).not_in(excluding))
    for venue_id, start, end in conn.execute(query):
        if venue_id is not None:  # (the query keeps only those with a venue)
            held.setdefault(venue_id, []).append((start, end))
    return Rooms(held)


def waitlist_by_tier(conn: Connection) -> list[tuple[str, int, datetime]]:
    """(tier, how many wait, since when the longest has waited) of the waitlisted cases (for the metrics)."""
    return [(tier or "none", count, oldest) for tier, count, oldest in conn.execute(
        select(col(CaseRow.tier), func.count(), func.min(col(CaseRow.updated_at)))
        .where(col(CaseRow.status) == CaseStatus.WAITLISTED).group_by(col(CaseRow.tier)))]
