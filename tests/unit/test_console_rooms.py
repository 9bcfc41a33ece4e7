"""A borough's week page counts each venue's rooms taken at the busiest time of each day (`pages.calendar.busiest`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.console.pages.calendar import busiest

DAY = datetime(2026, 12, 8, tzinfo=UTC)


def _at(hour: float, minutes: int = 60) -> tuple[datetime, datetime]:
    start = DAY + timedelta(hours=hour)
    return start, start + timedelta(minutes=minutes)


@pytest.mark.parametrize(("sessions", "expected"), [
    ([], (0, None)),
    ([_at(10)], (1, DAY + timedelta(hours=10))),
    ([_at(10), _at(11), _at(12)], (1, DAY + timedelta(hours=10))),  # back to back: one room all day
    ([_at(10), _at(10.5), _at(15), _at(15), _at(15.5)], (3, DAY + timedelta(hours=15.5))),
    ([_at(9, 180), _at(10), _at(11)], (2, DAY + timedelta(hours=10))),  # a long one overlaps both
])
def test_the_busiest_time_is_the_most_sessions_held_at_once(
        sessions: list[tuple[datetime, datetime]], expected: tuple[int, datetime | None]) -> None:
    assert busiest(sessions) == expected
