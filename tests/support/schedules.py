"""Schedules for the scheduling tests: made the two ways the service makes them (the online matcher case by
case, the batch plan over a round, rooms held as stored), and scored by the one independent judge.

Both live in bench/ (bench/evaluator.py, bench/scheduling_quality.py), because the quality benchmark is scored
by the same judge: one judge, so the benchmark and the tests cannot disagree on what a broken rule is. Tests
take them from here, so that their dependency on bench/ is this one module.
"""

from __future__ import annotations

from bench.evaluator import Booking, evaluate, route_problem
from bench.instances import generate
from bench.scheduling_quality import run_batch, run_online
from services.scheduling.planning import PlanJob

__all__ = ["Booking", "evaluate", "plan_job", "route_problem", "run_batch", "run_online"]


def plan_job(mentors: int = 20, referrals: int = 200) -> PlanJob:
    """A batch round's job over the benchmark's generated instance (seed 7): most referrals can be placed."""
    inst = generate(mentors, referrals, seed=7)
    return PlanJob.of(inst.cases, inst.mentors, now=inst.now, current={}, time_limit_s=30)
