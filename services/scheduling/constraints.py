"""Who may mentor whom: the matcher's inputs and the hard rules that do not depend on time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Literal
from weakref import WeakValueDictionary

from services.scheduling.routes import Route, boroughs_in, plan_route
from services.scheduling.slots import Calendar, Slot, mentor_calendar
from shared.contracts.codes import Tier, place_key
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import MentorRecord, VenueRecord, language_problems

GenderRequest = Literal["female", "male", "non_binary", "not_stated", "any"]
Rule = Literal[
    "vetting", "licence", "borough", "language", "capacity", "points", "tier", "gender", "exclusion_zone", "conflict",
    "venue", "no_slot",
]
TIER_POINTS: dict[Tier, float] = {Tier.VERY_HIGH: 3.0, Tier.HIGH: 2.0, Tier.MEDIUM: 1.5, Tier.LOW: 1.0}

LOWER_TIERS = frozenset({Tier.LOW, Tier.MEDIUM})


@dataclass(frozen=True)
class Case:
    """What scheduling knows about an accepted, assessed referral."""

    referral_id: str
    tier: Tier
    borough: str
    languages: list[str]
    mentor_gender: GenderRequest
    preferred_language: str | None
    availability: list[WeeklyWindow]  # the young person's weekly windows; empty means any time
    unsafe_areas: list[str]
    accepted_at: datetime  # aware
    staffed_only: bool = False  # harm high or above, or risk to staff: staffed venue, ending by 19:00
    previous_mentor: str | None = None  # on a re-referral
    needs: tuple[str, ...] = ()  # needs codes and indicator codes, for lived-experience matching
    conflict_groups: tuple[str, ...] = ()  # groups to keep the young person apart from
    gender_required: bool = True  # False: mentor_gender is a preference (scored), not a rule

    @cached_property
    def borough_key(self) -> str:
        return place_key(self.borough)


@dataclass(frozen=True)
class MentorState:
    """A mentor with their current load."""

    record: MentorRecord
    caseload: int  # young people currently assigned
    busy: list[tuple[datetime, datetime]]  # sessions already booked, and leave (aware)
    points: float = 0.0  # risk-weighted load of the current caseload
    without_check: bool = False  # `without_check(record, today)`, as of the day the state was loaded
    venues: tuple[VenueRecord, ...] | None = None  # where the mentor may meet; None: a staffed office per borough
    # Worked out once per state and reused for every case (a new state, after a booking say, starts empty):
    day_slots: dict[date, tuple[Slot, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    safe_venues: dict[tuple[str, tuple[str, ...], bool], tuple[SafeVenue, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def borough_keys(self) -> frozenset[str]:
        return frozenset(place_key(b) for b in self.record.boroughs)

    @cached_property
    def language_keys(self) -> frozenset[str]:
        return frozenset(_language(x) for x in self.record.languages)

    @cached_property
    def own_calendar(self) -> Calendar:
        """The mentor's side of the calendar, shared by every case (see matching.calendar)."""
        return mentor_calendar(self.record, self.busy_utc)

    @cached_property
    def busy_utc(self) -> tuple[tuple[datetime, datetime], ...]:
        """The booked sessions in UTC, in order (computed once per state, reused for every case)."""
        return tuple(sorted((start.astimezone(UTC), end.astimezone(UTC)) for start, end in self.busy))


class MentorIndex(MutableMapping[str, MentorState]):
    """The mentors by id, and by each borough they cover: a case's candidates without a look at every mentor.

    Setting a mentor (a new state after a booking, say) keeps both in step; iteration is in the order given."""

    def __init__(self, mentors: Iterable[MentorState] = ()) -> None:
        self._by_id: dict[str, MentorState] = {}
        self._by_borough: dict[str, dict[str, MentorState]] = {}
        for mentor in mentors:
            self[mentor.record.id] = mentor

    def covering(self, borough_key: str) -> list[MentorState]:
        """The mentors who cover the borough (`place_key` of its name)."""
        return list(self._by_borough.get(borough_key, {}).values())

    def __getitem__(self, mentor_id: str) -> MentorState:
        return self._by_id[mentor_id]

    def __setitem__(self, mentor_id: str, mentor: MentorState) -> None:
        before = self._by_id.get(mentor_id)
        if before is not None and before.borough_keys != mentor.borough_keys:
            del self[mentor_id]
        self._by_id[mentor_id] = mentor  # a new state of a mentor keeps their place in the order
        for key in mentor.borough_keys:
            self._by_borough.setdefault(key, {})[mentor_id] = mentor

    def __delitem__(self, mentor_id: str) -> None:
        for key in self._by_id.pop(mentor_id).borough_keys:
            del self._by_borough[key][mentor_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass(frozen=True)
class Exclusion:
    """Why a mentor cannot take a case: the rule broken and a plain-words reason."""

    rule: Rule
    reason: str


# Who may mentor at all, whoever the young person: the one place these rules are written. The matcher
# (`first_exclusion`), moving the cases of a mentor they come to apply to, and the mentor list all read them.

def without_check(record: MentorRecord, today: date) -> bool:
    """No enhanced check (DBS with the children's barred list) in force on `today`: none recorded, or it ran out.
    Mentoring children is regulated activity, so such a mentor takes no case until a check is recorded."""
    return record.vetting is None or record.vetting.enhanced_check_expires < today


def licence_suspended(record: MentorRecord) -> bool:
    """A mentor on release on temporary licence whose licence is suspended: no sessions until it is lifted."""
    return record.kind == "rotl" and record.licence is not None and record.licence.suspended


def barred(record: MentorRecord, *, without_check: bool) -> Exclusion | None:
    """Why the mentor may take no case at all, if so: no enhanced check in force (none recorded, or expired), or a
    suspended licence. `without_check` is `without_check(record, today)` (a `MentorState` carries it)."""
    if without_check:
        if record.vetting is None:
            return Exclusion("vetting", "no enhanced check recorded")
        return Exclusion("vetting", f"enhanced check expired on {record.vetting.enhanced_check_expires.isoformat()}")
    if licence_suspended(record):
        return Exclusion("licence", "licence suspended")
    return None


def mentor_problems(record: MentorRecord, today: date) -> list[str]:
    """What a scheduler should look at: missing or expiring checks, licence limits."""
    problems = []
    if record.vetting is None:
        problems.append("no enhanced check recorded: takes no case until one is")
    elif without_check(record, today):
        problems.append(f"enhanced check expired {record.vetting.enhanced_check_expires.isoformat()}")
    elif record.vetting.enhanced_check_expires <= today + timedelta(days=30):
        problems.append(f"enhanced check expires {record.vetting.enhanced_check_expires.isoformat()}")
    if wrong := language_problems(record):
        problems.append(f"language(s) {', '.join(wrong)} are not ISO 639-1 codes, so no referral matches them: "
                        "re-import with codes such as 'en'")
    licence = record.licence
    if record.kind == "rotl" and licence is not None:
        if licence_suspended(record):
            problems.append("licence suspended")
        if licence.valid_to is not None and licence.valid_to < today + timedelta(days=30):
            problems.append(f"licence ends {licence.valid_to.isoformat()}")
        if licence.exclusion_zones and licence.establishment_borough is None:
            problems.append(f"no establishment_borough: routes round the exclusion zones are planned from "
                            f"{record.boroughs[0]}")
    return problems


def _language(word: str) -> str:
    return word.strip().casefold()


def _borough(case: Case, mentor: MentorState) -> str | None:
    if case.borough_key in mentor.borough_keys:
        return None
    return f"does not cover {case.borough}"


def _shared_language(case: Case, mentor: MentorState) -> str | None:
    # preferred_language is only a preference (scored); the hard rule reads case.languages.
    if {_language(x) for x in case.languages} & mentor.language_keys:
        return None
    return "no shared language"


def _capacity(case: Case, mentor: MentorState) -> str | None:
    if mentor.caseload < mentor.record.max_caseload:
        return None
    return f"at caseload ({mentor.caseload} of {mentor.record.max_caseload})"


def _points(case: Case, mentor: MentorState) -> str | None:
    cap = mentor.record.points_cap
    if mentor.points + TIER_POINTS[case.tier] <= cap + 1e-9:
        return None
    return f"at risk-weighted load ({mentor.points:g} of {cap:g} points; this case adds {TIER_POINTS[case.tier]:g})"


def _tier(case: Case, mentor: MentorState) -> str | None:
    record = mentor.record
    if case.tier in LOWER_TIERS or record.kind == "staff":
        return None
    if record.kind == "volunteer" and record.experience == "experienced":
        return None
    who = "rotl mentors" if record.kind == "rotl" else "new volunteers"
    return f"{who} take only low and medium tiers"


def _gender(case: Case, mentor: MentorState) -> str | None:
    # not_stated: no preference given; a preference that is not required is scored instead
    if not case.gender_required or case.mentor_gender in ("any", "not_stated", mentor.record.gender):
        return None
    return f"not {gender_label(case.mentor_gender)} as requested"


def _exclusion_zone(case: Case, mentor: MentorState) -> str | None:
    licence = mentor.record.licence
    if mentor.record.kind != "rotl" or licence is None:
        return None
    areas = {place_key(area) for area in (case.borough, *case.unsafe_areas)}
    for zone in licence.exclusion_zones:
        if place_key(zone) in areas:
            return f"exclusion zone {zone} overlaps the young person's areas"
    return None


def _conflict(case: Case, mentor: MentorState) -> str | None:
    areas = {place_key(area) for area in (case.borough, *case.unsafe_areas, *case.conflict_groups)}
    for entry in mentor.record.conflicts:
        if place_key(entry) in areas:
            return f"conflict register: {entry}"
    return None


def _venue(case: Case, mentor: MentorState) -> str | None:
    if venues_for(case, mentor):
        return None
    need = "staffed venue" if case.staffed_only else "venue"
    rotl = mentor.record.kind == "rotl"
    return (f"no {need} clear of the young person's unsafe areas" + (" and approved by the licence" if rotl else "")
            + " with a route around them" + (" and the exclusion zones" if rotl else ""))


@lru_cache(maxsize=1024)
def default_offices(boroughs: tuple[str, ...]) -> tuple[VenueRecord, ...]:
    """With no venues registered: the organisation's staffed office in each of the mentor's boroughs."""
    return tuple(
        VenueRecord(id="office-" + "-".join(place_key(b).split()), name=f"{b} office", borough=b, staffed=True, rooms=50)
        for b in boroughs
    )


@dataclass(frozen=True, slots=True, weakref_slot=True)
class SafeVenue:
    """A venue both can reach safely: the young person's route from home, and a rotl mentor's from the
    establishment (None for other mentors, whose routes carry no licence conditions)."""

    venue: VenueRecord
    route: Route
    mentor_route: Route | None = None


# Every mentor's cache of safe venues (MentorState.safe_venues) holds the same few thousand of them: after a flood
# of 2,000 referrals, 500 mentors held about 150,000 copies (16 MiB). Keyed by the venue record's identity, which
# the entry's own SafeVenue keeps alive while the entry lasts; an entry goes when no cache holds it any longer.
_SHARED_SAFE_VENUES: WeakValueDictionary[tuple[int, Route, Route | None], SafeVenue] = WeakValueDictionary()


def _safe_venue(venue: VenueRecord, route: Route, mentor_route: Route | None) -> SafeVenue:
    key = (id(venue), route, mentor_route)
    found = _SHARED_SAFE_VENUES.get(key)
    if found is None or found.venue is not venue:
        found = _SHARED_SAFE_VENUES[key] = SafeVenue(venue, route, mentor_route)
    return found


def mentor_origin(record: MentorRecord) -> str:
    """Where a rotl mentor's journey starts: the establishment's borough, else their first borough."""
    licence = record.licence
    return licence.establishment_borough if licence and licence.establishment_borough else record.boroughs[0]


def venues_for(case: Case, mentor: MentorState) -> tuple[SafeVenue, ...]:
    """The venues the mentor may use that are safe for this case, best first (the shortest journey for the young
    person): clear of their unsafe areas and the mentor's exclusion zones by borough, area and name, reached by
    routes around both, approved by a licence, staffed when required."""
    key = (case.borough, tuple(case.unsafe_areas), case.staffed_only)  # all it reads of the case
    found = mentor.safe_venues.get(key)
    if found is None:
        found = mentor.safe_venues[key] = tuple(_safe_venues(case, mentor))
    return found


def _safe_venues(case: Case, mentor: MentorState) -> list[SafeVenue]:
    unsafe = tuple(case.unsafe_areas)
    licence = mentor.record.licence if mentor.record.kind == "rotl" else None
    zones = tuple(licence.exclusion_zones) if licence is not None else ()
    blocked = {place_key(a) for a in (*unsafe, *zones)}
    avoid, avoid_zones = boroughs_in(unsafe), boroughs_in(zones)
    venues = mentor.venues if mentor.venues is not None else default_offices(tuple(mentor.record.boroughs))
    fits: list[SafeVenue] = []
    for v in venues:
        names = {place_key(v.borough), place_key(v.name), place_key(v.id), place_key(v.area or v.borough)}
        if (case.staffed_only and not v.staffed) or names & blocked:
            continue
        if licence is not None and licence.approved_venues is not None and v.id not in licence.approved_venues:
            continue
        route = plan_route(case.borough, v.borough, avoid)
        if route is None:
            continue
        mentor_route = plan_route(mentor_origin(mentor.record), v.borough, avoid_zones) if licence else None
        if licence is not None and mentor_route is None:
            continue
        fits.append(_safe_venue(v, route, mentor_route))
    fits.sort(key=lambda f: (len(f.route), f.venue.id))
    return fits


# After the borough and whether the mentor may mentor at all (`barred`), in this order:
_RULES: list[tuple[Rule, Callable[[Case, MentorState], str | None]]] = [
    ("language", _shared_language),
    ("capacity", _capacity),
    ("points", _points),
    ("tier", _tier),
    ("gender", _gender),
    ("exclusion_zone", _exclusion_zone),
    ("conflict", _conflict),
    ("venue", _venue),
]


def first_exclusion(case: Case, mentor: MentorState) -> Exclusion | None:
    """The first hard, time-independent rule that rules the mentor out; None when eligible."""
    reason = _borough(case, mentor)  # first: most mentors work elsewhere, and it is the plainest reason
    if reason is not None:
        return Exclusion("borough", reason)
    bar = barred(mentor.record, without_check=mentor.without_check)
    if bar is not None:
        return bar
    for rule, check in _RULES:
        reason = check(case, mentor)
        if reason is not None:
            return Exclusion(rule, reason)
    return None


def exclusion(case: Case, mentor: MentorState) -> str | None:
    """The first hard, time-independent reason the mentor cannot take the case, in plain words; None if eligible."""
    found = first_exclusion(case, mentor)
    return None if found is None else found.reason


def gender_label(gender: str) -> str:
    return {"non_binary": "non-binary", "not_stated": "'not stated'"}.get(gender, gender)


def summarise(case: Case, counts: Counter[Rule], *, horizon_days: int) -> str:
    """'no mentor fits: 3 at caseload, 2 do not cover Hackney, …', largest count first, then rule order."""
    wanted, days = gender_label(case.mentor_gender), horizon_days
    zone_tail = "an exclusion zone over the young person's areas"
    phrases: dict[Rule, tuple[str, str]] = {  # (one, many)
        "vetting": ("has an expired enhanced check", "have an expired enhanced check"),
        "licence": ("has a suspended licence", "have a suspended licence"),
        "points": ("is at risk-weighted load", "are at risk-weighted load"),
        "conflict": ("has a conflict-register match", "have a conflict-register match"),
        "venue": ("has no safe venue or safe route to one", "have no safe venue or safe route to one"),
        "borough": (f"does not cover {case.borough}", f"do not cover {case.borough}"),
        "language": ("shares no language", "share no language"),
        "capacity": ("at caseload", "at caseload"),
        "tier": ("takes only low and medium tiers", "take only low and medium tiers"),
        "gender": (f"is not {wanted} as requested", f"are not {wanted} as requested"),
        "exclusion_zone": (f"has {zone_tail}", f"have {zone_tail}"),
        "no_slot": (f"has no free slot in the next {days} days", f"have no free slot in the next {days} days"),
    }
    order = list(phrases)
    parts = sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0])))
    return "no mentor fits: " + ", ".join(f"{n} {phrases[rule][0 if n == 1 else 1]}" for rule, n in parts)
