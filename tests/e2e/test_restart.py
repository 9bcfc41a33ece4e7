"""Stopping a service mid-stream loses no referral and duplicates none."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from tests.support.cluster import Probe, mentor, ready, referral, unique, unique_language
from tests.support.suite import drop_schemas, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def _stored(probe: Probe, subject: str) -> list[dict[str, Any]]:
    """Every message the stream holds on `subject` (what a consumer would get), duplicates included.

    Reads until the consumer has nothing pending, not until a fetch times out: on a loaded machine a fetch can
    time out with messages still to come, which would make a message look lost."""
    sub = await probe.nc.jetstream().pull_subscribe(subject, durable=None)
    found: list[dict[str, Any]] = []
    while True:
        try:
            msgs = await sub.fetch(500, timeout=1)
        except (nats.errors.TimeoutError, TimeoutError):
            msgs = []
        for m in msgs:
            found.append(json.loads(m.data))
            await m.ack()
        if not msgs and (await sub.consumer_info()).num_pending == 0:
            break
    await sub.unsubscribe()
    return found


@pytest.mark.parametrize("service", ["risk", "scheduling", "intake"])
async def test_a_service_killed_mid_stream_loses_and_duplicates_nothing(
    nats_server: tuple[str, bool], tmp_path: Path, service: str
) -> None:
    cluster = await ready(make_cluster(nats_server, tmp_path, f"restart{service}", isolated=True))
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    try:
        lang, agency = unique_language(), unique("yot")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang, max_caseload=100)]})
        arids = [unique("R") for _ in range(60)]
        for a in arids[:30]:
            await probe.submit(agency, referral(a, language=lang))
        await probe.wait_for(cluster.subjects.assessed(agency), count=3, timeout=15)
        cluster.processes.kill(service)  # as a crash would: no graceful shutdown
        for a in arids[30:]:
            await probe.submit(agency, referral(a, language=lang))  # stored once this returns (its PubAck)
        upstream = {"risk": cluster.subjects.recorded(agency), "scheduling": cluster.subjects.assessed(agency)}
        if service in upstream:  # the stage before it does all 60 meanwhile: a backlog awaits it when it is back
            async def upstream_done() -> bool:
                return await probe.stored_count(upstream[service]) >= 60

            await wait_until(upstream_done, timeout=30, every=0.2,
                             what=f"60 events on {upstream[service]} while {service} was down")
        cluster.processes.start(service)
        await cluster.wait_ready((service,), timeout=60)

        accepted: list[dict[str, Any]] = []
        scheduled: list[dict[str, Any]] = []

        async def all_accepted_and_scheduled() -> bool:
            accepted[:] = await _stored(probe, cluster.subjects.accepted(agency))
            scheduled[:] = await _stored(probe, cluster.subjects.scheduled(agency))
            return (len({e["referral_id"] for e in scheduled}) >= 60
                    and len({e["agency_referral_id"] for e in accepted}) >= 60)

        await wait_until(all_accepted_and_scheduled, timeout=45, every=0.5, what=lambda: (
            f"all 60 referrals accepted and scheduled ({len({e['agency_referral_id'] for e in accepted})} accepted, "
            f"{len({e['referral_id'] for e in scheduled})} scheduled)"))
        assessed = await _stored(probe, cluster.subjects.assessed(agency))
        by_arid = {e["agency_referral_id"]: e["referral_id"] for e in accepted}
        assert sorted(by_arid) == sorted(arids), "every referral was accepted"
        assert len(set(by_arid.values())) == 60, "one referral id per agency referral"
        assert Counter(e["referral_id"] for e in accepted if not e["duplicate"]).most_common(1)[0][1] == 1
        assert Counter(e["referral_id"] for e in assessed).most_common(1)[0][1] == 1, "assessed once each"
        assert {e["referral_id"] for e in assessed} == set(by_arid.values())
        assert Counter(e["referral_id"] for e in scheduled).most_common(1)[0][1] == 1, "scheduled once each"
        assert {e["referral_id"] for e in scheduled} == set(by_arid.values())
    finally:
        await probe.close()
        cluster.processes.stop_all()
        drop_schemas(cluster)
