"""What the match works out once and shares (per case, per pattern of windows and licence, per record) is what
each calendar or state would work out for itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from functools import cached_property

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.constraints import OF_RECORD, MentorState
from services.scheduling.matching import _may_fit, _ranked, _score_values, _wanted, calendar, with_booking
from services.scheduling.slots import LONDON, STEP, clocks_change, earliest_start
from shared.contracts.codes import WEEKDAYS
from shared.contracts.scheduling import Licence
from tests.support.matching import NOW, case, cases, mentor, mentors, window


@st.composite
def licensed_mentors(draw: st.DrawFn, mentor_id: str) -> MentorState:
    """`mentors()`, and rotl mentors whose licence also limits the days, the window's start, its dates and travel."""
    state = draw(mentors(mentor_id))
    first = NOW.date()
    licence = Licence(
        return_by=draw(st.sampled_from(["13:00", "18:30", "22:00"])),
        days=draw(st.none() | st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=4, unique=True)),
        window_start=draw(st.none() | st.sampled_from(["09:30", "11:00", "15:00"])),
        valid_from=draw(st.none() | st.just(first + timedelta(days=draw(st.integers(0, 10))))),
        valid_to=draw(st.none() | st.just(first + timedelta(days=draw(st.integers(5, 25))))),
        travel_minutes=draw(st.sampled_from([0, 30, 45])),
    )
    record = state.record.model_copy(update={"kind": "rotl", "licence": licence})
    return draw(st.just(state) | st.just(replace(state, record=record)))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_calendar_given_the_case_s_windows_worked_out_is_the_one_that_works_them_out(data: st.DataObject) -> None:
    """`calendar` hands each calendar the case's spans and masks (`Case.window_spans`, `Case.start_masks`) and its
    mentor's side of a day comes from a table shared by mentors (`slots._free_starts`): the same starts as a
    calendar made afresh (`dataclasses.replace` works everything out again) over 28 days."""
    the_mentor, the_case = data.draw(licensed_mentors("m1")), data.draw(cases("r1"))
    the_case = replace(the_case, staffed_only=data.draw(st.booleans()))
    shared = calendar(the_case, the_mentor)
    fresh = replace(shared, mentor_slots=None, shared_busy=0)
    assert shared._case_masks == fresh._case_masks and shared._young_spans == fresh._young_spans
    first = earliest_start(NOW).astimezone(LONDON).date()
    own = the_mentor.own_calendar  # no mentor_slots: its `fits` checks every rule per start, without the table
    for day in (first + timedelta(days=n) for n in range(29)):
        assert shared.starts_on(day) == fresh.starts_on(day)
        midnight = datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)
        grid = [midnight + STEP * i for i in range(50)]  # 50: a day the clocks go back is 25 hours long
        on_day = [start for start in grid if start.astimezone(LONDON).date() == day and own.fits(start)]
        assert [slot[0] for slot in own.mentor_side(day)] == on_day


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_state_after_a_booking_keeps_only_what_its_record_and_venues_decide(data: st.DataObject) -> None:
    """`with_booking` takes over what the state worked out from its record and venues (`OF_RECORD`), which equals
    what the new state would work out itself."""
    before = data.draw(mentors("m1"))
    for name in OF_RECORD:
        getattr(before, name)  # worked out, so that the new state takes it over
    start = NOW + timedelta(days=data.draw(st.integers(1, 20)), hours=data.draw(st.integers(0, 12)))
    after = with_booking(before, [(start, start + timedelta(hours=1))])
    afresh = replace(after)
    for name in OF_RECORD:
        assert after.__dict__[name] == getattr(afresh, name), name


def test_what_a_booking_keeps_names_cached_properties_of_the_state() -> None:
    cached = {name for name, value in vars(MentorState).items() if isinstance(value, cached_property)}
    assert set(OF_RECORD) <= cached
    assert {"own_calendar", "itinerary", "busy_utc"}.isdisjoint(OF_RECORD)  # these follow the bookings


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_ranking_keeps_exactly_the_mentors_that_may_fit_scored_and_in_order(data: st.DataObject) -> None:
    pool = [data.draw(mentors(f"m{i}")) for i in range(data.draw(st.integers(0, 8)))]
    the_case = data.draw(cases("r1"))
    earliest = earliest_start(NOW)
    wanted = _wanted(the_case, earliest, earliest + timedelta(hours=data.draw(st.integers(0, 28 * 24))))
    expected = sorted((-sum(_score_values(the_case, m)), m.record.id, m) for m in pool if _may_fit(m, wanted))
    assert [(s, i) for s, i, _ in _ranked(the_case, pool, wanted)] == [(s, i) for s, i, _ in expected]


def test_a_mentor_free_only_when_the_young_person_is_not_is_not_ranked() -> None:
    evenings = mentor("m1", availability=[window("mon", "18:00", "21:00")])
    mornings = case(availability=[window("mon", "09:00", "12:00")])
    earliest = earliest_start(NOW)
    assert _ranked(mornings, [evenings, mentor("m2")], _wanted(mornings, earliest, earliest + timedelta(days=28)))[0][
        1] == "m2"
    assert [m for _, m, _ in _ranked(mornings, [evenings], _wanted(mornings, earliest, earliest + timedelta(days=28)))
            ] == []


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_wanted_starts_hold_every_start_between_the_ends_and_no_more_than_their_days(data: st.DataObject) -> None:
    """`_wanted` (the case's packed masks, a table of the days' weekdays, the first and last days trimmed to the ends'
    times over less than a week) holds every start from `not_before` to `not_after` that the young person's windows
    allow (`Case.start_masks`), and nothing outside the day-by-day union of those days; exactly the former over less
    than a week without a clock change. The ends fall anywhere (the best's first start less a microsecond, say), and
    the range may cross 25 October 2026."""
    the_case = replace(data.draw(cases("r1")), staffed_only=data.draw(st.booleans()))
    not_before = datetime(2026, 10, 10, 12, tzinfo=UTC) + timedelta(minutes=30 * data.draw(st.integers(0, 40 * 48)))
    not_after = not_before + timedelta(minutes=data.draw(st.integers(0, 28 * 24 * 60)),
                                       microseconds=-data.draw(st.integers(0, 1)))
    daywise = changing = 0  # the union of the days' weekdays
    day, last = not_before.astimezone(LONDON).date(), not_after.astimezone(LONDON).date()
    crosses = False
    while day <= last:
        name = WEEKDAYS[day.weekday()]
        if clocks_change(day):
            crosses = True
            changing |= (name in the_case.start_masks) << day.weekday()
        else:
            daywise |= the_case.start_masks.get(name, 0) << 48 * day.weekday()
        day += timedelta(days=1)
    exact = 0  # each start between the ends, on a day without a clock change
    start = not_before
    while start <= not_after:
        local = start.astimezone(LONDON)
        if not clocks_change(local.date()):
            bit = (local.hour * 60 + local.minute) // 30
            exact |= (the_case.start_masks.get(WEEKDAYS[local.weekday()], 0) >> bit & 1) << 48 * local.weekday() + bit
        start += timedelta(minutes=30)
    starts, days = _wanted(the_case, not_before, not_after)
    assert days == changing
    assert starts & ~daywise == 0 and exact & ~starts == 0
    if (last - not_before.astimezone(LONDON).date()).days < 7 and not crosses:
        assert starts == exact
