"""The mentor match: a pure function of the case, the mentors and `now` (no I/O, no clock).

Hard rules live in constraints.py, session times in slots.py; this module ranks the mentors that can take
the case, books the first session and the follow-ups of the tier's cadence, or explains the waitlist.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache, partial
from itertools import cycle
from operator import itemgetter

from services.scheduling.agency_reasons import NO_MENTOR_YET, waiting
from services.scheduling.constraints import (
    OF_RECORD,
    STAFFED_END_BY,
    TIER_POINTS,
    Case,
    MentorIndex,
    MentorState,
    Rule,
    SafeVenue,
    candidate_exclusion,
    exclusion,
    first_exclusion,
    summarise,
    venues_for,
)
from services.scheduling.rooms import Rooms, reachable, venue_free
from services.scheduling.slots import (
    DAY_BITS,
    LONDON,
    SESSION,
    Calendar,
    Interval,
    Slot,
    clocks_change,
    earliest_start,
    local_start,
    to_utc,
    wall_clock_days_later,
)
from services.scheduling.travel import Itinerary
from shared.contracts.codes import Tier

__all__ = [
    "LONDON",
    "Case",
    "Match",
    "MentorIndex",
    "MentorState",
    "Option",
    "Waitlist",
    "deadline_for",
    "exclusion",
    "match",
    "rank",
    "reschedule",
    "score",
    "with_booking",
    "without_booking",
]

HORIZON_DAYS = 28  # the first session must start within this many days of now
PROGRAMME_DAYS = 28  # follow-ups are booked up to this many days after the first session
DEADLINE: dict[Tier, timedelta] = {
    Tier.VERY_HIGH: timedelta(hours=24),
    Tier.HIGH: timedelta(hours=72),
    Tier.MEDIUM: timedelta(days=7),
    Tier.LOW: timedelta(days=14),
}
CADENCE: dict[Tier, tuple[int, ...]] = {  # days between sessions, repeated in turn
    Tier.VERY_HIGH: (3, 4),
    Tier.HIGH: (7,),
    Tier.MEDIUM: (7,),
    Tier.LOW: (14,),
}
# Soft weights from domain.md §6(e): S03 language match, S10 workload balance.
CONTINUITY_WEIGHT = 10.0  # S01: the previous mentor on a re-referral
GENDER_WEIGHT = 8.0  # S02, when the gender is preferred rather than required
LANGUAGE_WEIGHT = 8.0
LIVED_EXPERIENCE_WEIGHT = 6.0  # S04
PROXIMITY_WEIGHT = 5.0  # S05, by borough: the mentor's home borough is the young person's
WORKLOAD_WEIGHT = 2.0
ROUTINE_WEIGHT = 3.0  # S09: each follow-up on the weekday and at the time the routine says
_INSTANT = timedelta(microseconds=1)  # a start `_INSTANT` before another is before it (starts are whole minutes)


@dataclass(frozen=True)
class Match:
    """The chosen mentor and the booked sessions (aware, Europe/London)."""

    mentor_id: str
    sessions: list[Interval]
    deadline_met: bool
    deadline: datetime


@dataclass(frozen=True)
class Waitlist:
    """No mentor fits; `reason` says why in plain English, for schedulers; `agency_reason` as the referring agency
    is told it (`agency_reasons.waiting`)."""

    reason: str
    agency_reason: str = NO_MENTOR_YET


@dataclass(frozen=True)
class Option:
    """An eligible mentor with a free first slot, and why they rank where they do."""

    mentor_id: str
    first: Interval  # Europe/London
    deadline_met: bool
    score: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        routine = self.score.get(_ROUTINE, 0.0)
        return _total(sum(value for name, value in self.score.items() if name != _ROUTINE), routine)


_ROUTINE = "same_weekly_slot"  # the routine's (S09) component of `Option.score`, weighted


def _total(static: float, routine: float) -> float:
    """A mentor's total: the components before the routine (summed in `score`'s order), then the weighted routine
    added. The one way both `rank` (`Option.total`) and `match` add it up: from Python 3.12 `sum` of floats is
    compensated, so summing the routine in with the rest could give another float than adding it after."""
    return static + routine


def deadline_for(case: Case) -> datetime:
    """When the first session is due, by tier, counted from acceptance (Europe/London)."""
    return (to_utc(case.accepted_at) + DEADLINE[case.tier]).astimezone(LONDON)


def score(case: Case, mentor: MentorState) -> dict[str, float]:
    """The soft score of an eligible mentor, by component (domain brief §6(e) weights); higher is better."""
    values = _score_values(case, mentor)
    return dict(zip(_SCORED if len(values) == len(_SCORED) else _SCORED_UNLESS_GENDER, values, strict=True))


_SCORED = ("previous_mentor", "gender_preference", "preferred_language", "lived_experience", "home_borough",
           "workload_balance")
_SCORED_UNLESS_GENDER = tuple(name for name in _SCORED if name != "gender_preference")


def _score_values(case: Case, mentor: MentorState) -> tuple[float, ...]:
    """`score`'s components in its order, gender_preference only when the gender is preferred rather than
    required: their `sum` is the same float as `sum(score(...).values())`, without the dict."""
    record = mentor.record
    preferred = case.preferred_key is not None and case.preferred_key in mentor.language_keys
    load = mentor.caseload / record.max_caseload if record.max_caseload else 1.0
    lived = not mentor.lived_keys.isdisjoint(case.need_keys)
    previous = CONTINUITY_WEIGHT if case.previous_mentor == record.id else 0.0
    rest = (
        LANGUAGE_WEIGHT if preferred else 0.0,
        LIVED_EXPERIENCE_WEIGHT if lived else 0.0,
        PROXIMITY_WEIGHT if mentor.home_key == case.borough_key else 0.0,
        WORKLOAD_WEIGHT * (1.0 - load),
    )
    if case.gender_preferred:
        return (previous, GENDER_WEIGHT if record.gender == case.mentor_gender else 0.0, *rest)
    return (previous, *rest)


def calendar(case: Case, mentor: MentorState, rooms: Rooms | None = None) -> Calendar:
    """The mentor's calendar for this case: both parties' windows, bookings and leave, licence and safety limits,
    and one of the venues safe for both with (given `rooms`) a free room, and time for the mentor to travel there
    from the session before and on to the next (`travel.py`)."""
    itinerary = mentor.itinerary  # the travel rule: time to reach the venue and to leave it for the next session
    return mentor.own_calendar.changed(
        young_person_windows=tuple(case.availability),
        end_by=STAFFED_END_BY if case.staffed_only else None,
        room_free=venue_free(venues_for(case, mentor), itinerary or None, rooms)
        if rooms is not None or itinerary else None,
        mentor_slots=partial(_day_slots, mentor),
        shared_busy=len(mentor.busy_utc),
        week_masks=mentor.week_masks,
        _young_spans=case.window_spans,  # worked out once per case, not once per (case, mentor)
        _case_masks=case.start_masks,
    )


def _day_slots(mentor: MentorState, day: date) -> tuple[Slot, ...]:
    """The mentor's side of a day, worked out once per mentor state and shared by every case."""
    found = mentor.day_slots.get(day)
    if found is None:
        found = mentor.day_slots[day] = tuple(mentor.own_calendar.mentor_side(day))
    return found


def _assess(
    case: Case, mentors: Sequence[MentorState], now: datetime, rooms: Rooms | None
) -> tuple[list[tuple[Option, MentorState]], Counter[Rule]]:
    earliest = earliest_start(now)
    horizon = to_utc(now) + timedelta(days=HORIZON_DAYS)
    due = deadline_for(case)
    options: list[tuple[Option, MentorState]] = []
    excluded: Counter[Rule] = Counter()
    for mentor in mentors:
        ruled_out = first_exclusion(case, mentor)
        if ruled_out is not None:
            excluded[ruled_out.rule] += 1
            continue
        start = calendar(case, mentor, rooms).first_fit(not_before=earliest, not_after=horizon)
        if start is None:
            excluded["no_slot"] += 1
            continue
        sessions, routine = _programme(case, mentor, start.astimezone(LONDON), rooms)
        scored = {**score(case, mentor), _ROUTINE: ROUTINE_WEIGHT * routine}
        options.append((Option(mentor.record.id, sessions[0], start <= due, scored), mentor))
    options.sort(key=lambda pair: _order(pair[0]))
    return options, excluded


def _order(option: Option) -> tuple[bool, float, float, str]:
    return (not option.deadline_met, -option.total, option.first[0].timestamp(), option.mentor_id)


def rank(case: Case, mentors: Sequence[MentorState], *, now: datetime, rooms: Rooms | None = None) -> list[Option]:
    """Mentors who can take the case, best first: deadline met, then score, then earliest slot, then id."""
    return [option for option, _ in _assess(case, mentors, now, rooms)[0]]


def sessions_from(case: Case, mentor: MentorState, first: datetime, rooms: Rooms | None = None) -> list[Interval]:
    """The first session and the tier's follow-ups up to 28 days after it (aware, Europe/London)."""
    return _programme(case, mentor, first, rooms)[0]


def _programme(
    case: Case, mentor: MentorState, first: datetime, rooms: Rooms | None
) -> tuple[list[Interval], float]:
    """The sessions from `first`, and the share of the cadence's follow-ups that keep the routine: on the day
    the cadence sets, at the first session's time (1.0 when the cadence has none)."""
    venues = venues_for(case, mentor)
    cal, itinerary = _book(calendar(case, mentor, rooms), first, venues, mentor.itinerary, rooms)
    local = first.astimezone(LONDON)
    limit = wall_clock_days_later(first, PROGRAMME_DAYS)
    starts, offset, targets, kept = [to_utc(first)], 0, 0, 0
    for interval in cycle(CADENCE[case.tier]):
        offset += interval
        if offset > PROGRAMME_DAYS:
            break
        target = local.date() + timedelta(days=offset)
        targets += 1
        start = cal.follow_up(target=target, at=local.time(), days=interval, not_after=limit)
        if start is not None:
            starts.append(start)
            cal, itinerary = _book(cal, start, venues, itinerary, rooms)
            kept += start == local_start(target, local.time())
    sessions = [(start.astimezone(LONDON), (start + SESSION).astimezone(LONDON)) for start in starts]
    return sessions, kept / targets if targets else 1.0


def _book(cal: Calendar, start: datetime, venues: Sequence[SafeVenue], itinerary: Itinerary,
          rooms: Rooms | None) -> tuple[Calendar, Itinerary]:
    """`cal` with a session at `start` booked, and the mentor's itinerary with it held where `Rooms.place` will hold
    it (the first of `venues` with a room that the mentor can reach in time): the young person's sessions booked
    after it leave the time to travel to and from it, as placing them asks (none when no venue applies)."""
    begin = to_utc(start)
    end = begin + SESSION
    fit = reachable(venues, begin, end, itinerary or None, rooms)
    if fit is None:
        return cal.booked(begin), itinerary
    itinerary = itinerary.add(begin, end, fit.place)
    return cal.changed(busy=(*cal.busy, (begin, end)), room_free=venue_free(venues, itinerary, rooms)), itinerary


def match(
    case: Case, mentors: Sequence[MentorState] | MentorIndex, *, now: datetime, rooms: Rooms | None = None
) -> Match | Waitlist:
    """Book the best mentor's first session and cadence, or say why the case waits.

    The same choice as `rank(...)[0]`, found without a first slot for every mentor: mentors are taken in order
    of their score before the routine (S09), looking only up to the deadline first, and no further once no later
    mentor could beat the best found even with a perfect routine; a mentor whose weekly windows share no start
    with the young person's in those days (`_may_fit`) is passed over, and `_look_at` bounds the rest. Given a
    `MentorIndex`, only its candidates for the case are looked at (every other mentor fails one of the first hard
    rules), and should the case wait, the mentors covering its borough again, to say why.
    """
    if not mentors:
        return Waitlist("no mentors registered", NO_MENTOR_YET)
    excluded: Counter[Rule] = Counter()
    indexed = isinstance(mentors, MentorIndex)
    candidates = mentors.candidates(case) if isinstance(mentors, MentorIndex) else list(mentors)
    # An index's candidates are checked against the rules it leaves (`candidate_exclusion`) only if the walk below
    # reaches them, since they are not counted here; the venue rule, the dearest, only for the mentors looked at.
    eligible: list[MentorState] = []
    for mentor in candidates:
        ruled_out = None if indexed else first_exclusion(case, mentor, venue=False)
        if ruled_out is not None:
            excluded[ruled_out.rule] += 1
        else:
            eligible.append(mentor)
    earliest, due = earliest_start(now), to_utc(deadline_for(case))
    horizon = to_utc(now) + timedelta(days=HORIZON_DAYS)
    # (-score before the routine, id, mentor), best first, of the mentors whose weekly bound leaves a start up to the
    # horizon: each pass below would pass over the others (its days are among these), so they are not even scored.
    ranked = _ranked(case, eligible, _wanted(case, earliest, horizon))
    for not_after in (min(due, horizon), horizon) if ranked else ():  # first: who can meet the deadline; then: anyone
        best: tuple[float, datetime, str, MentorState] | None = None  # (-total, first start, mentor, mentor)
        wanted = _wanted(case, earliest, not_after)
        for negative, _, mentor in ranked:
            static = -negative
            if best is not None and _total(static, ROUTINE_WEIGHT) < -best[0] - 1e-9:
                break  # nor can anyone after: their scores are no higher
            if not _may_fit(mentor, wanted) or (indexed and candidate_exclusion(case, mentor) is not None):
                continue
            found = _look_at(case, mentor, static, best, window=(earliest, not_after), rooms=rooms)
            if found is not None and (best is None or found < best[:3]):
                best = (*found, mentor)
        if best is not None:
            sessions = sessions_from(case, best[3], best[1].astimezone(LONDON), rooms)
            return Match(best[2], sessions, best[1] <= due, deadline_for(case))
    # Every eligible mentor's venues were checked above; those without a safe venue are counted as the venue rule's
    eligible = [mentor for mentor in eligible if not indexed or candidate_exclusion(case, mentor) is None]
    with_venue = sum(1 for mentor in eligible if venues_for(case, mentor))
    if isinstance(mentors, MentorIndex):
        excluded = _exclusions(case, mentors)
    elif len(eligible) > with_venue:
        excluded["venue"] += len(eligible) - with_venue
    if with_venue:
        excluded["no_slot"] += with_venue
    return Waitlist(summarise(case, excluded, horizon_days=HORIZON_DAYS),
                    waiting(case, excluded, horizon_days=HORIZON_DAYS))


Wanted = tuple[int, int]  # the starts allowed on days without a clock change, packed by weekday; weekdays with one


def _wanted(case: Case, not_before: datetime, not_after: datetime) -> Wanted:
    """The session starts the young person's windows and a staffed venue's end allow on the London days from
    `not_before` to `not_after`: by weekday (`case_masks`) for days without a clock change, and the weekdays of
    those with one on which the young person has a window (or is free any time), where any start may fit; both
    packed as `slots.packed_week` packs a mentor's bound (`MentorState.week_bits`). Over less than a week, the first
    and last days (without a clock change) only from `not_before`'s time and up to `not_after`'s."""
    normal, changing = _starts_in(not_before.astimezone(LONDON), not_after.astimezone(LONDON))
    starts, days = case.start_bits  # `Case.start_masks` packed, and the weekdays it names
    return starts & normal, days & changing


@lru_cache(maxsize=4096)  # the walk asks again for the same ends: the deadline, the horizon, the best's first start
def _starts_in(first: datetime, last: datetime) -> tuple[int, int]:
    """`_days_in` of the London days of `first` to `last`; when each weekday comes at most once among them, its first
    day keeps only the starts from `first`'s wall-clock time and its last day those up to `last`'s (on a day without
    a clock change, where a later wall-clock time is a later instant)."""
    normal, changing = _days_in(first.date(), last.date())
    if (last.date() - first.date()).days >= 7:
        return normal, changing
    if not clocks_change(first.date()):  # clear the starts before `first`: bits below the first half hour at or after
        normal &= ~(((1 << -(-_micros(first.time()) // _HALF_HOUR)) - 1) << DAY_BITS * first.weekday())
    if not clocks_change(last.date()):  # and those after `last`: bits above the last half hour at or before it
        above = _ONE_DAY & ~((1 << _micros(last.time()) // _HALF_HOUR + 1) - 1)
        normal &= ~(above << DAY_BITS * last.weekday())
    return normal, changing


_HALF_HOUR = 30 * 60 * 1_000_000  # microseconds


def _micros(at: time) -> int:
    return ((at.hour * 60 + at.minute) * 60 + at.second) * 1_000_000 + at.microsecond


@lru_cache(maxsize=1024)  # a round's cases look at the same few ranges of days
def _days_in(first: date, last: date) -> tuple[int, int]:
    """The London days from `first` to `last`, as masks of `packed_week`'s numbers: every start of each weekday that
    has a day without a clock change among them, and (bit i) the weekdays that have one with."""
    normal = changing = 0
    for day in (first + timedelta(days=n) for n in range((last - first).days + 1)):
        i = day.weekday()  # `packed_week`'s order: WEEKDAYS, Monday first
        if clocks_change(day):
            changing |= 1 << i
        else:
            normal |= _ONE_DAY << DAY_BITS * i
    return normal, changing


_ONE_DAY = (1 << DAY_BITS) - 1


def _ranked(case: Case, mentors: Iterable[MentorState], wanted: Wanted) -> list[tuple[float, str, MentorState]]:
    """(-score before the routine, id, mentor) of the mentors that `_may_fit`, best first: the one loop of the match
    that runs over every candidate, so `_may_fit` is written out in it."""
    starts, changing = wanted
    found = []
    for mentor in mentors:
        week = mentor.week_bits
        if week is None or week[0] & starts or week[1] & changing:
            found.append((-sum(_score_values(case, mentor)), mentor.record.id, mentor))
    found.sort(key=itemgetter(0, 1))
    return found


def _may_fit(mentor: MentorState, wanted: Wanted) -> bool:
    """Whether the mentor's weekly windows and licence (`MentorState.week_masks`) leave a start the young person's
    windows allow (`_wanted`): False means the mentor has no first fit in those days, so is not looked at. Two `&`s
    of packed bounds: cheap enough to ask of every candidate before they are scored."""
    week = mentor.week_bits
    return week is None or bool(week[0] & wanted[0] or week[1] & wanted[1])


def _look_at(
    case: Case, mentor: MentorState, static: float, best: tuple[float, datetime, str, MentorState] | None, *,
    window: tuple[datetime, datetime], rooms: Rooms | None,
) -> tuple[float, datetime, str] | None:
    """The mentor's (-total, first start, id), as `match` orders them; None when they have no safe venue or free
    start in `window`, or cannot beat `best`. A perfect routine is the most a mentor can add, a bound known before any
    slot: below `best` even so, they are not looked at; only level with it, their first fit is looked for only
    where it would come first on the next tie-breaks (first session, then id)."""
    not_before, not_after = window
    if best is not None:
        most = -_total(static, ROUTINE_WEIGHT)  # the total with a perfect routine, computed exactly as below
        if most > best[0]:
            return None
        if most == best[0]:  # then the first session must come before the best's (at the same time, the id)
            not_after = min(not_after, best[1] if mentor.record.id < best[2] else best[1] - _INSTANT)
            if not_after < not_before or not _may_fit(mentor, _wanted(case, not_before, not_after)):
                return None
    if not venues_for(case, mentor):
        return None
    cal = calendar(case, mentor, rooms)
    start = cal.first_fit(not_before=not_before, not_after=not_after)
    if start is None:
        return None
    found = (start, mentor.record.id)
    routine = _routine(case, cal, start.astimezone(LONDON), held=(venues_for(case, mentor), mentor.itinerary, rooms),
                       enough=None if best is None else partial(_beats, static, found, best))
    return None if routine is None else (-_total(static, ROUTINE_WEIGHT * routine), *found)


def _beats(static: float, found: tuple[datetime, str], best: tuple[float, datetime, str, MentorState],
           routine: float) -> bool:
    """Whether a mentor with this score, first session and id, and `routine`, comes before `best`."""
    return (-_total(static, ROUTINE_WEIGHT * routine), *found) < best[:3]


Held = tuple[Sequence[SafeVenue], Itinerary, Rooms | None]  # where sessions may be held: `_book`'s venues and rooms


def _routine(
    case: Case, cal: Calendar, first: datetime, *, held: Held, enough: Callable[[float], bool] | None = None
) -> float | None:
    """`_programme`'s share of follow-ups that keep the routine, booking only the follow-ups that can change it.

    A follow-up keeps the routine only at its target day's time (`Calendar.follow_up` tries that first, from the
    target day on) and a session never crosses midnight, so whether that time fits depends only on the sessions
    booked on that day and, for the travel time between venues, the evening before (travel reaches less than a day:
    `travel.WHOLE_DAY` for a rotl mentor is their own London day): none of a kept follow-up (on its own, earlier,
    target day), nor of a missed one whose search (`days` from its target) ends two days or more before the next
    target day. A missed follow-up whose search reaches the next target day (the very-high cadence's 4-day gap,
    followed by a 3-day one) may land there, at the routine's time, or on the day before, so it is booked as
    `_programme` books it (`_book`: `held` gives the venues safe for the case, the mentor's itinerary and the rooms)
    before the next target is tested. The first session is days before any follow-up, so too far for travel to
    matter. None as soon as even keeping every target left would not be `enough`."""
    local = first.astimezone(LONDON)
    at = local.time()
    limit = wall_clock_days_later(first, PROGRAMME_DAYS)
    targets = _targets(case.tier)
    venues, itinerary, rooms = held
    missed = 0
    for (offset, days), following in zip(targets, (*targets[1:], None), strict=True):
        target = local.date() + timedelta(days=offset)
        same = local_start(target, at)
        if same is not None and same <= limit and cal.fits(same):
            continue
        missed += 1
        if enough is not None and not enough((len(targets) - missed) / len(targets)):
            return None
        if following is not None and offset + days >= following[0]:
            start = cal.follow_up(target=target, at=at, days=days, not_after=limit)
            if start is not None:
                cal, itinerary = _book(cal, start, venues, itinerary, rooms)
    return (len(targets) - missed) / len(targets) if targets else 1.0


@cache  # one per tier
def _targets(tier: Tier) -> tuple[tuple[int, int], ...]:
    """The days after the first session on which the cadence's follow-ups fall due, up to PROGRAMME_DAYS, each
    with the days its follow-up is looked for (from the target day on, as `_programme` books it)."""
    found: list[tuple[int, int]] = []
    offset = 0
    for interval in cycle(CADENCE[tier]):
        offset += interval
        if offset > PROGRAMME_DAYS:
            break
        found.append((offset, interval))
    return tuple(found)


def _exclusions(case: Case, mentors: MentorIndex) -> Counter[Rule]:
    """How many mentors each hard rule rules out first, the borough's by count alone."""
    covering = mentors.covering(case.borough_key)
    excluded: Counter[Rule] = Counter()
    if len(covering) < len(mentors):
        excluded["borough"] = len(mentors) - len(covering)
    for mentor in covering:
        ruled_out = first_exclusion(case, mentor)
        if ruled_out is not None:
            excluded[ruled_out.rule] += 1
    return excluded


def reschedule(
    case: Case, current: MentorState, mentors: Sequence[MentorState], *, now: datetime, prefer: datetime | None,
    rooms: Rooms | None = None,
) -> Match | Waitlist:
    """Book a case's remaining sessions again after a change (a new tier, say): the same mentor and, where it
    still fits, the same weekly slot (`prefer`); else the best other mentor; else the waitlist.

    `current` is the mentor as if this case's future sessions were already cancelled and it held no place.
    """
    if first_exclusion(case, current) is None:
        cal = calendar(case, current, rooms)
        earliest = earliest_start(now)
        first: datetime | None
        if prefer is not None and to_utc(prefer) >= earliest and cal.fits(prefer):
            first = to_utc(prefer)
        else:
            first = cal.first_fit(not_before=earliest, not_after=to_utc(now) + timedelta(days=HORIZON_DAYS))
        if first is not None:
            sessions = sessions_from(case, current, first.astimezone(LONDON), rooms)
            met = first <= to_utc(now) + DEADLINE[case.tier]
            return Match(current.record.id, sessions, met, (to_utc(now) + DEADLINE[case.tier]).astimezone(LONDON))
    return match(case, [m for m in mentors if m.record.id != current.record.id], now=now, rooms=rooms)


def without_booking(mentor: MentorState, starts: Iterable[datetime], tier: Tier) -> MentorState:
    """The mentor as if they no longer held one young person (of `tier`) and the sessions starting at `starts`:
    the inverse of `with_booking`. The input is left untouched."""
    # By instant, in UTC: aware datetimes of different zones never compare equal in the hour the clocks go back
    # (PEP 495), and two of London's own compare by wall clock, so the two 01:30s of that night would be one.
    gone = {to_utc(start) for start in starts}
    places = {b: p for b, p in mentor.places.items() if b not in gone} if mentor.places else mentor.places
    return replace(mentor, caseload=max(mentor.caseload - 1, 0), points=max(mentor.points - TIER_POINTS[tier], 0.0),
                   busy=[(b, e) for b, e in mentor.busy if to_utc(b) not in gone], places=places)


def with_booking(mentor: MentorState, sessions: Sequence[Interval], tier: Tier | None = None, *,
                 venues: Sequence[SafeVenue | None] = ()) -> MentorState:
    """The mentor after taking one more young person (of `tier`, for the risk-weighted points) with these sessions,
    held at `venues` (in the same order, as `Rooms.place` placed them; none given: nowhere known, so no travel time
    is kept around them). The input is left untouched."""
    points = mentor.points + (TIER_POINTS[tier] if tier is not None else 0.0)
    places, itinerary = mentor.places, None
    if any(v is not None for v in venues):
        located = [(to_utc(start), to_utc(end), v.place) for (start, end), v in zip(sessions, venues, strict=True)
                   if v is not None]
        places = {**places, **{session[0]: session for session in located}}
        if "itinerary" in mentor.__dict__:  # worked out already: the new sessions added to it, not worked out again
            itinerary = mentor.itinerary
            for session in located:
                itinerary = itinerary.add(*session)
    after = replace(mentor, caseload=mentor.caseload + 1, busy=[*mentor.busy, *sessions], points=points,
                    places=places)
    if itinerary is not None:
        after.__dict__["itinerary"] = itinerary  # a cached property, as `MentorState.itinerary` would work it out
    # The mentor's free starts carry over: a booking only takes away the starts its sessions overlap (the day's
    # starts are those the windows and licence allow, less those overlapping a booking), so a day is kept
    # without them instead of worked out again. The safe venues carry over as they are.
    # A session never crosses midnight, so only the days with one change.
    new = [(to_utc(start), to_utc(end)) for start, end in sessions]
    touched = {start.astimezone(LONDON).date() for start, _ in sessions}
    after.day_slots.update(mentor.day_slots)  # copied whole (in C), then the touched days replaced
    for day in touched.intersection(mentor.day_slots):
        after.day_slots[day] = tuple(slot for slot in mentor.day_slots[day]
                                     if not any(slot[0] < e and s < slot[0] + SESSION for s, e in new))
    after.safe_venues.update(mentor.safe_venues)
    known = mentor.__dict__
    after.__dict__.update((name, known[name]) for name in OF_RECORD if name in known)  # the same record and venues
    return after
