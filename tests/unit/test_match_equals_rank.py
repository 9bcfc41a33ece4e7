"""The fast online match makes exactly the choice the full ranking would (`rank(...)[0]`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.matching import (
    HORIZON_DAYS,
    LONDON,
    Match,
    MentorIndex,
    _programme,
    _routine,
    calendar,
    match,
    rank,
    with_booking,
)
from services.scheduling.rooms import Rooms
from services.scheduling.slots import earliest_start
from tests.support.matching import NOW, cases, mentors


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_match_picks_the_top_ranked_option(data: st.DataObject) -> None:
    pool = [data.draw(mentors(f"m{i}")) for i in range(data.draw(st.integers(1, 6)))]
    for n in range(data.draw(st.integers(1, 6))):
        case = data.draw(cases(f"r{n}"))
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
        pool[index] = with_booking(pool[index], result.sessions, case.tier)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_borough_index_and_kept_free_starts_change_nothing(data: st.DataObject) -> None:
    """The service's fast path (a `MentorIndex`, and free starts kept from booking to booking) makes the same
    choice, with the same waitlist reasons, as every mentor looked at afresh."""
    pool = [data.draw(mentors(f"m{i}")) for i in range(data.draw(st.integers(1, 6)))]
    index = MentorIndex(pool)
    for n in range(data.draw(st.integers(1, 8))):
        case = data.draw(cases(f"r{n}"))
        fast = match(case, index, now=NOW)
        assert fast == match(case, pool, now=NOW)
        if isinstance(fast, Match):
            booked = with_booking(index[fast.mentor_id], fast.sessions, case.tier)
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
    mentor, case = data.draw(mentors("m1")), data.draw(cases("r1"))
    rooms = data.draw(st.none() | st.just(Rooms()))
    cal = calendar(case, mentor, rooms)
    earliest = earliest_start(NOW)
    starts = [s for day in range(HORIZON_DAYS) for s in cal.starts_on((earliest + timedelta(days=day)).date())]
    for first in data.draw(st.lists(st.sampled_from(starts), max_size=3)) if starts else []:
        local = first.astimezone(LONDON)
        assert _routine(case, cal, local) == _programme(case, mentor, local, rooms)[1]
