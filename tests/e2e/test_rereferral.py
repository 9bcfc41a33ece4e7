"""A young person referred again keeps their person id, scores the repeat, and goes back to their mentor."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language

pytestmark = pytest.mark.e2e


async def test_a_re_referral_by_another_agency_goes_back_to_the_previous_mentor(cluster: Cluster, probe: Probe) -> None:
    lang = unique_language()
    first_mentor, other = unique("b-first"), unique("a-other")  # `other` sorts first: only continuity picks `first`
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(first_mentor, language=lang)]})
    school, police = unique("school"), unique("police")
    body = referral(unique("R1"), language=lang)
    body["young_person"]["given_name"] = "Kwabena"
    await probe.submit(school, body)
    first = (await probe.wait_for(cluster.subjects.recorded(school)))[0]
    await probe.wait_for(cluster.subjects.scheduled(school), lambda e: e["referral_id"] == first["referral_id"])
    await probe.rpc("scheduling", "close", {"referral_id": first["referral_id"], "reason": "Engaged well", "by": "Kim"})
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(other, language=lang)]})

    await probe.submit(police, {**body, "agency_referral_id": unique("R2")})
    second = (await probe.wait_for(cluster.subjects.recorded(police)))[0]
    assessed = (await probe.wait_for(cluster.subjects.assessed(police),
                                     lambda e: e["referral_id"] == second["referral_id"]))[0]
    scheduled = (await probe.wait_for(cluster.subjects.scheduled(police),
                                      lambda e: e["referral_id"] == second["referral_id"]))[0]

    assert second["person_id"] == first["person_id"]
    assert second["previously_referred"]["count"] == 1
    assert any(r["rule_id"] == "L06_referred_again_within_12_months" for r in assessed["likelihood"]["reasons"])
    assert scheduled["mentor_id"] == first_mentor
