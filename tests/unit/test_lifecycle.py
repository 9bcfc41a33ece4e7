"""Session lifecycle steps, disengagement after three misses, and cadence step-down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.scheduling.lifecycle import LifecycleRefused, after_misses, cadence_after, transition
from shared.contracts.codes import Tier

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PAST, FUTURE = NOW - timedelta(hours=1), NOW + timedelta(days=1)
LOW, MEDIUM, HIGH, VERY_HIGH = Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.VERY_HIGH


@pytest.mark.parametrize(
    ("status", "action", "start", "expected"),
    [
        ("booked", "confirm", FUTURE, "confirmed"),
        ("booked", "cancel", FUTURE, "cancelled"),
        ("confirmed", "cancel", FUTURE, "cancelled"),
        ("suspended", "cancel", FUTURE, "cancelled"),
        ("booked", "attended", PAST, "attended"),
        ("confirmed", "missed", PAST, "missed"),
    ],
)
def test_allowed_steps(status: str, action: str, start: datetime, expected: str) -> None:
    assert transition(status, action, start=start, now=NOW) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "action", "start", "message"),
    [
        ("cancelled", "confirm", FUTURE, "a cancelled session cannot be marked confirmed"),
        ("attended", "cancel", PAST, "an attended session cannot be marked cancelled"),
        ("booked", "attended", FUTURE, "record attendance once it has started"),
        ("booked", "missed", FUTURE, "record attendance once it has started"),
        ("booked", "confirm", PAST, "already started"),
        ("missed", "attended", PAST, "cannot be marked attended"),
    ],
)
def test_refused_steps(status: str, action: str, start: datetime, message: str) -> None:
    with pytest.raises(LifecycleRefused, match=message):
        transition(status, action, start=start, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcomes", "wellbeing", "expected"),
    [
        (["missed", "missed"], HIGH, None),
        (["missed", "missed", "missed"], HIGH, "escalate"),
        (["missed", "missed", "missed"], VERY_HIGH, "escalate"),
        (["missed", "missed", "missed"], MEDIUM, "close"),
        (["missed", "missed", "missed"], None, "close"),
        (["missed", "attended", "missed", "missed"], HIGH, None),
        (["attended", "missed", "missed", "missed"], HIGH, "escalate"),
    ],
)
def test_three_misses_in_a_row(outcomes: list[str], wellbeing: Tier | None, expected: str | None) -> None:
    assert after_misses(outcomes, wellbeing) == expected


@pytest.mark.parametrize(
    ("cadence", "assessed", "lower", "expected"),
    [
        (MEDIUM, HIGH, 0, (HIGH, 0)),
        (MEDIUM, VERY_HIGH, 1, (VERY_HIGH, 0)),
        (HIGH, HIGH, 1, (HIGH, 0)),
        (HIGH, MEDIUM, 0, (HIGH, 1)),
        (HIGH, MEDIUM, 1, (MEDIUM, 0)),
        (VERY_HIGH, LOW, 1, (HIGH, 0)),
        (LOW, LOW, 0, (LOW, 0)),
    ],
)
def test_cadence_rises_at_once_and_steps_down_after_two_lower_reviews(
    cadence: Tier, assessed: Tier, lower: int, expected: tuple[Tier, int]
) -> None:
    assert cadence_after(cadence, assessed, lower) == expected
