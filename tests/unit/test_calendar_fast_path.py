"""The calendar's fast path (the mentor's side worked out once per mentor and shared by every case) finds
exactly the starts that the full check allows (the same calendar without the shared side), in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.matching import _may_fit, _wanted, calendar
from services.scheduling.rooms import Rooms
from services.scheduling.slots import LONDON, STEP, clocks_change, earliest_start, minutes, weekday
from tests.support.matching import NOW, case, cases, mentor, mentors, window


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_first_fit_and_starts_on_agree_with_fits_at_every_half_hour(data: st.DataObject) -> None:
    mentor, case = data.draw(mentors("m1")), data.draw(cases("r1"))
    rooms = data.draw(st.none() | st.just(Rooms()))
    cal = calendar(case, mentor, rooms)
    full = replace(cal, mentor_slots=None, shared_busy=0)  # every rule checked here, per start
    earliest = earliest_start(NOW)
    grid = [earliest + STEP * i for i in range(10 * 48)]  # ten days of half hours, across no clock change
    allowed = [start for start in grid if full.fits(start)]
    assert [start for start in grid if cal.fits(start)] == allowed
    assert cal.first_fit(not_before=earliest, not_after=grid[-1]) == (allowed[0] if allowed else None)
    for day in sorted({start.astimezone(LONDON).date() for start in grid})[1:-1]:
        on_day = [s for s in allowed if s.astimezone(LONDON).date() == day]
        assert cal.starts_on(day) == on_day
    if allowed:  # and after a booking, the shared mentor's side still sees it
        booked = cal.booked(allowed[0])
        booked_full = replace(booked, mentor_slots=None, shared_busy=0)
        assert booked.first_fit(not_before=earliest, not_after=grid[-1]) == next(
            (s for s in allowed if s >= allowed[0] + timedelta(hours=1) and booked_full.fits(s)), None)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_mentor_the_weekly_bound_leaves_out_has_no_first_fit(data: st.DataObject) -> None:
    """`_may_fit` (the mentor's weekly windows and licence against the young person's, by weekday) never leaves out
    a mentor who has a first fit in the days looked at, the clocks' change included (NOW + 28 days crosses it); and
    every start of the mentor's side lies within the weekly bound on a day without a clock change."""
    mentor, case = data.draw(mentors("m1")), data.draw(cases("r1"))
    case = replace(case, staffed_only=data.draw(st.booleans()))
    earliest = earliest_start(NOW)
    not_after = earliest + timedelta(hours=data.draw(st.integers(0, 28 * 24)))
    if not _may_fit(mentor, _wanted(case, earliest, not_after)):
        assert calendar(case, mentor).first_fit(not_before=earliest, not_after=not_after) is None
    week = mentor.week_masks
    assert week is not None
    days = [earliest.astimezone(LONDON).date() + timedelta(days=n) for n in range(29)]
    for day in days:
        if not clocks_change(day):
            for slot in mentor.own_calendar.mentor_side(day):
                assert week.get(weekday(day), 0) >> (minutes(slot[2]) // 30) & 1
    # and a calendar that skips what the bound rules out finds what one without it finds
    bounded = calendar(case, mentor)
    unbounded = replace(bounded, week_masks=None)
    assert bounded.first_fit(not_before=earliest, not_after=not_after) == unbounded.first_fit(
        not_before=earliest, not_after=not_after)
    for day in days:
        assert bounded.starts_on(day) == unbounded.starts_on(day)
    grid = [earliest + STEP * i for i in range(29 * 48)]
    assert [start for start in grid if bounded.fits(start)] == [start for start in grid if unbounded.fits(start)]


def test_the_weekly_bound_does_not_rule_out_a_start_on_the_night_the_clocks_go_back() -> None:
    """On 25 October 2026 the session from 01:00 BST ends at 01:00 GMT, inside a 01:00-01:30 window, which on any
    other Sunday holds no hour-long session: the bound is not applied on a day the clocks change."""
    sunday = date(2026, 10, 25)
    the_mentor = mentor(availability=[window("sun", "01:00", "01:30")])
    assert the_mentor.week_masks == {"sun": 0}
    cal = calendar(case(), the_mentor)
    assert cal.starts_on(sunday) == [datetime(2026, 10, 25, 0, 0, tzinfo=UTC)]
    assert cal.starts_on(sunday + timedelta(days=7)) == []
    saturday_noon = datetime(2026, 10, 24, 12, tzinfo=UTC)
    assert _may_fit(the_mentor, _wanted(case(), saturday_noon, saturday_noon + timedelta(days=2)))
    assert not _may_fit(the_mentor, _wanted(case(), saturday_noon + timedelta(days=7), saturday_noon + timedelta(days=9)))


def test_the_weekly_bound_shared_by_mentors_with_the_same_windows_cannot_be_changed_through_one_of_them() -> None:
    first, second = mentor("m1"), mentor("m2")
    assert first.week_masks is second.week_masks  # worked out once for the pattern
    with pytest.raises(TypeError):
        first.week_masks["mon"] = 0  # type: ignore[index]
    assert second.week_masks is not None and second.week_masks["mon"]


def test_a_mentor_whose_weekly_bound_was_worked_out_still_pickles_and_copies() -> None:
    """The round's planning process receives its mentors pickled; a state that has been matched must still go."""
    import copy
    import pickle

    matched = mentor("m1")
    assert matched.week_masks is not None  # worked out and cached on the state
    again = pickle.loads(pickle.dumps(matched))
    assert dict(again.week_masks or {}) == dict(matched.week_masks)
    assert dict(copy.deepcopy(matched).week_masks or {}) == dict(matched.week_masks)
