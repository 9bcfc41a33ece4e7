"""An event NATS refuses for good is parked, not retried for ever: the events behind it flow, the operator sees it in
`reroute deadletter list`, and its referral reads as held. Run on a nats-server of its own that carries at most
8 KiB per message, where a referral naming all 30 indicators gets a risk.assessed of about 14 KiB."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.devstack.local_nats import start_nats_server
from shared.contracts.codes import INDICATOR_CODES
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, mentor, ready, referral, unique, unique_language
from tests.support.suite import drop_schemas, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
MAX_PAYLOAD = 8192


@pytest.fixture(scope="module")
def small_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    store = tmp_path_factory.mktemp("small-nats")
    config = store / "nats.conf"
    config.write_text(f"max_payload: {MAX_PAYLOAD}\n")
    proc, url = start_nats_server(store, config=config, log_file=store / "nats.log")
    try:
        cluster = make_cluster((url, False), tmp_path_factory.mktemp("small-data"), "small", isolated=True)
        try:
            asyncio.run(ready(cluster))
            yield cluster
        finally:
            cluster.processes.stop_all()
            drop_schemas(cluster)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_an_event_nats_refuses_is_parked_and_the_events_behind_it_are_published(
    small_cluster: Cluster, tmp_path: Path
) -> None:
    cluster, s = small_cluster, small_cluster.subjects
    probe = await Probe.open(cluster.nats_url, s)
    try:
        lang, agency = unique_language(), unique("yot")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        too_big, behind = unique("ALL"), unique("REF")

        await probe.submit(agency, referral(too_big, language=lang, indicators=sorted(INDICATOR_CODES)))
        await probe.submit(agency, referral(behind, language=lang))  # often in the same batch, so behind it
        both = await probe.wait_for(s.accepted(agency), count=2)
        accepted = {e["agency_referral_id"]: e["referral_id"] for e in both}
        parked_rid, rid = accepted[too_big], accepted[behind]

        await probe.wait_for(s.assessed(agency), lambda e: e["referral_id"] == rid, timeout=20)
        await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == rid, timeout=20)
        await probe.wait_for(s.alert(agency), lambda e: e["referral_id"] == parked_rid)  # published before it

        parked: list[dict[str, Any]] = []

        async def listed() -> bool:
            reply = await probe.rpc("risk", "deadletters.list", {})
            parked[:] = [d for d in reply["dead_letters"] if d["referral_id"] == parked_rid]
            return bool(parked)

        await wait_until(listed, timeout=10, every=0.2, what="risk listing the parked risk.assessed")
        assert [(d["consumer"], d["subject"], d["status"]) for d in parked] == [("outbox", s.assessed(agency), "open")]
        assert f"over the NATS server's max_payload of {MAX_PAYLOAD} bytes" in parked[0]["reason"]
        assert not probe.matching(s.assessed(agency), lambda e: e["referral_id"] == parked_rid)
        held = await probe.rpc("risk", "deadletters.held", {"referral_ids": [parked_rid, rid]})
        assert list(held["held"]) == [parked_rid], "its referral is held for review; the one behind it is not"

        shown = reroute(cluster, tmp_path, "deadletter", "list", "--service", "risk")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert parked[0]["id"] in shown.stdout and "risk: 1 open: parked outbox event" in shown.stdout

        log = cluster.processes.log_file("risk").read_text()
        assert log.count(f"NATS refused event assessed:{parked_rid}:1 ") == 1, "logged once, never retried"
        assert "Traceback" not in log
        health = await probe.rpc("risk", "ping", {})
        assert health["ready"], health
    finally:
        await probe.close()
