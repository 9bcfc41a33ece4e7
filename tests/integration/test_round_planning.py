"""The batch round's plan made in a process of its own (services/scheduling/planning.py): the same plan as made here,
the optimiser's error as the round's, and a planning process killed mid-plan fails that plan only."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace

import pytest

from bench.instances import generate
from services.scheduling.planning import PlanFailed, PlanJob, Planner, PlannerDied
from tests.support.waiting import wait_until


def _job(mentors: int = 20, referrals: int = 200) -> PlanJob:
    inst = generate(mentors, referrals, seed=7)
    return PlanJob.of(inst.cases, inst.mentors, now=inst.now, current={}, time_limit_s=30)


def _chosen(plan: object) -> object:
    return {rid: (m.mentor_id, m.sessions) for rid, m in plan.assignments.items()}  # type: ignore[attr-defined]


async def test_the_plan_made_apart_is_the_plan_made_here() -> None:
    job = _job()

    apart = await Planner().plan(job)
    here = job.plan()

    assert len(apart.assignments) > 0 and apart.waitlisted == here.waitlisted
    assert _chosen(apart) == _chosen(here)


async def test_the_optimisers_error_fails_the_plan_in_its_own_words() -> None:
    job = _job(5, 20)
    twice = replace(job, cases=[*job.cases, job.cases[0]])

    with pytest.raises(PlanFailed, match="referral ids appear more than once") as failed:
        await Planner().plan(twice)
    assert not isinstance(failed.value, PlannerDied)


async def test_a_killed_planning_process_fails_its_plan_and_the_next_plan_is_made() -> None:
    planner, job = Planner(), _job()
    plan = asyncio.create_task(planner.plan(job))
    await wait_until(lambda: planner.pid is not None, timeout=30, every=0.005, what="the planning process starting")
    assert planner.pid is not None and planner.pid != os.getpid()
    os.kill(planner.pid, signal.SIGKILL)  # as the kernel's OOM killer would

    with pytest.raises(PlannerDied, match="killed by SIGKILL"):
        await plan
    assert planner.pid is None
    assert _chosen(await planner.plan(job)) == _chosen(job.plan())
