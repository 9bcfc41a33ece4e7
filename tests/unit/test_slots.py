"""Session-time arithmetic: notice, half-hour starts, windows, busy intervals, licence return, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.scheduling.slots import LONDON, Calendar, Interval, earliest_start, half_hours, local_start
from shared.contracts.codes import Weekday
from shared.contracts.common import WeeklyWindow

HOUR = timedelta(hours=1)


def at(day: int, hh: int, mm: int = 0, *, month: int = 3) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=LONDON)


def window(day: Weekday, start: str, end: str) -> WeeklyWindow:
    return WeeklyWindow(day=day, start=start, end=end)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2, 9), at(2, 11)),
        (at(2, 9).replace(second=1), at(2, 11, 30)),
        (at(2, 9, 10), at(2, 11, 30)),
        (at(2, 9, 30), at(2, 11, 30)),
        (at(2, 9, 59).replace(second=59, microsecond=500_000), at(2, 12)),
        (at(1, 9, 15, month=6), at(1, 11, 30, month=6)),  # summer time
        (at(2, 9).astimezone(UTC), at(2, 11)),  # any zone in, same instant out
    ],
)
def test_earliest_start_rounds_up_to_half_hour_plus_two_hours(now: datetime, expected: datetime) -> None:
    assert earliest_start(now) == expected


def test_earliest_start_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        earliest_start(datetime(2026, 3, 2, 9, 0))


@pytest.mark.parametrize(
    ("day", "wall", "expected_utc"),
    [
        (date(2026, 3, 29), time(0, 30), datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),
        (date(2026, 3, 29), time(1, 0), None),  # clocks jump 01:00 GMT -> 02:00 BST
        (date(2026, 3, 29), time(1, 30), None),
        (date(2026, 3, 29), time(2, 0), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (date(2026, 10, 25), time(1, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # first of the two 01:30s
        (date(2026, 10, 25), time(2, 0), datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    ],
)
def test_local_start_skips_times_that_do_not_exist(day: date, wall: time, expected_utc: datetime | None) -> None:
    assert local_start(day, wall) == expected_utc


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ([window("mon", "14:15", "16:00")], [time(14, 30), time(15, 0), time(15, 30)]),
        ([window("mon", "14:00", "15:00"), window("mon", "14:30", "15:30")], [time(14, 0), time(14, 30), time(15, 0)]),
        ([window("tue", "14:00", "16:00")], []),
    ],
)
def test_half_hour_candidates_on_a_monday(windows: list[WeeklyWindow], expected: list[time]) -> None:
    assert half_hours(windows, date(2026, 3, 2)) == expected


MONDAY_AFTERNOON = [window("mon", "14:00", "17:00")]


@pytest.mark.parametrize(
    ("label", "calendar", "start", "fits"),
    [
        ("window start", Calendar(MONDAY_AFTERNOON, []), at(2, 14), True),
        ("ends at window end", Calendar(MONDAY_AFTERNOON, []), at(2, 16), True),
        ("runs past window end", Calendar(MONDAY_AFTERNOON, []), at(2, 16, 30), False),
        ("before window", Calendar(MONDAY_AFTERNOON, []), at(2, 13, 30), False),
        ("other weekday", Calendar(MONDAY_AFTERNOON, []), at(3, 14), False),
        ("young person later", Calendar(MONDAY_AFTERNOON, [window("mon", "15:00", "18:00")]), at(2, 14), False),
        ("both free", Calendar(MONDAY_AFTERNOON, [window("mon", "15:00", "18:00")]), at(2, 15), True),
        ("busy just before", Calendar(MONDAY_AFTERNOON, [], busy=[(at(2, 13), at(2, 14))]), at(2, 14), True),
        ("busy just after", Calendar(MONDAY_AFTERNOON, [], busy=[(at(2, 15), at(2, 16))]), at(2, 14), True),
        ("busy overlaps end", Calendar(MONDAY_AFTERNOON, [], busy=[(at(2, 14, 30), at(2, 15, 30))]), at(2, 14), False),
        ("busy overlaps start", Calendar(MONDAY_AFTERNOON, [], busy=[(at(2, 13, 30), at(2, 14, 1))]), at(2, 14), False),
        ("busy inside", Calendar(MONDAY_AFTERNOON, [], busy=[(at(2, 14, 10), at(2, 14, 20))]), at(2, 14), False),
        ("return: end+60 == return_by", Calendar(MONDAY_AFTERNOON, [], return_by=time(16, 0)), at(2, 14), True),
        ("return: one minute late", Calendar(MONDAY_AFTERNOON, [], return_by=time(15, 59)), at(2, 14), False),
        ("return: later start", Calendar(MONDAY_AFTERNOON, [], return_by=time(16, 0)), at(2, 14, 30), False),
    ],
)
def test_calendar_fits(label: str, calendar: Calendar, start: datetime, fits: bool) -> None:
    assert calendar.fits(start) is fits, label


def test_return_by_is_on_the_same_day() -> None:
    late_evening = Calendar([window("mon", "21:00", "23:30")], [], return_by=time(23, 30))
    assert late_evening.fits(at(2, 21, 30))
    assert not late_evening.fits(at(2, 22, 0))  # back at 00:00 the next day


def test_spring_forward_night_skips_missing_hour_and_keeps_sessions_one_hour_long() -> None:
    night = Calendar([window("sun", "00:00", "04:00")], [])
    starts = night.starts_on(date(2026, 3, 29))
    assert [s.astimezone(LONDON).time() for s in starts] == [time(0), time(0, 30), time(2), time(2, 30), time(3)]
    assert all(s.tzinfo is UTC for s in starts)


def test_spring_forward_session_across_the_jump_must_end_inside_the_window() -> None:
    # 00:30 GMT + 60 minutes = 02:30 BST, which is after a 02:00 window end on the wall clock.
    assert not Calendar([window("sun", "00:00", "02:00")], []).fits(at(29, 0, 30))
    assert Calendar([window("sun", "00:00", "02:30")], []).fits(at(29, 0, 30))


def test_first_fit_respects_bounds() -> None:
    calendar = Calendar(MONDAY_AFTERNOON, [])
    assert calendar.first_fit(not_before=at(2, 14, 30), not_after=at(30, 0)) == at(2, 14, 30)
    assert calendar.first_fit(not_before=at(2, 16, 30), not_after=at(9, 14)) == at(9, 14)
    assert calendar.first_fit(not_before=at(2, 16, 30), not_after=at(9, 13, 59)) is None


def test_booked_marks_the_hour_busy_without_touching_the_original() -> None:
    calendar = Calendar(MONDAY_AFTERNOON, [])
    booked = calendar.booked(at(2, 14))
    busy: list[Interval] = [(at(2, 14), at(2, 14) + HOUR)]
    assert list(booked.busy) == busy
    assert not booked.fits(at(2, 14, 30))
    assert calendar.busy == ()


def test_local_start_tells_the_two_half_past_ones_apart_when_the_clocks_go_back() -> None:
    """local_start is cached: a time equal but for its fold (equal, and hashed alike) still gets its own instant."""
    day, earlier, later = date(2026, 10, 25), datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30,
                                                                                                 tzinfo=UTC)
    assert local_start(day, time(1, 30)) == earlier
    assert local_start(day, time(1, 30, fold=1)) == later
    assert local_start(day, time(1, 30, fold=1)) == later  # asked again: from the cache
    assert local_start(day, time(1, 30)) == earlier
