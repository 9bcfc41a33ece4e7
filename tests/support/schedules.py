"""Schedules for the scheduling tests: made the two ways the service makes them (the online matcher case by
case, the batch plan over a round, rooms held as stored), and scored by the one independent judge.

Both live in bench/ (bench/evaluator.py, bench/scheduling_quality.py), because the quality benchmark is scored
by the same judge: one judge, so the benchmark and the tests cannot disagree on what a broken rule is. Tests
take them from here, so that their dependency on bench/ is this one module.
"""

from __future__ import annotations

from bench.evaluator import Booking, evaluate, route_problem
from bench.scheduling_quality import run_batch, run_online

__all__ = ["Booking", "evaluate", "route_problem", "run_batch", "run_online"]
