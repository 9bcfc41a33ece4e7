"""The garbage collector's pauses, kept short and counted.

A full (generation 2) collection walks every tracked object in the process, and most of them are made at start-up
and never die (modules, functions, classes, pydantic's and SQLAlchemy's descriptions of the schema). Walking them is
most of a full pass: docs/performance.md ("Garbage collection") measured passes of 150-300 ms that land inside
whichever handler allocated when the threshold was crossed. `settle()` collects once and then freezes what is left
(`gc.freeze()`), so later passes walk only what the process made since. `GcPauses` times every pass, served on
/metrics as the histogram `reroute_gc_pause_seconds` by generation (`GcCollector`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds of the pause histogram's buckets, in seconds (+Inf is added)."""
GENERATIONS = (0, 1, 2)


def settle() -> int:
    """Collect what start-up left behind, then keep every object alive now out of later collections (they are
    never freed: call once, as the process starts serving). Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Each generation's collections, timed, since this was made.

    A pass is timed in CPU time of the thread that collects (`time.thread_time`): every Python thread waits for it
    to end, and a wall clock read from a Python callback would also count other threads' turns at the interpreter
    lock on the way in and out of the hook. The hook only adds numbers: no lock, no I/O."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self.in_bucket = [[0] * len(BUCKETS) for _ in GENERATIONS]
        """Per generation, the passes that took at most each bound (not cumulative; `GcCollector` adds them up)."""
        self._began = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.thread_time()
            return
        generation = info["generation"]
        took = time.thread_time() - self._began
        self.count[generation] += 1
        self.seconds[generation] += took
        self.longest[generation] = max(self.longest[generation], took)
        for i, bound in enumerate(BUCKETS):
            if took <= bound:
                self.in_bucket[generation][i] += 1
                break

    def close(self) -> None:
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)


class GcCollector(Collector):
    """`reroute_gc_pause_seconds{service, generation}`, a histogram of the pauses `GcPauses` timed: a read never
    changes it, so any number of scrapers see the same figures."""

    def __init__(self, pauses: GcPauses, service: str) -> None:
        self._pauses, self._service = pauses, service

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "reroute_gc_pause_seconds", "Garbage-collection passes and the CPU time each took, by generation (2: a "
            "full pass; every handler of the process waits while one runs).", labels=["service", "generation"])
        for g in GENERATIONS:
            running, buckets = 0, []
            for bound, n in zip(BUCKETS, self._pauses.in_bucket[g], strict=True):
                running += n
                buckets.append((repr(bound), running))
            buckets.append(("+Inf", self._pauses.count[g]))
            family.add_metric([self._service, str(g)], buckets, self._pauses.seconds[g])
        yield family
