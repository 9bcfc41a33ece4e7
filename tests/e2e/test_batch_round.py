"""The batch round places a young person the online order stranded, and never moves a confirmed session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.suite import make_cluster, running

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of this test's own: the round re-plans every waiting case the services hold, and other tests'
    waiting cases would take part in it, and the counts it reports are the round's, not this test's."""
    c = make_cluster(nats_server, tmp_path_factory.mktemp("batch-round"), f"round{uuid.uuid4().hex[:6]}", isolated=True)
    with running(c):
        yield c


async def _accepted(probe: Probe, cluster: Cluster, agency: str, arid: str) -> str:
    found = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    return str(found[0]["referral_id"])


@pytest.mark.parametrize("confirmed", [False, True])
async def test_the_round_frees_the_only_mentor_who_speaks_a_second_referrals_language(
    cluster: Cluster, probe: Probe, confirmed: bool
) -> None:
    common, rare, agency = unique_language(), unique_language(), unique("yot")
    both, one = unique("a"), unique("b")  # ids sort so the online order picks `both` first
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(both, language=common, max_caseload=1, languages=[common, rare]),
        mentor(one, language=common, max_caseload=1)]})
    first, second = unique("R1"), unique("R2")
    await probe.submit(agency, referral(first, language=common))
    rid1 = await _accepted(probe, cluster, agency, first)
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid1))[0]
    assert booked["mentor_id"] == both
    await probe.submit(agency, referral(second, language=rare))
    rid2 = await _accepted(probe, cluster, agency, second)
    await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid2)
    if confirmed:
        await probe.rpc("scheduling", "session", {"session_id": booked["sessions"][0]["session_id"],
                                                  "action": "confirm"})

    report = await probe.rpc("scheduling", "plan", {})

    if confirmed:
        assert report["placed"] == 0 and report["moved"] == 0, "a confirmed session never moves"
        assert (await probe.rpc("scheduling", "status", {"referral_id": rid1}))["mentor_id"] == both
        return
    assert report["placed"] >= 1 and report["moved"] >= 1
    placed = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid2))[0]
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid1))[0]
    assert placed["mentor_id"] == both
    assert moved["previous_mentor_id"] == both and moved["mentor_id"] == one
