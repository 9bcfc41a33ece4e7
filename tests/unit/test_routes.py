"""Routes to venues: the London map, planning round unsafe boroughs, and the venues a case may use."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest

from services.scheduling.constraints import Case, MentorState, SafeVenue, first_exclusion, mentor_problems, venues_for
from services.scheduling.matching import LONDON
from services.scheduling.routes import NEIGHBOURS, plan_route
from shared.contracts.codes import LONDON_BOROUGHS, Tier
from shared.contracts.scheduling import MentorRecord, VenueRecord
from tests.support.schedules import evaluate, route_problem

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)


def case(**changes: Any) -> Case:
    fields: dict[str, Any] = {
        "referral_id": "r1", "tier": Tier.LOW, "borough": "Hackney", "languages": ["en"], "mentor_gender": "any",
        "preferred_language": None, "availability": [], "unsafe_areas": [], "accepted_at": NOW, **changes}
    return Case(**fields)


def mentor(venues: list[VenueRecord] | None = None, **changes: Any) -> MentorState:
    record = MentorRecord.model_validate({
        "id": "m1", "name": "M One", "kind": "staff", "boroughs": ["Hackney"], "languages": ["en"],
        "gender": "female", "max_caseload": 3, **changes})
    return MentorState(record=record, caseload=0, busy=[], venues=tuple(venues) if venues is not None else None)


def venue(venue_id: str, borough: str, **changes: Any) -> VenueRecord:
    return VenueRecord.model_validate({"id": venue_id, "name": f"{venue_id} centre", "borough": borough, **changes})


# --- the map ---------------------------------------------------------------------------------------------------


def test_the_map_covers_every_borough_and_every_border_goes_both_ways() -> None:
    assert set(NEIGHBOURS) == set(LONDON_BOROUGHS)
    for borough, neighbours in NEIGHBOURS.items():
        assert neighbours, borough
        assert borough not in neighbours
        for other in neighbours:
            assert borough in NEIGHBOURS[other], (borough, other)


def test_every_borough_can_reach_every_other() -> None:
    seen, todo = {"Hackney"}, deque(["Hackney"])
    while todo:
        for there in NEIGHBOURS[todo.popleft()]:
            if there not in seen:
                seen.add(there)
                todo.append(there)
    assert seen == set(LONDON_BOROUGHS)


@pytest.mark.parametrize(("a", "b"), [("Westminster", "Lambeth"), ("City of London", "Southwark"),
                                      ("Tower Hamlets", "Greenwich"), ("Hammersmith and Fulham", "Wandsworth")])
def test_thames_crossings_join_the_banks(a: str, b: str) -> None:
    assert b in NEIGHBOURS[a]


# --- planning --------------------------------------------------------------------------------------------------


def test_a_route_is_the_fewest_boroughs_and_the_same_every_time() -> None:
    assert plan_route("Hackney", "Hackney", frozenset()) == ("Hackney",)
    assert plan_route("Hackney", "Islington", frozenset()) == ("Hackney", "Islington")
    assert plan_route("hackney", "SOUTHWARK", frozenset()) == ("Hackney", "City of London", "Southwark")


def test_a_route_goes_round_an_unsafe_borough() -> None:
    route = plan_route("Hackney", "Southwark", frozenset({"City of London"}))
    assert route == ("Hackney", "Tower Hamlets", "Southwark")
    around = plan_route("Hackney", "Southwark", frozenset({"City of London", "Tower Hamlets"}))
    assert around is not None and len(around) > 3
    assert {"City of London", "Tower Hamlets"}.isdisjoint(around)
    assert all(b in NEIGHBOURS[a] for a, b in pairwise(around))


def test_no_route_when_every_way_out_is_unsafe_or_the_venue_is_in_an_unsafe_borough() -> None:
    assert plan_route("Bexley", "Lambeth", frozenset({"Bromley", "Greenwich"})) is None
    assert plan_route("Hackney", "Southwark", frozenset({"Southwark"})) is None


def test_setting_out_from_an_unsafe_borough_is_allowed() -> None:
    assert plan_route("Hackney", "Islington", frozenset({"Hackney"})) == ("Hackney", "Islington")


def test_a_place_that_is_not_a_london_borough_has_no_route() -> None:
    assert plan_route("Atlantis", "Hackney", frozenset()) is None


# --- venues a case may use -------------------------------------------------------------------------------------


def test_the_young_persons_route_avoids_their_unsafe_boroughs() -> None:
    far = venue("far", "Southwark")
    (fit,) = venues_for(case(unsafe_areas=["City of London"]), mentor([far]))
    assert fit.venue == far and fit.route == ("Hackney", "Tower Hamlets", "Southwark")
    assert fit.mentor_route is None  # only rotl mentors' routes carry licence conditions


def test_a_venue_with_no_safe_route_rules_the_mentor_out_and_says_so() -> None:
    cut_off = case(unsafe_areas=list(NEIGHBOURS["Hackney"]))
    assert venues_for(cut_off, mentor([venue("far", "Southwark")])) == ()
    excluded = first_exclusion(cut_off, mentor([venue("far", "Southwark")]))
    assert excluded is not None and excluded.rule == "venue" and "route" in excluded.reason
    home = venue("home", "Hackney")
    assert [f.venue for f in venues_for(cut_off, mentor([venue("far", "Southwark"), home]))] == [home]


def test_a_venue_in_an_unsafe_area_smaller_than_a_borough_is_never_used() -> None:
    peckham, walworth = venue("pk", "Southwark", area="Peckham"), venue("wa", "Southwark", area="Walworth")
    fits = venues_for(case(borough="Southwark", unsafe_areas=["peckham"]), mentor([peckham, walworth],
                                                                                boroughs=["Southwark"]))
    assert [f.venue for f in fits] == [walworth]


def test_the_nearest_safe_venue_comes_first() -> None:
    near, nearer = venue("near", "Islington"), venue("nearer", "Hackney")
    assert [f.venue.id for f in venues_for(case(), mentor([near, nearer]))] == ["nearer", "near"]


def test_mentors_with_the_same_venues_share_their_safe_venues_and_a_changed_venue_gets_its_own() -> None:
    hub = venue("hub", "Hackney")
    first, second = venues_for(case(), mentor([hub])), venues_for(case(), mentor([hub], id="m2"))
    assert first == second and first[0] is second[0]  # one object in every mentor's cache (memory)
    (moved,) = venues_for(case(), mentor([hub.model_copy(update={"borough": "Islington"})]))
    assert moved.venue.borough == "Islington" and moved.route == ("Hackney", "Islington")


def rotl(zones: list[str], establishment: str | None, **licence: Any) -> dict[str, Any]:
    return {"kind": "rotl", "licence": {"return_by": "19:00", "exclusion_zones": zones,
                                        "establishment_borough": establishment, **licence}}


def test_a_rotl_mentors_route_from_the_establishment_avoids_their_exclusion_zones() -> None:
    city = venue("city", "City of London")
    (fit,) = venues_for(case(), mentor([city], **rotl(["Southwark"], "Lambeth")))
    assert fit.mentor_route == ("Lambeth", "Westminster", "City of London")
    assert fit.route == ("Hackney", "City of London")


def test_a_rotl_mentor_with_no_way_round_their_exclusion_zones_is_ruled_out() -> None:
    boxed_in = mentor([venue("city", "City of London")], **rotl(["Bromley", "Greenwich"], "Bexley"))
    excluded = first_exclusion(case(), boxed_in)
    assert excluded is not None and excluded.rule == "venue" and "exclusion zones" in excluded.reason


def test_without_an_establishment_a_rotl_route_starts_in_the_mentors_first_borough() -> None:
    (fit,) = venues_for(case(), mentor([venue("isl", "Islington")], **rotl([], None)))
    assert fit.mentor_route == ("Hackney", "Islington")


def test_boroughs_in_mentor_and_venue_records_must_be_london_boroughs() -> None:
    with pytest.raises(ValueError, match="'Hackny' is not a London borough"):
        venue("x", "Hackny")
    with pytest.raises(ValueError, match="'Gotham' is not a London borough"):
        mentor(boroughs=["Hackney", "Gotham"])
    with pytest.raises(ValueError, match="'Slough' is not a London borough"):
        mentor(**rotl([], "Slough"))
    assert mentor(boroughs=["tower  hamlets"]).record.boroughs == ["Tower Hamlets"]


# --- the evaluator's route check (the independent judge the property tests rely on) ----------------------------


@pytest.mark.parametrize(("route", "problem"), [
    (("Hackney", "Tower Hamlets", "Southwark"), None),
    (("Hackney", "City of London", "Southwark"), "enters City of London"),
    (("Hackney", "Southwark"), "jumps"),
    (("Islington", "City of London", "Southwark"), "runs Islington to Southwark"),
    ((), "no route"),
])
def test_the_evaluator_refuses_a_route_that_is_not_a_safe_journey(route: tuple[str, ...], problem: str | None) -> None:
    found = route_problem(route, "Hackney", "Southwark", {"city of london"})
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_evaluator_flags_a_bad_route_and_a_room_held_twice() -> None:
    room = venue("one-room", "Southwark", rooms=1)
    week = [{"day": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")]
    mentors = [mentor([room], id=f"m{n}", boroughs=["Hackney", "Southwark"], availability=week) for n in (1, 2)]
    cases = [case(referral_id="r1", unsafe_areas=["City of London"]), case(referral_id="r2")]
    start = datetime(2026, 3, 3, 10, 0, tzinfo=LONDON)
    slot = [(start, start.replace(hour=11))]
    bookings = {"r1": ("m1", slot), "r2": ("m2", slot)}
    good = SafeVenue(room, ("Hackney", "Tower Hamlets", "Southwark"))
    through_city = SafeVenue(room, ("Hackney", "City of London", "Southwark"))
    report = evaluate(cases, mentors, bookings, now=NOW, visits={"r1": [through_city], "r2": [good]})
    assert {(v.referral_id, v.rule) for v in report.violations} >= {("r1", "route"), ("r2", "room_double_booked")}
    alone = evaluate(cases[:1], mentors, {"r1": ("m1", slot)}, now=NOW, visits={"r1": [good]})
    assert alone.violations == []


def test_a_rotl_licence_with_zones_but_no_establishment_is_listed_as_a_problem() -> None:
    today = NOW.date()
    unknown = mentor(boroughs=["Lambeth"], **rotl(["Southwark"], None)).record
    assert "no establishment_borough: routes round the exclusion zones are planned from Lambeth" in mentor_problems(
        unknown, today)
    known = mentor(**rotl(["Southwark"], "Lambeth")).record
    assert not any("establishment" in p for p in mentor_problems(known, today))
