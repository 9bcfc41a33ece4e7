"""The fast online match makes exactly the choice the full ranking would (`rank(...)[0]`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.constraints import venues_for
from services.scheduling.matching import (
    HORIZON_DAYS,
    LONDON,
    Case,
    Match,
    MentorIndex,
    MentorState,
    Option,
    _programme,
    _routine,
    calendar,
    match,
    rank,
    with_booking,
)
from services.scheduling.rooms import Rooms
from services.scheduling.slots import earliest_start, leave_interval
from shared.contracts.codes import WEEKDAYS, Tier
from tests.support.matching import NOW, case, cases, mentor, mentors, window

MONDAYS_AND_THURSDAYS = [window("mon", "09:00", "17:00"), window("thu", "09:00", "17:00")]


def test_a_follow_up_pushed_onto_the_next_target_day_costs_that_target_its_routine() -> None:
    """Very high: the follow-up due a week after the first session is looked for on days 7-10, and day 10 is the
    next target. With windows only on Mondays and Thursdays, m1's leave on Monday 9 March pushes it to Thursday 12th
    at the routine's time, so the target that day misses the routine; m2's leave on Thursday 5th misses one target
    only. `rank` puts m2 first (9.625 against 9.25), and the match must too, through the list and the index."""
    on_leave = [mentor(mentor_id, availability=MONDAYS_AND_THURSDAYS, busy=(leave_interval(day, day),))
                for mentor_id, day in (("m1", date(2026, 3, 9)), ("m2", date(2026, 3, 5)))]
    very_high = case(tier=Tier.VERY_HIGH)
    options = rank(very_high, on_leave, now=NOW)
    assert [(option.mentor_id, option.total) for option in options] == [("m2", 9.625), ("m1", 9.25)]
    for pool in (on_leave, MentorIndex(on_leave)):
        result = match(very_high, pool, now=NOW)
        assert isinstance(result, Match)
        assert (result.mentor_id, result.sessions[0]) == ("m2", options[0].first)


@st.composite
def sparse_mentors(draw: st.DrawFn, mentor_id: str) -> MentorState:
    """Mentors free on a few weekdays only, with days of leave and runs of busy days: where a follow-up the
    cadence wants is pushed days on, onto the next target day."""
    first_day = draw(st.integers(0, 6))  # two days 3 apart (Monday and Thursday, say), or days drawn at random
    days = draw(st.just([WEEKDAYS[first_day], WEEKDAYS[(first_day + 3) % 7]])
                | st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True))
    start = draw(st.sampled_from(["09:00", "10:00", "14:00"]))
    end = draw(st.sampled_from(["12:00", "17:00"])) if start < "12:00" else "17:00"
    busy = []
    for _ in range(draw(st.integers(0, 3))):
        first = NOW.date() + timedelta(days=draw(st.integers(0, 20)))
        busy.append(leave_interval(first, first + timedelta(days=draw(st.integers(0, 3)))))  # leave, or busy days
    return mentor(mentor_id, availability=[window(day, start, end) for day in days], busy=tuple(busy),
                  max_caseload=4, caseload=draw(st.integers(0, 4)))


@st.composite
def pools(draw: st.DrawFn) -> list[MentorState]:
    size = draw(st.integers(1, 6))
    return [draw(sparse_mentors(f"m{i}") | mentors(f"m{i}")) for i in range(size)]


@st.composite
def some_cases(draw: st.DrawFn, referral_id: str) -> Case:
    """A case of any tier, or very high (twice a week: the cadence whose follow-ups can land on the next target
    day) and free whenever the mentor is."""
    very_high = cases(referral_id).map(lambda drawn: replace(drawn, tier=Tier.VERY_HIGH, availability=[]))
    return draw(very_high | cases(referral_id))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_match_picks_the_top_ranked_option(data: st.DataObject) -> None:
    pool = data.draw(pools())
    for n in range(data.draw(st.integers(1, 6))):
        case = data.draw(some_cases(f"r{n}"))
        options = rank(case, pool, now=NOW)
        result = match(case, pool, now=NOW)
        if not options:
            assert not isinstance(result, Match)
            continue
        assert isinstance(result, Match)
        assert result.mentor_id == options[0].mentor_id
        assert result.sessions[0] == options[0].first
        assert result.deadline_met == options[0].deadline_met
        index = next(i for i, m in enumerate(pool) if m.record.id == result.mentor_id)
        pool[index] = _booked(case, pool[index], result.sessions)


def _booked(case: Case, mentor: MentorState, sessions: list[tuple[datetime, datetime]]) -> MentorState:
    """The mentor with the sessions held where the service would hold them (rooms aside): the next cases see the
    travel time between venues, as the service's do."""
    placed = Rooms().place(venues_for(case, mentor), sessions, mentor.itinerary)
    return with_booking(mentor, [interval for interval, _ in placed], case.tier, venues=[v for _, v in placed])


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_borough_index_and_kept_free_starts_change_nothing(data: st.DataObject) -> None:
    """The service's fast path (a `MentorIndex`, and free starts kept from booking to booking) makes the same
    choice, with the same waitlist reasons, as every mentor looked at afresh."""
    pool = data.draw(pools())
    index = MentorIndex(pool)
    for n in range(data.draw(st.integers(1, 8))):
        case = data.draw(some_cases(f"r{n}"))
        fast = match(case, index, now=NOW)
        assert fast == match(case, pool, now=NOW)
        if isinstance(fast, Match):
            booked = _booked(case, index[fast.mentor_id], fast.sessions)
            for day, kept in booked.day_slots.items():  # what was kept is what working the day out again gives
                assert kept == tuple(booked.own_calendar.mentor_side(day))
            index[fast.mentor_id] = booked
            position = next(i for i, m in enumerate(pool) if m.record.id == fast.mentor_id)
            pool[position] = replace(booked)  # the same mentor with nothing worked out yet


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_routine_is_known_without_booking_the_follow_ups(data: st.DataObject) -> None:
    """The match scores a mentor's routine from whether each target day's time fits (`_routine`); booking the
    follow-ups (`_programme`, which the ranking uses) gives the same share, from any first start."""
    mentor, case = data.draw(sparse_mentors("m1") | mentors("m1")), data.draw(some_cases("r1"))
    rooms = data.draw(st.none() | st.just(Rooms()))
    cal = calendar(case, mentor, rooms)
    earliest = earliest_start(NOW)
    starts = [s for day in range(HORIZON_DAYS) for s in cal.starts_on((earliest + timedelta(days=day)).date())]
    for first in data.draw(st.lists(st.sampled_from(starts), max_size=3)) if starts else []:
        local = first.astimezone(LONDON)
        held = (venues_for(case, mentor), mentor.itinerary, rooms)
        assert _routine(case, cal, local, held=held) == _programme(case, mentor, local, rooms)[1]


def test_the_ranking_adds_the_routine_after_the_rest_as_the_match_does() -> None:
    """`match` orders mentors by their score before the routine plus the routine; `Option.total` must be that same
    float on every Python (from 3.12 `sum` of floats is compensated: summing 0.1, 0.2 and 0.3 in one go gives 0.6,
    adding 0.3 to the sum of the others 0.6000000000000001)."""
    option = Option("m1", (NOW, NOW + timedelta(hours=1)), True, {"a": 0.1, "b": 0.2, "same_weekly_slot": 0.3})
    assert option.total == sum((0.1, 0.2)) + 0.3
