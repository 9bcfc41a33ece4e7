"""The garbage collector's pauses as an operator reads them on /metrics, and the start-up heap kept out of them."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from shared.contracts.rpc import Health
from shared.heap import settle
from shared.metrics import ServiceMetrics


def _scrape(registry: CollectorRegistry) -> dict[str, float]:
    """Each sample line of /metrics that concerns the collector, as name{labels} -> value."""
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("reroute_gc_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_each_full_pass_is_counted_with_its_time_in_a_histogram_that_reading_does_not_change() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("risk", registry, namespace="",
                             health=lambda: Health(service="risk", pid=1, live=True, ready=True, problems=[]))
    full = 'generation="2",service="risk"'
    try:
        before = _scrape(registry)
        gc.collect(2)
        gc.collect(2)
        after = _scrape(registry)
        assert after[f"reroute_gc_pause_seconds_count{{{full}}}"] >= before[f"reroute_gc_pause_seconds_count{{{full}}}"] + 2
        assert after[f"reroute_gc_pause_seconds_sum{{{full}}}"] > before[f"reroute_gc_pause_seconds_sum{{{full}}}"]
        buckets = [v for k, v in after.items() if k.startswith('reroute_gc_pause_seconds_bucket{generation="2"')]
        assert buckets == sorted(buckets), "a histogram's buckets are cumulative"
        assert buckets[-1] == after[f"reroute_gc_pause_seconds_count{{{full}}}"], "+Inf holds every pass"
        gc.disable()  # no pass of its own between the two reads
        try:
            assert _scrape(registry) == _scrape(registry), "reading the figures does not change them"
        finally:
            gc.enable()
    finally:
        metrics.shutdown()
    counted = metrics.gc.count[2]
    gc.collect(2)
    assert metrics.gc.count[2] == counted, "a stopped service's hook is gone"
    assert not _scrape(registry), "and so are its figures"


def test_settle_keeps_what_lives_now_out_of_later_passes_but_still_frees_what_dies() -> None:
    try:
        kept = [[i] for i in range(1000)]
        frozen = settle()
        assert frozen >= len(kept) and gc.get_freeze_count() == frozen
        assert not any(o is kept for o in gc.get_objects()), "a frozen object is in no generation a pass walks"
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made after the freeze is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
