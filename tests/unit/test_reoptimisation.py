"""The re-optimisation round's rule for moving a young person who has sessions: never to fewer, nor to fewer on the
tier's cadence (the round itself is tested end to end, in tests/e2e/test_batch_round.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.scheduling.matching import LONDON
from services.scheduling.reoptimisation import no_worse, on_cadence
from shared.contracts.codes import Tier

HOUR = timedelta(hours=1)
Interval = tuple[datetime, datetime]


def sessions(*days: int, hour: int = 16) -> list[Interval]:
    """Hour-long sessions on these days of March 2026 (London), at `hour`."""
    return [(start, start + HOUR) for start in (datetime(2026, 3, d, hour, tzinfo=LONDON) for d in days)]


@pytest.mark.parametrize(("tier", "planned", "kept"), [
    (Tier.MEDIUM, sessions(2, 9, 16, 23, 30), 4),
    (Tier.MEDIUM, sessions(2, 9, 17, 23, 30), 2),  # one a day late: neither the pair before it nor after keeps it
    (Tier.MEDIUM, sessions(2, 16, 23), 1),  # a week missed
    (Tier.MEDIUM, [*sessions(2, 9), *sessions(16, hour=17)], 1),  # a later time of day
    (Tier.LOW, sessions(2, 16, 30), 2),
    (Tier.LOW, sessions(2, 9, 16), 0),  # weekly is not the low tier's fortnightly cadence
    (Tier.VERY_HIGH, sessions(2, 5, 9, 12, 16), 4),  # every 3 and 4 days in turn
    (Tier.MEDIUM, sessions(2), 0),
    (Tier.MEDIUM, [], 0),
])
def test_on_cadence_counts_the_sessions_a_cadence_interval_after_the_one_before_at_its_time(
    tier: Tier, planned: list[Interval], kept: int,
) -> None:
    assert on_cadence(planned, tier) == kept


def test_the_clocks_changing_keeps_the_wall_clock_cadence() -> None:
    # 2026-03-29: British Summer Time starts; 16:00 London is 16:00 UTC before it and 15:00 UTC after
    assert on_cadence(sessions(22, 29), Tier.MEDIUM) == 1


@pytest.mark.parametrize(("current", "proposed", "moves"), [
    (sessions(3, 10, 17, 24), sessions(2, 9, 16, 23, 30), True),  # a fresh programme: more sessions
    (sessions(3, 10, 17, 24), sessions(2, 9, 16, 23), True),
    (sessions(3, 10, 17, 24), sessions(2, 9, 16), False),  # fewer sessions
    (sessions(3, 10, 17, 24), sessions(2, 9, 17, 24), False),  # as many, but one off the weekly day
    (sessions(3, 11, 17, 24), sessions(2, 10, 16, 23), True),  # off once each
    ([], sessions(2), True),  # nothing booked to lose
])
def test_a_young_person_with_sessions_moves_only_to_as_many_as_regular(
    current: list[Interval], proposed: list[Interval], moves: bool,
) -> None:
    assert no_worse(current, proposed, Tier.MEDIUM) is moves
