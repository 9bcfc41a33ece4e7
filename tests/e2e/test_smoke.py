"""The smoke test CI's Docker pass runs end to end (`make test-containers`): the three services, on the session's NATS
and database (containers there, local processes elsewhere), take a referral to booked sessions that the operator's
CLI then reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import containers
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language

pytestmark = pytest.mark.e2e


async def test_a_referral_is_scheduled_and_the_cli_reports_it(cluster: Cluster, probe: Probe, tmp_path: Path) -> None:
    if containers.required():  # the pass that must run on containers does: the services were given their URLs
        assert cluster.nats_url == containers.RUNNING["NATS"].url
        assert cluster.processes.env["DATABASE_URL"] == containers.RUNNING["PostgreSQL"].url
    lang, agency, arid = unique_language(), unique("yot"), unique("REF")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})

    await probe.submit(agency, referral(arid, language=lang))

    rid = (await probe.wait_for(cluster.subjects.accepted(agency),
                                lambda e: e["agency_referral_id"] == arid))[0]["referral_id"]
    scheduled = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    assert scheduled["sessions"]
    shown = reroute(cluster, tmp_path, "status", rid)
    assert shown.returncode == 0, shown.stderr
    assert f"their ref {arid}" in shown.stdout and "Scheduled with" in shown.stdout
