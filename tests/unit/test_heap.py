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


def test_each_collection_is_counted_with_its_pause_and_the_longest_is_per_scrape() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("risk", registry, namespace="",
                             health=lambda: Health(service="risk", pid=1, live=True, ready=True, problems=[]))
    try:
        before = _scrape(registry)
        gc.collect(2)
        gc.collect(2)
        after = _scrape(registry)
        full = 'generation="2",service="risk"'
        assert after[f"reroute_gc_collections_total{{{full}}}"] >= before[f"reroute_gc_collections_total{{{full}}}"] + 2
        assert after[f"reroute_gc_pause_seconds_total{{{full}}}"] > before[f"reroute_gc_pause_seconds_total{{{full}}}"]
        assert after[f"reroute_gc_longest_pause_seconds{{{full}}}"] > 0
        assert _scrape(registry)[f"reroute_gc_longest_pause_seconds{{{full}}}"] == 0, "a scrape sees its own interval"
    finally:
        metrics.shutdown()
    counted = metrics.gc.count[2]
    gc.collect(2)
    assert metrics.gc.count[2] == counted, "a stopped service's hook is gone"


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
