"""What a replica counts for the operators' overview: since it started, and in the last minute."""

from __future__ import annotations

from shared.deadletters import keepers
from shared.metrics import Throughput


def test_the_last_minute_forgets_what_is_older_and_the_total_keeps_everything() -> None:
    now = [1000.0]
    counted = Throughput(clock=lambda: now[0])
    counted.add("risk-recorded", 3)
    now[0] += 30
    counted.add("risk-recorded", 2)
    counted.add("published")
    assert (counted.last_minute("risk-recorded"), counted.total("risk-recorded")) == (5, 5)
    now[0] += 31  # the first three are over a minute old
    assert (counted.last_minute("risk-recorded"), counted.total("risk-recorded")) == (2, 5)
    now[0] += 60
    counted.add("risk-recorded", 0)
    assert (counted.last_minute("risk-recorded"), counted.total("risk-recorded")) == (0, 5)
    assert (counted.last_minute("never"), counted.total("never")) == (0, 0)
    assert counted.total("published") == 1


def test_a_dead_letter_is_asked_of_the_service_its_id_names_and_a_parked_event_of_each() -> None:
    services = ("intake", "risk", "scheduling")
    assert keepers("risk-1a2b3c4d5e", services) == ["risk"]
    assert keepers("outbox-1a2b3c4d5e", services) == list(services)
    assert keepers("nonsense", services) == []
    assert keepers("console-1a2b", services) == []
