"""While a batch round runs, scheduling keeps answering: its health, its requests, and a second round (refused, saying
one is in progress); /metrics says a round is in progress. A round whose planning process dies books nothing and
says why, and the next round works.

How the round is held in progress: its plan is made in a process of its own (services/scheduling/planning.py), which
the test stops (SIGSTOP) once it is running and lets go (SIGCONT) after its checks, so the round is in progress for as
long as the checks take, however fast the machine, and nothing here is timed. The harm this fixes, OR-Tools' solve
holding the GIL (and so the event loop) for about a second at 500 mentors x 5,000 referrals when the plan ran on a
thread, shows only as time, which benchmarks measure (`make bench-round`: the event loop's longest wait beside the
plan, old and new), not tests. Against the old code this test fails all the same: it had no planning process to
stop, and no round-in-progress gauge.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.scheduling.planning import MODULE
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.suite import make_cluster, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
GAUGE = 'reroute_scheduling_round_in_progress{service="scheduling"}'


@pytest.fixture
def cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of this test's own: the round re-plans every waiting case the service holds."""
    c = make_cluster(nats_server, tmp_path_factory.mktemp("round-busy"), f"busy{uuid.uuid4().hex[:6]}", isolated=True)
    with running(c):
        yield c


async def _stranded(probe: Probe, cluster: Cluster) -> tuple[str, str, str]:
    """A young person booked with the only mentor who speaks a second referral's language, and that referral
    waiting: the round moves the first to the other mentor and places the second (test_batch_round.py's case)."""
    common, rare, agency = unique_language(), unique_language(), unique("yot")
    both, one = unique("a"), unique("b")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(both, language=common, max_caseload=1, languages=[common, rare]),
        mentor(one, language=common, max_caseload=1)]})
    rids: list[str] = []
    for language, outcome in ((common, cluster.subjects.scheduled(agency)), (rare, cluster.subjects.waitlisted(agency))):
        arid = unique("R")
        await probe.submit(agency, referral(arid, language=language))
        accepted = await probe.wait_for(cluster.subjects.accepted(agency), _field("agency_referral_id", arid))
        rids.append(str(accepted[0]["referral_id"]))
        await probe.wait_for(outcome, _field("referral_id", rids[-1]))
    return agency, rids[0], rids[1]


def _field(name: str, value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: bool(event[name] == value)


def _planning_process(service_pid: int) -> int | None:
    """The pid of the service's planning process, while it runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == service_pid and MODULE.encode() in (entry / "cmdline").read_bytes():
                return int(entry.name)
    return None


async def _in_progress(http: httpx.AsyncClient, ops_url: str) -> float:
    text = (await http.get(f"{ops_url}/metrics")).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(GAUGE)]
    assert len(values) == 1, f"{GAUGE} not in /metrics exactly once: {values}"
    return values[0]


async def _round_started(probe: Probe, cluster: Cluster, http: httpx.AsyncClient, ops_url: str) -> tuple[
        asyncio.Task[dict[str, Any]], int]:
    """A round asked for, once /metrics says it is in progress and its planning process runs: that process's pid."""
    assert await _in_progress(http, ops_url) == 0
    asked = asyncio.create_task(probe.rpc("scheduling", "plan", {}, timeout=120))
    async def in_progress() -> bool:
        return await _in_progress(http, ops_url) == 1

    await wait_until(in_progress, timeout=30, every=0.01,
                     what="/metrics saying a batch round is in progress")
    service_pid = cluster.processes.procs["scheduling"].pid
    await wait_until(lambda: _planning_process(service_pid) is not None, timeout=30, every=0.005,
                     what="the round's planning process starting")
    pid = _planning_process(service_pid)
    assert pid is not None
    return asked, pid


async def test_health_and_requests_answer_while_a_round_is_in_progress(cluster: Cluster, probe: Probe) -> None:
    agency, booked, waiting = await _stranded(probe, cluster)
    ops_url = str((await probe.rpc("scheduling", "ping", {}))["ops_url"])
    async with httpx.AsyncClient(timeout=10) as http:
        asked, planner = await _round_started(probe, cluster, http, ops_url)
        os.kill(planner, signal.SIGSTOP)  # the plan goes no further until the checks below are done
        try:
            health = await probe.rpc("scheduling", "ping", {})
            status = await probe.rpc("scheduling", "status", {"referral_id": waiting})  # the database thread is free
            again = await probe.rpc("scheduling", "plan", {})
            ready = await http.get(f"{ops_url}/readyz")
            still = await _in_progress(http, ops_url)
            assert not asked.done()
        finally:
            os.kill(planner, signal.SIGCONT)
        report = await asked

    assert still == 1, "the answers above came while the round was in progress"
    assert health["live"] is True and health["ready"] is True, health
    assert ready.status_code == 200, ready.text
    assert status["status"] == "waitlisted", status
    assert again["error"]["code"] == "refused" and "in progress" in again["error"]["message"], again
    assert (report["placed"], report["moved"]) == (1, 1), report
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == waiting)
    await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == booked)
    async with httpx.AsyncClient(timeout=10) as http:
        assert await _in_progress(http, ops_url) == 0


async def test_a_round_whose_planning_process_dies_books_nothing_and_the_next_round_works(
    cluster: Cluster, probe: Probe
) -> None:
    _agency, booked, waiting = await _stranded(probe, cluster)
    ops_url = str((await probe.rpc("scheduling", "ping", {}))["ops_url"])
    async with httpx.AsyncClient(timeout=10) as http:
        asked, planner = await _round_started(probe, cluster, http, ops_url)
        os.kill(planner, signal.SIGKILL)  # as the kernel's OOM killer would
        failed = await asked
        after = await _in_progress(http, ops_url)

    assert failed["error"]["code"] == "unavailable", failed
    assert "booked nothing" in failed["error"]["message"] and "SIGKILL" in failed["error"]["message"], failed
    assert after == 0
    assert (await probe.rpc("scheduling", "status", {"referral_id": waiting}))["status"] == "waitlisted"
    assert (await probe.rpc("scheduling", "ping", {}))["ready"] is True
    report = await probe.rpc("scheduling", "plan", {}, timeout=120)
    assert (report["placed"], report["moved"]) == (1, 1), report
    assert (await probe.rpc("scheduling", "status", {"referral_id": booked}))["status"] == "scheduled"
