"""One independent judge of a schedule: re-checks every hard rule and counts placements.

Written from the contracts (shared/contracts) and the rules as the spec states them, not from the matcher: it
calls no function of services.scheduling and only reads the `Case` and `MentorState` records. Every solver in
bench/scheduling_quality.py, and the batch plan's property test, is scored by this one function.

Hard rules checked, per booking:
- vetting not expired; a rotl licence not suspended; borough covered; a shared language; the gender request
  (any / not_stated mean no request); nothing on the mentor's conflict register in the young person's areas;
- staff take every tier, volunteers marked experienced too, other volunteers and rotl mentors only low and
  medium; caseload + new bookings ≤ max_caseload; risk-weighted points (very high 3, high 2, medium 1.5,
  low 1) within the record's cap;
- a safe venue: one of the mentor's (or, with none registered, a staffed office in each of their boroughs)
  whose borough, area, name and id are outside the young person's unsafe areas and the rotl exclusion zones,
  approved by the licence, staffed when the case needs it, and reachable from the young person's home borough
  (and a rotl mentor's establishment) without entering an unsafe borough (or exclusion zone) on the map;
- when the venues are given (`visits`): each session at such a venue, with a route that starts where the
  person sets out, ends in the venue's borough, steps only between neighbouring boroughs and enters none to
  avoid; and no venue holding more sessions at once than it has rooms, counting those it already held;
- rotl: no licence exclusion zone equal to the young person's borough or one of their unsafe areas; sessions
  on permitted days, within the licence's dates, not before its window start, and ending at least 60 minutes
  plus the travel time before return_by on the same London day;
- every session 60 minutes, starting on :00 or :30, inside one of the mentor's windows for that date (a date
  override replaces the weekly pattern) and (if any) the young person's, on the Europe/London wall clock;
  ending by 19:00 when the case needs a staffed venue;
- the first session no earlier than `now` rounded up to the half hour plus two hours, no later than now + 28 days;
- no two sessions of a mentor overlap, counting the sessions they already had; nor two of one young person;
- when the venues are given (`visits`): between two sessions of a mentor at different venues, counting those they
  already had where their venue is known (`MentorState.places`), time to travel: 15 minutes within a borough, and
  15 more for each borough boundary on the fewest-boroughs journey over the map (none at the same venue); for a
  rotl mentor, the journey entering none of the licence's exclusion zones, and with none, not on one London day.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from services.scheduling.constraints import Case, MentorState, SafeVenue
from services.scheduling.routes import NEIGHBOURS  # the map (data), not the route planner
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import Licence, MentorRecord, VenueRecord

LONDON = ZoneInfo("Europe/London")
HALF_HOUR = timedelta(minutes=30)
HOUR = timedelta(hours=1)
NOTICE = timedelta(hours=2)
HORIZON = timedelta(days=28)
RETURN_BUFFER = timedelta(minutes=60)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOW_TIERS = ("low", "medium")
DEADLINE = {
    "very_high": timedelta(hours=24),
    "high": timedelta(hours=72),
    "medium": timedelta(days=7),
    "low": timedelta(days=14),
}
POINTS = {"very_high": 3.0, "high": 2.0, "medium": 1.5, "low": 1.0}
STAFFED_END = time(19, 0)
# Sessions in a full programme: the first plus the tier's cadence over the following 28 days.
FULL_PROGRAMME = {"very_high": 9, "high": 5, "medium": 5, "low": 3}

SAME_BOROUGH = timedelta(minutes=15)  # the travel rule, as README's Scheduling section states it
PER_BOROUGH = timedelta(minutes=15)

Interval = tuple[datetime, datetime]
Booking = tuple[str, Sequence[Interval]]  # mentor id, sessions


@dataclass(frozen=True)
class Violation:
    """A hard rule a booking breaks."""

    referral_id: str
    rule: str
    detail: str


@dataclass(frozen=True)
class Report:
    """What a schedule achieves, and every hard rule it breaks (must be none)."""

    placed: int
    placed_by_tier: dict[str, int]
    sessions: int
    full_programme_sessions: int  # what the tier cadences would give every placed young person
    deadline_met: int
    violations: list[Violation] = field(default_factory=list)
    met_by_tier: dict[str, int] = field(default_factory=dict)  # deadline met, per tier

    @property
    def cadence_kept(self) -> float:
        return self.sessions / self.full_programme_sessions if self.full_programme_sessions else 1.0


def _place(name: str) -> str:
    return " ".join(name.split()).casefold()


def _word(name: str) -> str:
    return name.strip().casefold()


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _licence(record: MentorRecord) -> Licence | None:
    return record.licence if record.kind == "rotl" else None


_NEIGHBOURS = {_place(b): {_place(n) for n in ns} for b, ns in NEIGHBOURS.items()}  # the map, by place key


def _venues(state: MentorState) -> list[VenueRecord]:
    if state.venues is not None:
        return list(state.venues)
    return [VenueRecord(id="office-" + "-".join(_place(b).split()), name=f"{b} office", borough=b, rooms=50)
            for b in state.record.boroughs]


def _origin(record: MentorRecord) -> str:
    licence = record.licence
    return licence.establishment_borough if licence and licence.establishment_borough else record.boroughs[0]


def _reachable(start: str, goal: str, avoid: set[str]) -> bool:
    """Whether the map joins `start` to `goal` through boroughs outside `avoid` (setting out from one is fine)."""
    seen, todo = {_place(start)}, [_place(start)]
    while todo:
        here = todo.pop()
        if here == _place(goal):
            return True
        for there in _NEIGHBOURS.get(here, ()):
            if there not in seen and there not in avoid:
                seen.add(there)
                todo.append(there)
    return False


@cache  # per (borough, borough, places avoided): the same few pairs for every two sessions judged
def _boundaries(start: str, goal: str, avoid: frozenset[str] = frozenset()) -> int | None:
    """Borough boundaries crossed on the fewest-boroughs journey from `start` to `goal` entering none of `avoid`
    (place keys; setting out from one is fine); None when there is none."""
    if _place(goal) in avoid:
        return None
    seen, todo = {_place(start): 0}, [_place(start)]
    for here in todo:  # breadth first: `todo` grows as it is read
        if here == _place(goal):
            return seen[here]
        for there in sorted(_NEIGHBOURS.get(here, ())):
            if there not in seen and there not in avoid:
                seen[there] = seen[here] + 1
                todo.append(there)
    return None


def travel_needed(one: tuple[str, str], other: tuple[str, str], avoid: frozenset[str] = frozenset()) -> timedelta | None:
    """The least gap between sessions at two venues, each (venue id, borough), for a mentor whose journeys enter
    none of `avoid` (a rotl licence's exclusion zones, place keys): None when no journey does, either way."""
    if one[0] == other[0]:
        return timedelta(0)
    if _place(one[1]) not in _NEIGHBOURS or _place(other[1]) not in _NEIGHBOURS:  # off the map
        return SAME_BOROUGH + PER_BOROUGH * _farthest()
    hops = _boundaries(one[1], other[1], avoid)
    if hops is None or _boundaries(other[1], one[1], avoid) is None:
        return None
    return SAME_BOROUGH + PER_BOROUGH * hops


@cache
def _farthest() -> int:
    return max(hops for a in _NEIGHBOURS for b in _NEIGHBOURS if (hops := _boundaries(a, b)) is not None)


def _too_close(sessions: list[tuple[datetime, datetime, tuple[str, str], str]],
               avoid: frozenset[str] = frozenset()) -> Iterable[tuple[str, str, str]]:
    """(owner, other owner, detail) for each two sessions at different venues without the time to travel between,
    or (around a rotl mentor's exclusion zones, `avoid`) on one London day with no journey between them."""
    ordered = sorted(sessions, key=lambda s: s[0].timestamp())
    reach = 25 * 3600 if avoid else 4 * 3600  # past any journey on the map; around zones, past the London day
    for i, (start, end, where, owner) in enumerate(ordered):
        for later_start, _, there, other in ordered[i + 1:]:
            if later_start.timestamp() >= end.timestamp() + reach:
                break
            gap = later_start.timestamp() - end.timestamp()
            need = travel_needed(where, there, avoid)
            if need is None:
                if later_start.astimezone(LONDON).date() == start.astimezone(LONDON).date():
                    yield owner, other, (f"{where[1]} until {end.astimezone(LONDON):%H:%M}, {there[1]} from "
                                         f"{later_start.astimezone(LONDON):%H:%M}: no journey around the exclusion "
                                         "zones")
            elif gap >= 0 and gap < need.total_seconds():
                yield owner, other, (f"{where[1]} until {end.astimezone(LONDON):%H:%M}, {there[1]} from "
                                     f"{later_start.astimezone(LONDON):%H:%M}: needs {need.total_seconds() / 60:g} min")


def _venue_allowed(case: Case, state: MentorState, venue: VenueRecord) -> bool:
    """The venue itself: not in an unsafe area or exclusion zone, licence-approved, staffed when needed."""
    licence = _licence(state.record)
    blocked = {_place(a) for a in case.unsafe_areas} | {_place(z) for z in (licence.exclusion_zones if licence else [])}
    return (
        not {_place(venue.borough), _place(venue.name), _place(venue.id), _place(venue.area or venue.borough)} & blocked
        and (venue.staffed or not case.staffed_only)
        and (licence is None or licence.approved_venues is None or venue.id in licence.approved_venues)
    )


def _avoid(case: Case, state: MentorState) -> tuple[set[str], set[str]]:
    """Places the young person's route must not enter, and those a rotl mentor's must not."""
    licence = _licence(state.record)
    return {_place(a) for a in case.unsafe_areas}, {_place(z) for z in (licence.exclusion_zones if licence else [])}


def _safe_venue(case: Case, state: MentorState) -> bool:
    unsafe, zones = _avoid(case, state)
    rotl = _licence(state.record) is not None
    return any(
        _venue_allowed(case, state, v)
        and _reachable(case.borough, v.borough, unsafe)
        and (not rotl or _reachable(_origin(state.record), v.borough, zones))
        for v in _venues(state)
    )


def route_problem(route: Sequence[str] | None, start: str, goal: str, avoid: set[str]) -> str | None:
    """Why a planned route is not a safe journey from `start` to `goal`; None when it is."""
    if not route:
        return "no route"
    steps = [_place(b) for b in route]
    if steps[0] != _place(start) or steps[-1] != _place(goal):
        return f"runs {route[0]} to {route[-1]}, not {start} to {goal}"
    for here, there in pairwise(steps):
        if there not in _NEIGHBOURS.get(here, ()):
            return f"jumps from {here} to {there}"
    entered = [b for b in route[1:] if _place(b) in avoid]
    return f"enters {', '.join(entered)}" if entered else None


def rule_broken(case: Case, state: MentorState) -> str | None:
    """The first time-independent rule (other than caseload and points) the pairing breaks; None when allowed."""
    record, licence = state.record, _licence(state.record)
    areas = {_place(case.borough), *(_place(a) for a in case.unsafe_areas)}
    if state.without_check:
        return "vetting"
    if record.kind == "rotl" and (licence is None or licence.suspended):
        return "licence"
    if _place(case.borough) not in {_place(b) for b in record.boroughs}:
        return "borough"
    if not {_word(x) for x in case.languages} & {_word(x) for x in record.languages}:
        return "language"
    trusted = record.kind == "staff" or (record.kind == "volunteer" and record.experience == "experienced")
    if not trusted and str(case.tier) not in LOW_TIERS:
        return "tier"
    if case.mentor_gender not in ("any", "not_stated") and case.mentor_gender != record.gender:
        return "gender"
    if licence is not None and any(_place(zone) in areas for zone in licence.exclusion_zones):
        return "exclusion_zone"
    if any(_place(entry) in areas for entry in record.conflicts):
        return "conflict"
    if not _safe_venue(case, state):
        return "venue"
    return None


def mentor_windows(record: MentorRecord, start: datetime) -> list[WeeklyWindow]:
    """The mentor's windows on the London date of `start`: that date's override, else the weekly pattern."""
    day = start.astimezone(LONDON).date()
    for override in record.date_overrides:
        if override.date == day:
            name = DAY_NAMES[day.weekday()]
            return [WeeklyWindow.model_validate({"day": name, "start": a, "end": b}) for a, b in override.windows]
    return list(record.availability)


def within(windows: Iterable[WeeklyWindow], start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one weekly window on the London wall clock, on one day."""
    s, e = start.astimezone(LONDON), end.astimezone(LONDON)
    if s.date() != e.date():
        return False
    day = DAY_NAMES[s.weekday()]
    return any(w.day == day and _hhmm(w.start) <= s.time() and e.time() <= _hhmm(w.end) for w in windows)


def licence_allows(record: MentorRecord, start: datetime, end: datetime) -> bool:
    """rotl licence: permitted day and dates, not before the window start, and back (end + 60 minutes + travel)
    no later than return_by on the same London day."""
    licence = _licence(record)
    if licence is None:
        return record.kind != "rotl"
    local = start.astimezone(LONDON)
    back = (end + RETURN_BUFFER + timedelta(minutes=licence.travel_minutes)).astimezone(LONDON)
    return (
        (licence.days is None or DAY_NAMES[local.weekday()] in licence.days)
        and (licence.valid_from is None or local.date() >= licence.valid_from)
        and (licence.valid_to is None or local.date() <= licence.valid_to)
        and (licence.window_start is None or local.time() >= _hhmm(licence.window_start))
        and back.date() == local.date()
        and back.time() <= _hhmm(licence.return_by)
    )


def case_allows(case: Case, start: datetime, end: datetime) -> bool:
    """The young person's side: inside their windows (if any); ending by 19:00 when a staffed venue is needed."""
    if case.availability and not within(case.availability, start, end):
        return False
    local_end = end.astimezone(LONDON)
    return not case.staffed_only or (
        local_end.date() == start.astimezone(LONDON).date() and local_end.time() <= STAFFED_END
    )


def first_start_range(now: datetime) -> tuple[datetime, datetime]:
    """The earliest and latest allowed first-session start (UTC)."""
    utc = now.astimezone(UTC)
    rounded = datetime.fromtimestamp(math.ceil(utc.timestamp() / 1800) * 1800, UTC)
    return rounded + NOTICE, utc + HORIZON


def session_problems(case: Case, record: MentorRecord, start: datetime, end: datetime) -> list[str]:
    """The hard rules one session breaks, whoever else is booked."""
    problems = []
    if start.tzinfo is None or end.tzinfo is None:
        return ["naive_time"]
    if end - start != HOUR:
        problems.append("length")
    local = start.astimezone(LONDON)
    if local.minute not in (0, 30) or local.second or local.microsecond:
        problems.append("half_hour")
    if not within(mentor_windows(record, start), start, end):
        problems.append("mentor_window")
    if not case_allows(case, start, end):
        problems.append("young_person_window_or_staffed_hours")
    if not licence_allows(record, start, end):
        problems.append("licence_times")
    return problems


def _visit_problems(case: Case, state: MentorState, visit: SafeVenue | None) -> list[str]:
    """The rules one session's venue and routes break."""
    if visit is None:
        return ["no_venue"]
    venue, problems = visit.venue, []
    if venue.id not in {v.id for v in _venues(state)}:
        problems.append("venue_not_the_mentors")
    if not _venue_allowed(case, state, venue):
        problems.append("venue")
    unsafe, zones = _avoid(case, state)
    if route_problem(visit.route, case.borough, venue.borough, unsafe):
        problems.append("route")
    if _licence(state.record) is not None and route_problem(visit.mentor_route, _origin(state.record), venue.borough,
                                                            zones):
        problems.append("mentor_route")
    return problems


def _clashes(intervals: list[tuple[datetime, datetime, str]]) -> Iterable[tuple[str, str]]:
    """Pairs of owners whose intervals overlap (touching end to start is fine)."""
    ordered = sorted(intervals, key=lambda item: (item[0].timestamp(), item[1].timestamp()))
    latest_end, latest_owner = None, ""
    for start, end, owner in ordered:
        if latest_end is not None and start.timestamp() < latest_end.timestamp():
            yield latest_owner, owner
        if latest_end is None or end.timestamp() > latest_end.timestamp():
            latest_end, latest_owner = end, owner


def evaluate(
    cases: Sequence[Case], mentors: Sequence[MentorState], bookings: Mapping[str, Booking], *, now: datetime,
    visits: Mapping[str, Sequence[SafeVenue | None]] | None = None, held: Mapping[str, Sequence[Interval]] | None = None,
) -> Report:
    """Score a schedule: placements, sessions, deadlines met, and every hard-rule violation.

    `visits` gives, per referral, the venue and routes of each booked session (in the order of its sessions);
    `held` the sessions each venue already held. Without `visits`, only that a safe venue exists is checked.
    """
    by_case = {case.referral_id: case for case in cases}
    by_mentor = {state.record.id: state for state in mentors}
    earliest, latest = first_start_range(now)
    violations: list[Violation] = []
    taken: Counter[str] = Counter()
    load: dict[str, float] = defaultdict(float)
    calendars: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for state in mentors:
        calendars[state.record.id].extend((start, end, "existing booking") for start, end in state.busy)
    sessions = full = met = 0
    by_tier: Counter[str] = Counter()
    met_by_tier: Counter[str] = Counter()
    in_rooms: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    located: dict[str, list[tuple[datetime, datetime, tuple[str, str], str]]] = defaultdict(list)
    for state in mentors:
        located[state.record.id].extend((start, end, (where.venue_id, where.borough), "existing booking")
                                        for start, end, where in state.places.values())

    def flag(referral_id: str, rule: str, detail: str = "") -> None:
        violations.append(Violation(referral_id, rule, detail))

    for referral_id, (mentor_id, booked) in sorted(bookings.items()):
        case, mentor = by_case.get(referral_id), by_mentor.get(mentor_id)
        if case is None or mentor is None:
            flag(referral_id, "unknown", f"referral or mentor {mentor_id} not in the instance")
            continue
        if not booked:
            flag(referral_id, "no_sessions")
            continue
        broken = rule_broken(case, mentor)
        if broken is not None:
            flag(referral_id, broken, mentor_id)
        taken[mentor_id] += 1
        load[mentor_id] += POINTS[str(case.tier)]
        first = min(booked, key=lambda interval: interval[0].timestamp())[0]
        if not earliest.timestamp() <= first.timestamp() <= latest.timestamp():
            flag(referral_id, "first_session_time", first.isoformat())
        for start, end in booked:
            for problem in session_problems(case, mentor.record, start, end):
                flag(referral_id, problem, f"{mentor_id} {start.isoformat()}")
            calendars[mentor_id].append((start, end, referral_id))
        for one, other in _clashes([(start, end, referral_id) for start, end in booked]):
            flag(referral_id, "young_person_double_booked", f"{one} / {other}")
        if visits is not None:
            for (start, end), visit in zip(booked, visits.get(referral_id, ()), strict=False):
                for problem in _visit_problems(case, mentor, visit):
                    flag(referral_id, problem, f"{mentor_id} {start.isoformat()}")
                if visit is not None:
                    in_rooms[visit.venue.id].append((start, end, referral_id))
                    located[mentor_id].append((start, end, (visit.venue.id, visit.venue.borough), referral_id))
            if len(visits.get(referral_id, ())) != len(booked):
                flag(referral_id, "venue_missing", f"{len(booked)} sessions, {len(visits.get(referral_id, ()))} venues")
        sessions += len(booked)
        full += FULL_PROGRAMME[str(case.tier)]
        on_time = first.timestamp() <= (case.accepted_at + DEADLINE[str(case.tier)]).timestamp()
        met += on_time
        met_by_tier[str(case.tier)] += on_time
        by_tier[str(case.tier)] += 1
    for mentor_id, count in sorted(taken.items()):
        state = by_mentor[mentor_id]
        if state.caseload + count > state.record.max_caseload:
            flag("", "caseload", f"{mentor_id}: {state.caseload} + {count} > {state.record.max_caseload}")
        if state.points + load[mentor_id] > state.record.points_cap + 1e-9:
            flag("", "points", f"{mentor_id}: {state.points} + {load[mentor_id]} > {state.record.points_cap}")
    for mentor_id, intervals in sorted(calendars.items()):
        for one, other in _clashes(intervals):
            if other != "existing booking" or one != "existing booking":  # the instance's own overlaps are not ours
                culprit = other if other != "existing booking" else one
                flag(culprit, "mentor_double_booked", f"{mentor_id}: {one} / {other}")
    for mentor_id, sessions_at in sorted(located.items()):
        licence = _licence(by_mentor[mentor_id].record)
        zones = frozenset(_place(z) for z in licence.exclusion_zones) if licence is not None else frozenset()
        for one, other, detail in _too_close(sessions_at, zones):
            if other != "existing booking" or one != "existing booking":
                flag(other if other != "existing booking" else one, "travel_time", f"{mentor_id}: {detail}")
    rooms = {v.id: v.rooms for state in mentors for v in _venues(state)}
    for venue_id, intervals in sorted(in_rooms.items()):
        intervals += [(start, end, "held") for start, end in (held or {}).get(venue_id, ())]
        for start, _, referral_id in intervals:
            if referral_id != "held":
                at_once = sum(1 for s, e, _ in intervals if s.timestamp() <= start.timestamp() < e.timestamp())
                if at_once > rooms.get(venue_id, 1):
                    flag(referral_id, "room_double_booked", f"{venue_id} {start.isoformat()}: {at_once} sessions")
    return Report(sum(by_tier.values()), dict(by_tier), sessions, full, met, violations, dict(met_by_tier))
