"""The garbage collector's pauses, kept short and counted.

A full (generation 2) collection walks every tracked object in the process. Most of them are there from the start
and never die (modules, functions, classes, pydantic's and SQLAlchemy's models of the schema: about 120,000 in a
service), and walking them is most of a full pass. Measured in `bench.service_cost` (docs/performance.md, "Garbage
collection"): full passes of 90-290 ms, landing inside whichever handler allocated when the threshold was crossed,
the p99 at low rates. `settle()` collects once and then freezes what is left (`gc.freeze()`), so later passes walk
only what the process made since; `GcPauses` counts each generation's passes and the time they took, for
/metrics (`reroute_gc_pauses_total`, `reroute_gc_pause_seconds_total`, `reroute_gc_longest_pause_seconds`).
"""

from __future__ import annotations

import gc
import time
from typing import Any


def settle() -> int:
    """Collect what start-up left behind, then keep every object alive now out of later collections (they are
    never freed: call once, when the process has started). Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Each generation's collections and their time since the process started, and the longest pause since the
    last `longest()`: read by the metrics' callbacks. The hook runs inside the collector, so it only adds numbers
    (no lock, no allocation beyond a float)."""

    GENERATIONS = (0, 1, 2)

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._longest = [0.0, 0.0, 0.0]
        self._began = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        generation = info["generation"]
        took = time.perf_counter() - self._began
        self.count[generation] += 1
        self.seconds[generation] += took
        self._longest[generation] = max(self._longest[generation], took)

    def longest(self, generation: int) -> float:
        """The longest pause of `generation` since this was last asked (each scrape sees its own interval's)."""
        took, self._longest[generation] = self._longest[generation], 0.0
        return took

    def close(self) -> None:
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)
