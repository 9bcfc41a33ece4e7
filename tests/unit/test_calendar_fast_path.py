"""The calendar's fast path (the mentor's side worked out once per mentor and shared by every case) finds
exactly the starts that the full check allows (the same calendar without the shared side), in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.matching import calendar
from services.scheduling.rooms import Rooms
from services.scheduling.slots import LONDON, STEP, earliest_start
from tests.support.matching import NOW, cases, mentors


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
