"""The fault matrix: each fault injected under load, while every stage has a backlog, and then every referral
must reach exactly one outcome with no manual step, within two minutes of the fault clearing.

Run with `make test-faults` (`.ci/run` does): broker and crash scenarios on SQLite, database scenarios on
PostgreSQL only (they need DATABASE_URL). The figures are printed (`-s`) and kept in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.faults import Figures, Node, PostgresOfOwn, Rig, StallingProxy, rig
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

REFERRALS = 1000  # at RATE: ten seconds of submissions, with the fault in the middle
RATE = 100.0  # per second: faster than the pipeline drains, so every stage has a backlog
DRAIN_CAP = 120.0  # seconds after the fault clears: a liveness cap, not a performance target


async def _drained(r: Rig, scenario: str, cleared_at: float) -> Figures:
    await wait_until(r.all_have_outcomes, timeout=DRAIN_CAP - (time.monotonic() - cleared_at), every=1.0,
                     what="an outcome for every referral")
    figures = await r.count(scenario)
    figures.drain_seconds = time.monotonic() - cleared_at
    return figures


async def _under_load(r: Rig, scenario: str, fault: Callable[[], Awaitable[object]]) -> Figures:
    """Submit the load, wait for a backlog at every stage, inject `fault` (it returns once the fault has cleared),
    let the pipeline drain, and assert every referral reached exactly one outcome."""
    load = asyncio.create_task(r.submit_all(REFERRALS, rate=RATE))
    backlog = await r.until_every_stage_backlogged(timeout=60)
    await fault()
    cleared = time.monotonic()
    await load
    figures = await _drained(r, scenario, cleared)
    figures.backlog_at_fault = backlog
    _assert_exactly_once(figures)
    return figures


def _assert_exactly_once(figures: Figures) -> None:
    print(f"\nFIGURES {figures.line()}")
    assert figures.accepted == figures.submitted, "every submitted referral was accepted"
    assert figures.lost == 0, "no referral was lost"
    assert figures.outcomes == figures.submitted, "every referral reached an outcome"
    assert figures.duplicated == 0, "nothing was processed twice"
    assert figures.double_booked == 0, "no mentor was double-booked"


async def test_a_broker_killed_and_restarted_under_load_loses_and_freezes_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        async def fault() -> None:
            r.kill_nats()
            await asyncio.sleep(1.0)  # the broker is down for a moment, as in a real restart
            r.start_nats()

        await _under_load(r, "nats-server kill -9 and restart (store kept)", fault)


async def test_a_cluster_loses_its_stream_leader_under_load_and_carries_on(tmp_path: Path) -> None:
    """Three JetStream nodes with R3 streams; the leader of the referrals stream is killed for good."""
    async with rig(tmp_path, nodes=3) as r:
        assert r.nc is not None
        for stream in (r.subjects.submissions_stream, r.subjects.referrals_stream, r.subjects.intake_stream,
                       r.subjects.risk_stream, r.subjects.sessions_stream):
            info = await r.nc.jetstream().stream_info(stream)
            assert info.config.num_replicas == 3, f"{stream} is R3"
        killed: list[Node] = []

        async def fault() -> None:
            killed.append(await r.stream_leader(r.subjects.referrals_stream))
            r.kill_node(killed[0])  # two nodes of three keep the quorum: nothing to wait for but an election

        await _under_load(r, "3-node cluster, R3 streams, the referrals stream's leader killed", fault)
        assert await r.stream_leader(r.subjects.referrals_stream) is not killed[0], "another node leads now"


@pytest.mark.parametrize("service", ["intake", "risk", "scheduling"])
async def test_a_service_killed_under_load_loses_and_duplicates_nothing(tmp_path: Path, service: str) -> None:
    async with rig(tmp_path) as r:
        async def fault() -> None:
            r.services.kill(service)
            r.services.start(service)

        await _under_load(r, f"{service} kill -9 and restart", fault)


OUTAGE_SECONDS = 60.0


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL")
    assert url, "the postgres scenarios need DATABASE_URL (make test-faults selects them only when it is set)"
    return url


def _tracebacks(root: Path) -> int:
    return sum(log.read_text().count("Traceback") for log in root.glob("logs*/*.log"))


@pytest.mark.postgres
async def test_a_database_outage_under_load_pauses_and_resumes_without_dead_letters(tmp_path: Path) -> None:
    db = PostgresOfOwn(_postgres_url())
    try:
        async with rig(tmp_path, database_url=db.url) as r:
            before: list[int] = []

            async def fault() -> None:
                before.append(_tracebacks(tmp_path))
                db.refuse_connections()
                await asyncio.sleep(OUTAGE_SECONDS)  # the fault's length, not a wait for a condition
                db.allow_connections()

            await _under_load(r, "PostgreSQL refusing connections for 60 s", fault)
            assert await r.dead_letters() == [], "an outage of the service's own database dead-letters nothing"
            assert _tracebacks(tmp_path) == before[0], "the outage is logged in words, not a traceback per message"
    finally:
        db.drop()


@pytest.mark.postgres
async def test_a_hung_database_link_under_load_is_waited_for_and_loses_nothing(tmp_path: Path) -> None:
    db = PostgresOfOwn(_postgres_url())
    parsed = make_url(db.url)
    proxy = StallingProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    try:
        through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with rig(tmp_path, database_url=through_proxy) as r:
            async def fault() -> None:
                proxy.stall()
                not_ready = await r.until_not_ready(timeout=45)
                # SIGTERM still stops a service whose database call hangs, within its shutdown bound
                risk = r.services.procs.pop("risk")
                risk.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.to_thread(risk.wait, 30)
                except subprocess.TimeoutExpired:
                    risk.kill()
                    pytest.fail("risk did not stop on SIGTERM within 30 s while its database link hung")
                assert code is not None
                await asyncio.sleep(max(0.0, OUTAGE_SECONDS - not_ready))  # the rest of the fault's length
                proxy.resume()
                r.services.start("risk")  # as its supervisor would

            await _under_load(r, "PostgreSQL link hung (proxy stops forwarding) for 60 s", fault)
            assert await r.dead_letters() == [], "a hung link dead-letters nothing"
    finally:
        await proxy.close()
        db.drop()


POISON = [
    b"not json at all",
    b'{"referral_id": 5}',
    b"[" * 5000 + b"]" * 5000,
    b'{"referral_id": "' + b"9" * 5000 + b'"}',
    b"\xff\xfe\x00 binary",
]


async def test_poison_on_every_consumed_subject_is_dead_lettered_once_per_service_and_stops_nothing(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        assert r.nc is not None
        js = r.nc.jetstream()
        consumed: dict[str, set[str]] = {  # subject: the services that dead-letter poison on it
            r.subjects.submitted(r.agency): set(),  # intake answers a bad submission with referrals.rejected
            r.subjects.updated(r.agency): set(),
            r.subjects.recorded(r.agency): {"risk", "scheduling"},
            r.subjects.assessed(r.agency): {"scheduling"},
        }

        async def fault() -> None:
            for subject in consumed:
                for i, body in enumerate(POISON):
                    await js.publish(subject, body, headers={"Nats-Msg-Id": f"poison-{subject}-{i}"})

        await _under_load(r, "poison messages on every consumed subject", fault)

        expected = Counter((service, subject) for subject, services in consumed.items()
                           for service in services for _ in POISON)
        found = Counter((h["Reroute-Failed-Service"], h["Reroute-Failed-Subject"]) for h in await r.dead_letters())
        assert found == expected, (
            "each service dead-letters each poison message it consumes, once (both kept when two services fail "
            "one); intake reads every body itself, so nothing it is sent is poison to it")
        rejected = await r.stored(r.subjects.rejected(r.agency))
        assert len(rejected) == 2 * len(POISON), "intake rejects every bad submission with a reason"
        assert all(p["live"] and p["ready"] for p in (await r.pings()).values()), "no service stopped"


@pytest.mark.postgres
async def test_two_replicas_of_each_service_on_postgres_one_killed_under_load(tmp_path: Path) -> None:
    """Replicas start together (no start-up race), share the work, and when one of each is killed mid-batch the
    others finish it: nothing lost, nothing twice, no mentor double-booked."""
    db = PostgresOfOwn(_postgres_url())
    try:
        async with rig(tmp_path, database_url=db.url, replicas=2) as r:
            async def fault() -> None:
                for service in ("intake", "risk", "scheduling"):
                    r.others[0].kill(service)

            await _under_load(r, "two replicas of each service on PostgreSQL, one of each killed", fault)
            assert not r.services.exited(), "the surviving replicas kept running"
    finally:
        db.drop()
