"""`reroute health` and the `statistics` request behind it (and behind the console's Operations overview): each
service ready, its consumers' backlog from JetStream, what it processed and published, its outbox and dead letters."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contracts.rpc import STATISTICS, ServiceStatistics, decode_reply
from tests.support.cli import cli_rows, reroute
from tests.support.cluster import Cluster, Probe, referral, register_agency, unique, unique_language

pytestmark = pytest.mark.e2e


async def _statistics(cluster: Cluster, probe: Probe, service: str) -> ServiceStatistics:
    reply = await probe.nc.request(cluster.subjects.rpc(service, STATISTICS.verb), b"{}", timeout=10)
    return decode_reply(STATISTICS, reply.data)


async def test_each_service_says_it_is_ready_and_counts_what_its_consumers_processed(
        cluster: Cluster, probe: Probe, tmp_path: Path) -> None:
    agency = unique("yot")
    await register_agency(probe, agency)
    before = await _statistics(cluster, probe, "risk")
    await probe.submit(agency, referral(unique("R"), language=unique_language()))
    await probe.wait_for(cluster.subjects.assessed(agency), timeout=20)

    risk = await _statistics(cluster, probe, "risk")
    assert risk.health.ready and risk.health.service == "risk"
    [recorded] = risk.consumers
    assert recorded.durable == cluster.subjects.durable("risk", "recorded")
    assert recorded.processed >= before.consumers[0].processed + 1 and recorded.processed_last_minute >= 1
    assert recorded.pending is not None and recorded.ack_pending is not None, "JetStream's consumer info was read"
    assert risk.published >= before.published + 1
    assert risk.outbox_backlog is not None and risk.dead_letters_open is not None

    shown = reroute(cluster, tmp_path, "health")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    services, consumers = shown.stdout.split("Consumers (JetStream consumer info)", 1)
    assert {row[0]: row[1] for row in cli_rows(services)} == dict.fromkeys(("intake", "risk", "scheduling"), "ready"), \
        shown.stdout
    assert ("risk", recorded.durable) in [(row[0], row[1]) for row in cli_rows(consumers)], shown.stdout

    unknown = reroute(cluster, tmp_path, "health", "--service", "nonsense")
    assert unknown.returncode == 2 and "is not a service" in unknown.stdout + unknown.stderr
