"""One timed batch-round plan, run by bench/round_speed.py inside the tree under test.

    python bench/round_worker.py INSTANCE.pickle PLAN.pickle TIME_LIMIT_S [loop]   (cwd and PYTHONPATH: the tree)

Imports nothing of bench/ (an older tree's bench may differ), only that tree's optimiser, so the same script
times any revision. Reads (now, cases, mentors), plans as the service's round does (`optimise` with its time
limit), and writes the plan as plain data with the wall-clock and CPU time of the call. With `loop`, it plans as
that tree's service does while the event loop wakes every millisecond, and writes the gaps between its wake-ups
as well: how long the plan keeps the loop (health, requests) waiting. A tree with services/scheduling/planning.py
plans in a process of its own (`Planner`, the wall-clock then includes starting it and the pickling both ways);
an older one on a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from services.scheduling import optimiser


def plan(now: Any, cases: Any, mentors: Any, time_limit_s: float) -> Any:
    return optimiser.optimise(cases, mentors, now=now, time_limit_s=time_limit_s)


def as_the_service_plans(now: Any, cases: Any, mentors: Any, time_limit_s: float) -> Any:
    """The plan as the tree's service makes it, awaitable: in a process of its own, or on a worker thread."""
    try:
        from services.scheduling import planning
    except ImportError:
        return asyncio.to_thread(plan, now, cases, mentors, time_limit_s)
    job = planning.PlanJob.of(cases, mentors, now=now, current={}, time_limit_s=time_limit_s)
    return planning.Planner().plan(job)


async def plan_beside_loop(now: Any, cases: Any, mentors: Any, time_limit_s: float) -> tuple[Any, list[float]]:
    """The plan as the service makes it, and the gaps between the event loop's wake-ups meanwhile."""
    task = asyncio.create_task(as_the_service_plans(now, cases, mentors, time_limit_s))
    gaps, last = [], time.perf_counter()
    while not task.done():
        await asyncio.sleep(0.001)
        gaps.append(time.perf_counter() - last)
        last += gaps[-1]
    return await task, gaps


def main(instance_path: str, plan_path: str, time_limit_s: str, mode: str = "") -> None:
    now, cases, mentors = pickle.loads(Path(instance_path).read_bytes())
    # Imported before the clock starts: a tree that imports them lazily (inside the solve) would otherwise pay
    # their import (about 0.13 s) inside the timing, and one that imports them at the top would not.
    import numpy  # noqa: F401
    import ortools.graph.python.min_cost_flow  # type: ignore[import-untyped]  # noqa: F401
    wall, cpu = time.perf_counter(), time.process_time()
    gaps: list[float] = []
    if mode == "loop":
        result, gaps = asyncio.run(plan_beside_loop(now, cases, mentors, float(time_limit_s)))
    else:
        result = plan(now, cases, mentors, float(time_limit_s))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    chosen = {rid: (match.mentor_id, list(match.sessions)) for rid, match in result.assignments.items()}
    Path(plan_path).write_bytes(pickle.dumps({"optimiser": optimiser.__file__, "wall_s": wall, "cpu_s": cpu,
                                              "plan": chosen, "loop_gaps_s": gaps,
                                              # an older tree's Allocation has no such fields: None
                                              "online_placed": getattr(result, "online_placed", None),
                                              "online_taken": getattr(result, "online_taken", None)}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
