"""The referral contract's limits, the same on both doors: a body over REROUTE_INTAKE_MAX_BODY_BYTES and a list over
its bound are rejected saying which limit, over NATS as over HTTP, and nothing about them holds up anyone else's
referral."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.contracts.codes import INDICATOR_CODES
from tests.support.cluster import Cluster, Probe, intake_url, mentor, referral, register_agency, unique, unique_language

pytestmark = pytest.mark.e2e

LIMIT = 64 * 1024  # REROUTE_INTAKE_MAX_BODY_BYTES, as the test cluster runs it (the default)


async def test_a_557_kib_referral_over_nats_is_rejected_naming_the_limit_and_the_next_one_is_scheduled(
    cluster: Cluster, probe: Probe
) -> None:
    lang, big_agency, next_agency = unique_language(), unique("yot"), unique("school")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    big_id, next_id = unique("BIG"), unique("REF")
    big = json.dumps(referral(big_id, language=lang, indicators=["peers_offending"] * 30_000)).encode()
    assert 550 * 1024 < len(big) < 1024 * 1024, "the issue's referral: over the HTTP limit, under NATS's max_payload"

    await probe.submit(big_agency, big)
    await probe.submit(next_agency, referral(next_id, language=lang))

    rejected = (await probe.wait_for(cluster.subjects.rejected(big_agency),
                                     lambda e: e["agency_referral_id"] == big_id))[0]
    assert rejected["errors"] == [{"field": "", "message": (
        f"body is {len(big)} bytes, over the limit of {LIMIT} bytes (REROUTE_INTAKE_MAX_BODY_BYTES): send referrals "
        "one at a time, within the contract's limits")}]
    accepted = (await probe.wait_for(cluster.subjects.accepted(next_agency),
                                     lambda e: e["agency_referral_id"] == next_id))[0]
    rid = accepted["referral_id"]
    await probe.wait_for(cluster.subjects.assessed(next_agency), lambda e: e["referral_id"] == rid, timeout=15)
    await probe.wait_for(cluster.subjects.scheduled(next_agency), lambda e: e["referral_id"] == rid, timeout=15)
    assert not probe.matching(cluster.subjects.accepted(big_agency)), "nothing was stored for the big one"
    kept = (await probe.rpc("intake", "deadletters.list", {}))["dead_letters"]
    assert not [d for d in kept if d["subject"] == cluster.subjects.submitted(big_agency)], "a rejection, not poison"


async def test_a_list_over_its_limit_is_rejected_naming_the_field_over_nats_and_over_http(
    cluster: Cluster, probe: Probe
) -> None:
    agency, lang = unique("yot"), unique_language()
    key = await register_agency(probe, agency)
    too_many = [*sorted(INDICATOR_CODES), "peers_offending"]  # every code once, and one again: 31
    over_nats, over_http, at_limit = unique("NATS"), unique("HTTP"), unique("ALL")
    expected = [{"field": "indicators", "message": "too many: at most 30 items, not 31"}]

    await probe.submit(agency, referral(over_nats, language=lang, indicators=too_many))
    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15) as http:
        answer = await http.post("/v1/referrals", json=referral(over_http, language=lang, indicators=too_many),
                                 headers={"Authorization": f"Bearer {key}"})
    await probe.submit(agency, referral(at_limit, language=lang, indicators=sorted(INDICATOR_CODES)))

    rejected = (await probe.wait_for(cluster.subjects.rejected(agency),
                                     lambda e: e["agency_referral_id"] == over_nats))[0]
    assert rejected["errors"] == expected
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == expected
    await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == at_limit)
