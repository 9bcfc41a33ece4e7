"""The batch round's plan made in a process of its own (services/scheduling/planning.py): the same plan as made here,
the optimiser's error as the round's, and a planning process killed mid-plan fails that plan only."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from services.scheduling.planning import PlanFailed, Planner, PlannerDied, PlanTooBig
from tests.support.schedules import plan_job as _job
from tests.support.waiting import wait_until, wait_until_sync


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


def _running(pid: int) -> bool:
    """The process exists and has not ended (a zombie waiting for a reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def test_a_plan_past_its_time_is_stopped_and_the_next_plan_is_made() -> None:
    """A stuck plan (here the planning process paused) is stopped at the planner's time-out and fails that round
    only: before, the round waited for ever and the replica refused every later one."""
    planner, job = Planner(timeout_s=2), _job()
    plan = asyncio.create_task(planner.plan(job))
    await wait_until(lambda: planner.pid is not None, timeout=30, every=0.005, what="the planning process starting")
    stuck = planner.pid
    assert stuck is not None
    os.kill(stuck, signal.SIGSTOP)

    with pytest.raises(PlannerDied, match="had not finished after"):
        await plan
    assert not _running(stuck), "the stuck planning process was stopped"
    planner.timeout_s = 300
    assert _chosen(await planner.plan(job)) == _chosen(job.plan())


async def test_the_planning_process_gets_none_of_the_services_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"DB_PASSWORD": "db-s3cret", "NATS_URL": "nats://scheduling:nats-s3cret@nats:4222",
               "REROUTE_CONSOLE_SPANS_TOKEN": "spans-s3cret", "DATABASE_URL": "postgresql://u:pg-s3cret@db/x"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    planner = Planner()
    plan = asyncio.create_task(planner.plan(_job()))
    await wait_until(lambda: planner.pid is not None, timeout=30, every=0.005, what="the planning process starting")
    assert planner.pid is not None
    os.kill(planner.pid, signal.SIGSTOP)  # held while its environment is read
    environ = Path(f"/proc/{planner.pid}/environ").read_bytes().decode()
    os.kill(planner.pid, signal.SIGCONT)

    await plan
    assert not [value for value in secrets.values() if value in environ]
    assert "PYTHONPATH=" in environ, "it still finds the modules it runs"


def test_the_planning_process_ends_with_the_service_that_started_it(tmp_path: Path) -> None:
    """A service killed mid-round (SIGKILL: no clean-up runs) leaves no plan running on (under `reroute up` or on a
    host, where nothing else would stop it)."""
    service = subprocess.Popen(
        [sys.executable, "-c", _SERVICE_KILLED_MID_ROUND], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[2])
    assert service.stdout is not None
    child = int(service.stdout.readline())
    assert _running(child)

    try:
        service.kill()
        service.wait(timeout=30)

        wait_until_sync(lambda: not _running(child), timeout=30, what="the planning process ending with its service")
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)


_SERVICE_KILLED_MID_ROUND = """
import asyncio, os, signal
from tests.support.schedules import plan_job as _job
from services.scheduling.planning import Planner

async def main():
    planner = Planner()
    plan = asyncio.create_task(planner.plan(_job(60, 2000)))
    while planner.pid is None:
        await asyncio.sleep(0.005)
    adj = f"/proc/{planner.pid}/oom_score_adj"  # set just after it asked to die with its parent
    for _ in range(6000):  # at most 30 s
        if open(adj).read().strip() == "1000":
            break
        await asyncio.sleep(0.005)
    os.kill(planner.pid, signal.SIGSTOP)  # it stays mid-plan until its service is gone
    print(planner.pid, flush=True)
    await plan

asyncio.run(main())
"""


async def test_a_plan_over_its_memory_cap_fails_that_round_only() -> None:
    """On Kubernetes (1.28 and later, cgroup v2) a container's out-of-memory kill takes every process in it: the
    plan's own cap (REROUTE_PLAN_MEMORY_MIB) fails the plan instead, and the service, and the next plan, go on."""
    job, big = _job(), _job(300, 6000)
    with pytest.raises(PlanTooBig, match="needed more than the 40 MiB REROUTE_PLAN_MEMORY_MIB allows"):
        await Planner(memory_mib=40).plan(job)  # below what numpy and OR-Tools take before planning
    with pytest.raises(PlanTooBig, match="needed more than the 110 MiB REROUTE_PLAN_MEMORY_MIB allows"):
        await Planner(memory_mib=110).plan(big)  # room for them, not for this plan
    assert _chosen(await Planner(memory_mib=1024).plan(job)) == _chosen(job.plan())
