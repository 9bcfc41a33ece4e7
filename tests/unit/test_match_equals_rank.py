"""The fast online match makes exactly the choice the full ranking would (`rank(...)[0]`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.matching import Match, MentorIndex, match, rank, with_booking
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
