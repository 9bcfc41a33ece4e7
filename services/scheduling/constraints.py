"""Who may mentor whom: the matcher's inputs and the hard rules that do not depend on time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Literal
from weakref import WeakValueDictionary

from services.scheduling.routes import Route, boroughs_in, plan_route
from services.scheduling.slots import (
    Calendar,
    Slot,
    Span,
    WeekMasks,
    case_masks,
    mentor_calendar,
    packed_week,
    spans_by_day,
    week_masks,
)
from services.scheduling.travel import Itinerary, Located, Place, place_of
from shared.contracts.codes import Tier, Weekday, place_key
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import Licence, MentorRecord, VenueRecord, language_problems

GenderRequest = Literal["female", "male", "non_binary", "not_stated", "any"]
Rule = Literal[
    "vetting", "licence", "borough", "language", "capacity", "points", "tier", "gender", "exclusion_zone", "conflict",
    "venue", "no_slot",
]
TIER_POINTS: dict[Tier, float] = {Tier.VERY_HIGH: 3.0, Tier.HIGH: 2.0, Tier.MEDIUM: 1.5, Tier.LOW: 1.0}

LOWER_TIERS = frozenset({Tier.LOW, Tier.MEDIUM})
STAFFED_END_BY = time(19, 0)  # harm high or above, or risk to staff: sessions end by 19:00


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

    # What the hard rules read of the case, worked out once per case instead of once per (case, mentor):
    @cached_property
    def borough_key(self) -> str:
        return place_key(self.borough)

    @cached_property
    def language_keys(self) -> frozenset[str]:
        return frozenset(_language(x) for x in self.languages)

    @cached_property
    def area_keys(self) -> frozenset[str]:
        """The borough and unsafe areas, which a rotl mentor's exclusion zones must keep clear of."""
        return frozenset(place_key(area) for area in (self.borough, *self.unsafe_areas))

    @cached_property
    def conflict_keys(self) -> frozenset[str]:
        return self.area_keys | {place_key(group) for group in self.conflict_groups}

    @cached_property
    def unsafe_keys(self) -> frozenset[str]:
        return frozenset(place_key(area) for area in self.unsafe_areas)

    @cached_property
    def unsafe_boroughs(self) -> frozenset[str]:
        return boroughs_in(tuple(self.unsafe_areas))

    @cached_property
    def need_keys(self) -> frozenset[str]:
        return frozenset(n.casefold() for n in self.needs)

    # ... what its calendars read of it (`slots.Calendar`'s `_young_spans` and `_case_masks`, given to each):
    @cached_property
    def window_spans(self) -> dict[Weekday, tuple[Span, ...]]:
        """The young person's windows by day, as wall-clock times."""
        return spans_by_day(self.availability)

    @cached_property
    def start_masks(self) -> dict[Weekday, int]:
        """By weekday, the starts the young person's windows and a staffed venue's end allow (`slots.case_masks`)."""
        return case_masks(self.window_spans if self.availability else None,
                          STAFFED_END_BY if self.staffed_only else None)

    @cached_property
    def start_bits(self) -> tuple[int, int]:
        """`start_masks` packed (`slots.packed_week`): the starts, and the weekdays with a window (all when free any
        time)."""
        return packed_week(self.start_masks)

    # ... and what the soft score reads of it:
    @cached_property
    def preferred_key(self) -> str | None:
        return None if self.preferred_language is None else _language(self.preferred_language)

    @cached_property
    def gender_preferred(self) -> bool:
        """A gender asked for as a preference (scored), not as a rule."""
        return self.mentor_gender not in ("any", "not_stated") and not self.gender_required


@dataclass(frozen=True)
class MentorState:
    """A mentor with their current load."""

    record: MentorRecord
    caseload: int  # young people currently assigned
    busy: list[tuple[datetime, datetime]]  # sessions already booked, and leave (aware)
    points: float = 0.0  # risk-weighted load of the current caseload
    without_check: bool = False  # `without_check(record, today)`, as of the day the state was loaded
    venues: tuple[VenueRecord, ...] | None = None  # where the mentor may meet; None: a staffed office per borough
    # Where the mentor is or was, for the travel rule: each session at a known venue, booked or lately taken place
    # (attended or missed: the mentor still travels on from it), by its start in UTC (`travel.Located`).
    places: Mapping[datetime, Located] = field(default_factory=dict)
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
    def home_key(self) -> str:
        return place_key(self.record.boroughs[0])

    @cached_property
    def lived_keys(self) -> frozenset[str]:
        return frozenset(tag.strip().casefold() for tag in self.record.lived_experience)

    @cached_property
    def licence(self) -> Licence | None:
        """A rotl mentor's licence (other mentors' routes and venues carry no licence conditions)."""
        return self.record.licence if self.record.kind == "rotl" else None

    @cached_property
    def zone_keys(self) -> frozenset[str]:
        return frozenset(place_key(zone) for zone in self.licence.exclusion_zones) if self.licence else frozenset()

    @cached_property
    def zone_boroughs(self) -> frozenset[str]:
        return boroughs_in(tuple(self.licence.exclusion_zones)) if self.licence else frozenset()

    @cached_property
    def venue_terms(self) -> tuple[tuple[VenueRecord, ...], tuple[object, ...]]:
        """The venues the mentor may use, and all that their safe venues depend on besides the case: the venues'
        identities and the licence's zones, approved venues and where journeys start."""
        venues = tuple(v for v, _ in self.venue_names)
        licence = self.licence
        conditions = (tuple(licence.exclusion_zones), None if licence.approved_venues is None else
                      tuple(licence.approved_venues), mentor_origin(self.record)) if licence is not None else None
        return venues, (tuple(id(v) for v in venues), conditions)

    @cached_property
    def venue_names(self) -> tuple[tuple[VenueRecord, frozenset[str]], ...]:
        """The venues the mentor may use, each with the keys of the names it goes by (borough, name, id, area),
        which must keep clear of the young person's unsafe areas and the exclusion zones."""
        venues = self.venues if self.venues is not None else default_offices(tuple(self.record.boroughs))
        return tuple((v, _venue_keys(v)) for v in venues)

    @cached_property
    def own_calendar(self) -> Calendar:
        """The mentor's side of the calendar, shared by every case (see matching.calendar)."""
        return mentor_calendar(self.record, self.busy_utc)

    @cached_property
    def week_masks(self) -> WeekMasks | None:
        """A bound on the starts of the mentor's side, by weekday (`slots.week_masks`), without their bookings."""
        return week_masks(self.record)

    @cached_property
    def week_bits(self) -> tuple[int, int] | None:
        """`week_masks` packed (`slots.packed_week`): the starts, and the weekdays it names; None without a bound."""
        masks = self.week_masks
        return None if masks is None else packed_week(masks)

    @cached_property
    def itinerary(self) -> Itinerary:
        """The sessions at a known venue (`places`), for the travel rule (`travel.py`): around the exclusion zones,
        for a rotl mentor."""
        if not self.places and not self.zone_boroughs:
            return _NOWHERE  # a rotl mentor's zones apply from their first session on, so theirs is their own
        return Itinerary(self.places.values(), self.zone_boroughs)

    @cached_property
    def busy_utc(self) -> tuple[tuple[datetime, datetime], ...]:
        """The booked sessions in UTC, in order (computed once per state, reused for every case)."""
        return tuple(sorted((start.astimezone(UTC), end.astimezone(UTC)) for start, end in self.busy))


# What a state works out from its record and venues alone: a booking (`matching.with_booking`) changes neither, so the
# new state takes these over instead of working them out again.
OF_RECORD = ("borough_keys", "language_keys", "home_key", "lived_keys", "licence", "zone_keys", "zone_boroughs",
             "venue_terms", "venue_names", "week_masks", "week_bits")

_NOWHERE = Itinerary()  # no session at a known venue (shared: an itinerary is never changed in place)


class MentorIndex(MutableMapping[str, MentorState]):
    """The mentors by id, by each borough they cover, and by what most hard rules read: a case's candidates
    without a look at every mentor.

    Setting a mentor (a new state after a booking, say) keeps them all in step; iteration is in the order given."""

    def __init__(self, mentors: Iterable[MentorState] = ()) -> None:
        self._by_id: dict[str, MentorState] = {}
        self._by_borough: dict[str, dict[str, MentorState]] = {}
        self._open: dict[tuple[str, str, bool], dict[str, MentorState]] = {}  # see `candidates`
        for mentor in mentors:
            self[mentor.record.id] = mentor

    def covering(self, borough_key: str) -> list[MentorState]:
        """The mentors who cover the borough (`place_key` of its name)."""
        return list(self._by_borough.get(borough_key, {}).values())

    def candidates(self, case: Case) -> list[MentorState]:
        """The mentors who may take the case as far as the borough, whether they may mentor at all, a shared
        language, room in their caseload and the tier say (the first hard rules); every other mentor fails one of
        them (`first_exclusion`). In no particular order."""
        found: dict[str, MentorState] = {}
        seniors = (True,) if case.tier not in LOWER_TIERS else (True, False)
        for language in case.language_keys:
            for senior in seniors:
                found.update(self._open.get((case.borough_key, language, senior), {}))
        return list(found.values())

    def __getitem__(self, mentor_id: str) -> MentorState:
        return self._by_id[mentor_id]

    def __setitem__(self, mentor_id: str, mentor: MentorState) -> None:
        if mentor_id in self._by_id:
            self._forget(mentor_id)
        self._by_id[mentor_id] = mentor  # a new state of a mentor keeps their place in the order
        for key in mentor.borough_keys:
            self._by_borough.setdefault(key, {})[mentor_id] = mentor
        for bucket in _open_keys(mentor):
            self._open.setdefault(bucket, {})[mentor_id] = mentor

    def _forget(self, mentor_id: str) -> None:
        before = self._by_id[mentor_id]
        for key in before.borough_keys:
            del self._by_borough[key][mentor_id]
        for bucket in _open_keys(before):
            del self._open[bucket][mentor_id]

    def __delitem__(self, mentor_id: str) -> None:
        self._forget(mentor_id)
        del self._by_id[mentor_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)


def _open_keys(mentor: MentorState) -> list[tuple[str, str, bool]]:
    """Where `MentorIndex.candidates` finds the mentor: each (borough, language, takes high tiers) they would pass
    the first rules for, and none when barred or at caseload."""
    if barred(mentor.record, without_check=mentor.without_check) is not None or _capacity_full(mentor):
        return []
    senior = _tier_allowed(Tier.HIGH, mentor.record)
    return [(borough, language, senior) for borough in mentor.borough_keys for language in mentor.language_keys]


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
    if not case.language_keys.isdisjoint(mentor.language_keys):
        return None
    return "no shared language"


def _capacity_full(mentor: MentorState) -> bool:
    return mentor.caseload >= mentor.record.max_caseload


def _capacity(case: Case, mentor: MentorState) -> str | None:
    if not _capacity_full(mentor):
        return None
    return f"at caseload ({mentor.caseload} of {mentor.record.max_caseload})"


def _points(case: Case, mentor: MentorState) -> str | None:
    cap = mentor.record.points_cap
    if mentor.points + TIER_POINTS[case.tier] <= cap + 1e-9:
        return None
    return f"at risk-weighted load ({mentor.points:g} of {cap:g} points; this case adds {TIER_POINTS[case.tier]:g})"


def _tier_allowed(tier: Tier, record: MentorRecord) -> bool:
    return (tier in LOWER_TIERS or record.kind == "staff"
            or (record.kind == "volunteer" and record.experience == "experienced"))


def _tier(case: Case, mentor: MentorState) -> str | None:
    record = mentor.record
    if _tier_allowed(case.tier, record):
        return None
    who = "rotl mentors" if record.kind == "rotl" else "new volunteers"
    return f"{who} take only low and medium tiers"


def _gender(case: Case, mentor: MentorState) -> str | None:
    # not_stated: no preference given; a preference that is not required is scored instead
    if not case.gender_required or case.mentor_gender in ("any", "not_stated", mentor.record.gender):
        return None
    return f"not {gender_label(case.mentor_gender)} as requested"


def _exclusion_zone(case: Case, mentor: MentorState) -> str | None:
    licence = mentor.licence
    if licence is None or mentor.zone_keys.isdisjoint(case.area_keys):
        return None
    for zone in licence.exclusion_zones:  # the first, by name
        if place_key(zone) in case.area_keys:
            return f"exclusion zone {zone} overlaps the young person's areas"
    return None


def _conflict(case: Case, mentor: MentorState) -> str | None:
    for entry in mentor.record.conflicts:
        if place_key(entry) in case.conflict_keys:
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
    place: Place = field(init=False, repr=False, compare=False)  # where it is, as the travel rule reads it

    def __post_init__(self) -> None:
        object.__setattr__(self, "place", place_of(self.venue))  # once, not for every start the matcher tries


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
        found = mentor.safe_venues[key] = _shared_safe_venues(case, mentor, key)
    return found


# Safe venues by all they depend on: the case's part of it, and the mentor's venues (by identity: an entry keeps
# its venue records alive, so their ids are not reused while it lasts) and licence conditions. Mentors with the
# same venues and conditions (those covering the same boroughs, most of them without a licence) share one answer
# instead of each working it out again for each case. A pure function of its key: it cannot go stale.
_SAFE_VENUES_FOR: dict[tuple[object, ...], tuple[tuple[VenueRecord, ...], tuple[SafeVenue, ...]]] = {}
_SAFE_VENUES_FOR_LIMIT = 20_000  # emptied when full: a few MiB at most


def _shared_safe_venues(case: Case, mentor: MentorState, key: tuple[object, ...]) -> tuple[SafeVenue, ...]:
    venues, terms = mentor.venue_terms
    entry = _SAFE_VENUES_FOR.get((key, terms))  # the same ids, while the entry keeps them alive: the same venues
    if entry is not None:
        return entry[1]
    found = tuple(_safe_venues(case, mentor))
    if len(_SAFE_VENUES_FOR) >= _SAFE_VENUES_FOR_LIMIT:
        _SAFE_VENUES_FOR.clear()
    _SAFE_VENUES_FOR[(key, terms)] = (venues, found)
    return found


def _safe_venues(case: Case, mentor: MentorState) -> list[SafeVenue]:
    licence = mentor.licence
    blocked = case.unsafe_keys | mentor.zone_keys  # most cases have no unsafe area, most mentors no zone
    avoid, avoid_zones = case.unsafe_boroughs, mentor.zone_boroughs
    origin = mentor_origin(mentor.record) if licence is not None else ""
    fits: list[SafeVenue] = []
    for v, names in mentor.venue_names:
        if (case.staffed_only and not v.staffed) or (blocked and not names.isdisjoint(blocked)):
            continue
        if licence is not None and licence.approved_venues is not None and v.id not in licence.approved_venues:
            continue
        route = plan_route(case.borough, v.borough, avoid)
        if route is None:
            continue
        mentor_route = plan_route(origin, v.borough, avoid_zones) if licence is not None else None
        if licence is not None and mentor_route is None:
            continue
        fits.append(_safe_venue(v, route, mentor_route))
    fits.sort(key=lambda f: (len(f.route), f.venue.id))
    return fits


@lru_cache(maxsize=4096)  # mentors share venues: each venue's keys once, not once per mentor (a pure function of them)
def _venue_keys(v: VenueRecord) -> frozenset[str]:
    return frozenset((place_key(v.borough), place_key(v.name), place_key(v.id), place_key(v.area or v.borough)))


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


def first_exclusion(case: Case, mentor: MentorState, *, venue: bool = True) -> Exclusion | None:
    """The first hard, time-independent rule that rules the mentor out; None when eligible. `venue=False`: every
    rule but the last and dearest, the venue's, which the caller checks itself (`venues_for`) where it must."""
    reason = _borough(case, mentor)  # first: most mentors work elsewhere, and it is the plainest reason
    if reason is not None:
        return Exclusion("borough", reason)
    bar = barred(mentor.record, without_check=mentor.without_check)
    if bar is not None:
        return bar
    for rule, check in _RULES if venue else _RULES[:-1]:
        reason = check(case, mentor)
        if reason is not None:
            return Exclusion(rule, reason)
    return None


# The rules `MentorIndex.candidates` does not answer for, the venue's aside, in `_RULES`'s order:
_AFTER_INDEX = [(rule, check) for rule, check in _RULES[:-1] if rule not in ("language", "capacity", "tier")]


def candidate_exclusion(case: Case, mentor: MentorState) -> Exclusion | None:
    """`first_exclusion(case, mentor, venue=False)` for one of `MentorIndex.candidates(case)`, which pass every rule
    the index answers for (the borough, `barred`, language, capacity and tier): only the others are checked."""
    for rule, check in _AFTER_INDEX:
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
