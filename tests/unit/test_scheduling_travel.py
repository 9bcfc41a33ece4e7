"""Travel between venues, a hard rule: a mentor is never booked back to back at two venues too far apart to get from
one to the other, by the online match, the batch round, or a scheduler's choice; the same venue needs no gap."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.choices import _travel_refusal
from services.scheduling.constraints import Case, MentorState, SafeVenue, venues_for
from services.scheduling.matching import LONDON, Match, match, rank, with_booking, without_booking
from services.scheduling.optimiser import optimise
from services.scheduling.rooms import Rooms
from services.scheduling.slots import to_utc
from services.scheduling.travel import (
    PER_BOROUGH,
    SAME_BOROUGH,
    Itinerary,
    Located,
    Place,
    place_of,
    says,
    travel_time,
)
from shared.contracts.codes import LONDON_BOROUGHS, Tier
from shared.contracts.scheduling import Licence, MentorRecord, VenueRecord
from tests.support.matching import NOW, window
from tests.support.schedules import evaluate, run_batch, run_online

CROYDON = VenueRecord(id="croydon-hub", name="Croydon hub", borough="Croydon", rooms=2)
ENFIELD = VenueRecord(id="enfield-hub", name="Enfield hub", borough="Enfield", rooms=2)
ENFIELD_ANNEX = VenueRecord(id="enfield-annex", name="Enfield annex", borough="Enfield", rooms=2)
MONDAY = NOW.date()  # Monday 2 March 2026, from 09:00: its afternoon is past the two hours' notice
WEEK = timedelta(days=7)


def at(hh: int, mm: int = 0) -> datetime:
    return datetime.combine(MONDAY, datetime.min.time(), tzinfo=LONDON).replace(hour=hh, minute=mm)


def jason(*, busy_at: VenueRecord | None = CROYDON, venues: tuple[VenueRecord, ...] = (CROYDON, ENFIELD)) -> MentorState:
    """m-jason, free on Mondays 16:00-20:00, with a session 16:00-17:00 on 2 March at `busy_at`."""
    record = MentorRecord.model_validate({
        "id": "m-jason", "name": "Jason", "kind": "staff", "boroughs": ["Enfield", "Croydon"], "languages": ["en"],
        "gender": "male", "max_caseload": 4, "availability": [window("mon", "16:00", "20:00")],
        "vetting": {"enhanced_check_expires": "2030-12-31"}})
    session = (at(16), at(17))
    places = held(session, busy_at) if busy_at is not None else {}
    return MentorState(record=record, caseload=0, busy=[session], venues=venues, places=places)


def held(session: tuple[datetime, datetime], venue: VenueRecord) -> dict[datetime, Located]:
    """`MentorState.places` for one session at `venue`: keyed by its start in UTC."""
    start, end = to_utc(session[0]), to_utc(session[1])
    return {start: (start, end, place_of(venue))}


def young_person(referral_id: str = "r1", *, unsafe: tuple[str, ...] = ("Croydon",)) -> Case:
    """In Enfield, free on Mondays 17:00-19:30 only; Croydon unsafe for them, so only Enfield venues will do."""
    return Case(referral_id=referral_id, tier=Tier.LOW, borough="Enfield", languages=["en"], mentor_gender="any",
                preferred_language=None, availability=[window("mon", "17:00", "19:30")], unsafe_areas=list(unsafe),
                accepted_at=NOW)


def _first(result: object) -> datetime:
    assert isinstance(result, Match)
    return result.sessions[0][0]


@pytest.mark.parametrize(("one", "other", "minutes"), [
    (CROYDON, CROYDON, 0),
    (ENFIELD, ENFIELD_ANNEX, 15),  # the same borough
    (CROYDON, VenueRecord(id="lambeth", name="Lambeth hub", borough="Lambeth"), 30),  # neighbours
    (CROYDON, ENFIELD, 90),  # Croydon, Bromley, Greenwich, Newham, Waltham Forest, Enfield: five boundaries
])
def test_travel_time_is_a_fixed_buffer_plus_one_per_borough_boundary(
        one: VenueRecord, other: VenueRecord, minutes: int) -> None:
    assert travel_time(place_of(one), place_of(other)) == travel_time(place_of(other), place_of(one)) == timedelta(
        minutes=minutes)
    assert (SAME_BOROUGH, PER_BOROUGH) == (timedelta(minutes=15), timedelta(minutes=15))


def test_a_back_to_back_session_at_a_far_venue_is_skipped_for_the_first_start_that_leaves_time_to_travel() -> None:
    mentor, case = jason(), young_person()
    assert [f.venue.id for f in venues_for(case, mentor)] == ["enfield-hub"]
    for rooms in (None, Rooms()):  # the batch plan leaves rooms out; the online match has them in view
        assert _first(match(case, [mentor], now=NOW, rooms=rooms)) == at(18, 30)  # 17:00 + 90 minutes
        assert rank(case, [mentor], now=NOW, rooms=rooms)[0].first[0] == at(18, 30)


def test_the_same_venue_back_to_back_needs_no_travel_time() -> None:
    mentor, case = jason(busy_at=ENFIELD), young_person()
    assert _first(match(case, [mentor], now=NOW, rooms=Rooms())) == at(17)


def test_a_session_stored_without_a_venue_and_leave_need_no_travel_time() -> None:
    assert _first(match(young_person(), [jason(busy_at=None)], now=NOW, rooms=Rooms())) == at(17)


def test_where_a_near_venue_will_do_the_session_goes_there_back_to_back() -> None:
    """Croydon is safe for this young person: the first start is 17:00, held at the Croydon hub (the same venue),
    not the Enfield hub the route prefers, which the mentor could not reach by then."""
    mentor, case = jason(), young_person(unsafe=())
    result = match(case, [mentor], now=NOW, rooms=(rooms := Rooms()))
    assert _first(result) == at(17)
    assert isinstance(result, Match)
    placed = rooms.place(venues_for(case, mentor), result.sessions, mentor.itinerary)
    assert placed[0][1] is not None and placed[0][1].venue.id == "croydon-hub"


def test_the_travel_time_before_the_next_session_counts_too() -> None:
    """A session at 18:00 in Croydon: a young person in Enfield free from 16:00 cannot be seen that day (a session
    must end by 16:30 to leave 90 minutes, and after 19:00 + 90 minutes the mentor's window is over)."""
    mentor = jason()
    later = replace(mentor, busy=[(at(18), at(19))], places=held((at(18), at(19)), CROYDON))
    case = replace(young_person(), availability=[window("mon", "16:00", "19:30")])
    assert _first(match(case, [later], now=NOW, rooms=Rooms())) == at(16) + WEEK
    assert Itinerary([(at(18), at(19), place_of(CROYDON))]).clash(at(16), at(17), place_of(ENFIELD)) is not None
    assert Itinerary([(at(18), at(19), place_of(CROYDON))]).clash(at(15), at(16), place_of(ENFIELD)) is None


def test_placing_drops_a_session_no_venue_can_be_reached_for_and_moves_on_to_one_that_can() -> None:
    itinerary = Itinerary([(at(16), at(17), place_of(CROYDON))])
    enfield, croydon = SafeVenue(ENFIELD, ("Enfield",)), SafeVenue(CROYDON, ("Enfield", "Croydon"))
    assert Rooms().place([enfield], [(at(17), at(18))], itinerary) == []
    placed = Rooms().place([enfield, croydon], [(at(17), at(18))], itinerary)
    assert [(interval, venue.venue.id if venue else None) for interval, venue in placed] == [
        ((at(17), at(18)), "croydon-hub")]


def test_a_schedulers_choice_of_a_back_to_back_far_start_is_refused_naming_the_travel_time() -> None:
    mentor, case = jason(), young_person()
    said = _travel_refusal(case, mentor, Rooms(), at(17))
    assert said == ("they have a session in Croydon until 17:00 and need 90 minutes to reach Enfield (the travel "
                    "time between venues)")
    assert _travel_refusal(case, jason(busy_at=ENFIELD), Rooms(), at(17)) is None
    later = replace(mentor, busy=[(at(18), at(19))], places=held((at(18), at(19)), CROYDON))
    assert _travel_refusal(case, later, Rooms(), at(17)) == (
        "they have a session in Croydon from 18:00 and need 90 minutes to get there from Enfield (the travel time "
        "between venues)")


def test_the_round_never_books_a_mentor_back_to_back_at_venues_too_far_apart() -> None:
    """Two young people in Enfield for m-jason, who has a session in Croydon until 17:00: the plan and the online
    match keep the travel time, and the judge of every schedule checks it."""
    mentor = jason()
    cases = [young_person("r1"), young_person("r2")]
    result = optimise(cases, [mentor], now=NOW)
    assert set(result.assignments) == {"r1", "r2"}
    starts = [start for m in result.assignments.values() for start, _ in m.sessions]
    assert not [start for start in starts if at(17) <= start < at(18, 30)]  # nothing within 90 minutes of Croydon
    for schedule in (run_batch(cases, [mentor], now=NOW), run_online(cases, [mentor], now=NOW)):
        report = evaluate(cases, [mentor], schedule.bookings, now=NOW, visits=schedule.visits)
        assert report.violations == []
        assert report.placed == 2


def test_the_round_never_books_two_young_people_back_to_back_at_venues_too_far_apart() -> None:
    """One young person in Croydon (Enfield unsafe for them) free 16:00-17:00, one in Enfield (Croydon unsafe)
    free 17:00-18:00, both on Mondays, both with m-jason: never the same Monday."""
    mentor = replace(jason(busy_at=None), busy=[])
    croydon = replace(young_person("r1", unsafe=("Enfield",)), borough="Croydon",
                      availability=[window("mon", "16:00", "17:00")])
    enfield = replace(young_person("r2"), availability=[window("mon", "17:00", "18:00")])
    cases = [croydon, enfield]
    for schedule in (run_batch(cases, [mentor], now=NOW), run_online(cases, [mentor], now=NOW)):
        report = evaluate(cases, [mentor], schedule.bookings, now=NOW, visits=schedule.visits)
        assert report.violations == []
        assert report.placed == 2
        days = [{start.date() for start, _ in schedule.bookings[r][1]} for r in ("r1", "r2")]
        assert not days[0] & days[1]


def test_the_judge_flags_a_back_to_back_pair_at_venues_too_far_apart() -> None:
    mentor, case = jason(), young_person()
    enfield = SafeVenue(ENFIELD, ("Enfield",))
    report = evaluate([case], [mentor], {"r1": ("m-jason", [(at(17), at(18))])}, now=NOW, visits={"r1": [enfield]})
    assert [(v.referral_id, v.rule) for v in report.violations] == [("r1", "travel_time")]
    fine = evaluate([case], [mentor], {"r1": ("m-jason", [(at(18, 30), at(19, 30))])}, now=NOW,
                    visits={"r1": [enfield]})
    assert fine.violations == []


def test_a_young_persons_own_follow_ups_leave_each_other_the_travel_time() -> None:
    """Very high, twice a week: the day-7 follow-up (Monday 9 March at 18:00 is taken) is looked for up to Thursday
    12th and lands there at 18:00 in Croydon, Enfield's one room being held; the day-10 follow-up, that Thursday too,
    must then be where the mentor can get to in time (17:00 in Croydon), not at 16:00 in Enfield, which placing
    would refuse, losing the session: every session the match books is placed."""
    record = MentorRecord.model_validate({
        "id": "m-a", "name": "A", "kind": "staff", "boroughs": ["Enfield", "Croydon"], "languages": ["en"],
        "gender": "male", "max_caseload": 4,
        "availability": [window("mon", "18:00", "19:00"), window("thu", "16:00", "20:00")],
        "vetting": {"enhanced_check_expires": "2030-12-31"}})
    enfield, croydon = ENFIELD.model_copy(update={"rooms": 1}), CROYDON.model_copy(update={"rooms": 1})
    mentor = MentorState(record=record, caseload=0, busy=[(at(18) + WEEK, at(19) + WEEK)], venues=(enfield, croydon))
    case = Case(referral_id="r1", tier=Tier.VERY_HIGH, borough="Enfield", languages=["en"], mentor_gender="any",
                preferred_language=None, availability=[], unsafe_areas=[], accepted_at=NOW)
    thursday = timedelta(days=10)
    rooms = Rooms({"enfield-hub": [(at(18) + thursday, at(19) + thursday)],
                   "croydon-hub": [(at(16) + thursday, at(17) + thursday)]})
    result = match(case, [mentor], now=NOW, rooms=rooms)
    assert isinstance(result, Match)
    assert [start for start, _ in result.sessions if start.date() == MONDAY + thursday] == [
        at(18) + thursday, at(17) + thursday]
    placed = rooms.place(venues_for(case, mentor), result.sessions, mentor.itinerary)
    assert [interval for interval, _ in placed] == result.sessions
    assert rank(case, [mentor], now=NOW, rooms=Rooms(rooms._held))[0].first == result.sessions[0]


def test_the_hour_the_clocks_go_back_keeps_each_sessions_venue() -> None:
    """25 October 2026: 01:30 comes twice (00:30 and 01:30 UTC). A session in each keeps its venue for the travel
    rule, worked out afresh or carried over a booking, and taking one away leaves the other."""
    first = datetime(2026, 10, 25, 1, 30, tzinfo=LONDON)  # 00:30 UTC
    second = first.replace(fold=1)  # 01:30 UTC
    assert to_utc(second) - to_utc(first) == timedelta(hours=1)
    mentor = replace(jason(busy_at=None), busy=[])
    croydon = SafeVenue(CROYDON, ("Croydon",))
    booked = mentor
    for start in (first, second):
        booked = with_booking(booked, [(start, (to_utc(start) + timedelta(hours=1)).astimezone(LONDON))],
                              venues=[croydon])
    assert len(replace(booked).itinerary.near(to_utc(first), to_utc(second))) == 2  # worked out afresh
    less = without_booking(booked, [first], Tier.LOW)
    assert [to_utc(start) for start, _ in less.busy] == [to_utc(second)]
    assert [session[0] for session in replace(less).itinerary.near(to_utc(first), to_utc(second))] == [
        to_utc(second)]


ZONES = frozenset({"Bromley", "Lambeth"})  # Croydon to Enfield around them: Merton, Wandsworth, Westminster, ...


def test_a_rotl_mentors_travel_goes_around_their_exclusion_zones() -> None:
    croydon, enfield = place_of(CROYDON), place_of(ENFIELD)
    assert travel_time(croydon, enfield, ZONES) == timedelta(minutes=105)  # six boundaries, not five
    assert travel_time(croydon, place_of(ENFIELD_ANNEX), ZONES) == timedelta(minutes=105)
    assert travel_time(enfield, place_of(ENFIELD_ANNEX), ZONES) == SAME_BOROUGH
    walled = frozenset({"Barnet", "Haringey", "Waltham Forest"})  # every way into Enfield
    assert travel_time(croydon, enfield, walled) is None
    itinerary = Itinerary([(to_utc(at(9)), to_utc(at(10)), croydon)], walled)
    assert itinerary.clash(to_utc(at(20)), to_utc(at(21)), enfield) is not None  # no journey: not that day
    assert itinerary.clash(to_utc(at(20) + timedelta(days=1)), to_utc(at(21) + timedelta(days=1)), enfield) is None
    clash = itinerary.clash(to_utc(at(20)), to_utc(at(21)), enfield)
    assert clash is not None
    assert says(clash, enfield, to_utc(at(20)), walled) == (
        "they have a session in Croydon that day and no journey to Enfield clear of their licence's exclusion zones")


def test_a_rotl_mentor_is_booked_only_where_the_journey_around_their_zones_leaves_time() -> None:
    """The same Croydon session until 17:00: 90 minutes for a staff mentor (18:30), 105 around the exclusion zones,
    so not that Monday (the young person is free until 19:30): the next one at 17:00."""
    staff = jason()
    record = staff.record.model_copy(update={
        "kind": "rotl", "licence": Licence(return_by="23:00", exclusion_zones=sorted(ZONES))})
    rotl = replace(staff, record=record)
    case = young_person()
    for rooms in (None, Rooms()):
        assert _first(match(case, [rotl], now=NOW, rooms=rooms)) == at(17) + WEEK
    assert _travel_refusal(case, rotl, Rooms(), at(18, 30)) == (
        "they have a session in Croydon until 17:00 and need 105 minutes to reach Enfield (the travel time between "
        "venues)")


_T0 = datetime(2026, 10, 20, tzinfo=UTC)  # the clocks go back within the sessions drawn
_places = st.builds(lambda v, b: Place(f"v{v}", b, f"n{v}"), st.integers(0, 6),
                    st.sampled_from([*LONDON_BOROUGHS[:8], "Croydon", "Enfield", "Haringey"]))
_sessions = st.tuples(st.integers(0, 500), st.integers(1, 6), _places).map(
    lambda t: (_T0 + timedelta(minutes=30 * t[0]), _T0 + timedelta(minutes=30 * (t[0] + t[1])), t[2]))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.lists(_sessions, max_size=12), _sessions, st.booleans(),
       st.sampled_from([frozenset(), ZONES, frozenset({"Barnet", "Haringey", "Waltham Forest"})]))
def test_an_itinerary_finds_a_clash_exactly_when_some_session_leaves_too_little_time(
        booked: list[Located], new: Located, one_by_one: bool, avoid: frozenset[str]) -> None:
    """Whatever the sessions, built at once or added one by one, around exclusion zones or not: a clash exactly
    when, checked against every session, one is too close for the journey or unreachable the same London day."""
    itinerary = Itinerary((), avoid) if one_by_one else Itinerary(booked, avoid)
    for session in booked if one_by_one else ():
        itinerary = itinerary.add(*session)
    start, end, place = new

    def too_close(other: Located) -> bool:
        need = travel_time(place, other[2], avoid)
        if need is None:
            return other[0].astimezone(LONDON).date() == start.astimezone(LONDON).date()
        return other[0] < end + need and start < other[1] + need

    assert (itinerary.clash(start, end, place) is not None) == any(too_close(other) for other in booked)


def test_the_judge_counts_a_rotl_mentors_journey_around_their_exclusion_zones() -> None:
    staff = jason()
    rotl = replace(staff, record=staff.record.model_copy(update={
        "kind": "rotl", "licence": Licence(return_by="23:00", exclusion_zones=sorted(ZONES))}))
    case = replace(young_person(), availability=[window("mon", "17:00", "21:00")])
    enfield = SafeVenue(ENFIELD, ("Enfield",), ("Enfield",))
    at_18_30 = evaluate([case], [rotl], {"r1": ("m-jason", [(at(18, 30), at(19, 30))])}, now=NOW,
                        visits={"r1": [enfield]})
    assert [(v.rule, v.detail) for v in at_18_30.violations] == [
        ("travel_time", "m-jason: Croydon until 17:00, Enfield from 18:30: needs 105 min")]
    at_19 = evaluate([case], [rotl], {"r1": ("m-jason", [(at(19), at(20))])}, now=NOW, visits={"r1": [enfield]})
    assert at_19.violations == []


def _rotl_without_sessions() -> MentorState:
    staff = jason(busy_at=None)
    record = staff.record.model_copy(update={
        "kind": "rotl", "licence": Licence(return_by="23:00", exclusion_zones=sorted(ZONES))})
    return replace(staff, record=record, busy=[], places={})


def test_the_empty_itinerary_of_a_rotl_mentor_knows_their_zones() -> None:
    assert _rotl_without_sessions().itinerary.avoid == frozenset(ZONES)


def test_a_rotl_mentors_first_booking_carried_over_keeps_the_journey_around_the_zones() -> None:
    """Their first session at a known venue: judged around the zones whether worked out afresh (another replica)
    or carried over from the empty itinerary (this one)."""
    mentor = _rotl_without_sessions()
    assert mentor.itinerary.near(at(9), at(10)) == []  # worked out first, as any match does
    booked = with_booking(mentor, [(at(16), at(17))], Tier.LOW, venues=[SafeVenue(CROYDON, ("Croydon",))])
    fresh = replace(booked)  # what another replica (or a reload after a change) works out
    case = young_person()
    expected = ("they have a session in Croydon until 17:00 and need 105 minutes to reach Enfield (the travel "
                "time between venues)")
    assert _travel_refusal(case, fresh, Rooms(), at(18, 30)) == expected
    assert _travel_refusal(case, booked, Rooms(), at(18, 30)) == expected
