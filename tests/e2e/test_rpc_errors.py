"""Every request gets an answer: a malformed one is refused as `invalid` naming the field, never left to time out."""

from __future__ import annotations

import json

from tests.support.cluster import Cluster, Probe
from tests.support.replies import refusal


async def test_a_request_of_the_wrong_shape_is_refused_naming_the_field(cluster: Cluster, probe: Probe) -> None:
    wrong_type = await probe.rpc("risk", "assessment", {"referral_id": 5})
    missing = await probe.rpc("scheduling", "assign", {"referral_id": "ref_1"})
    unknown_field = await probe.rpc("intake", "status", {"referral_id": "ref_1", "agency_secret": "x"})

    assert refusal(wrong_type).code == "invalid" and "referral_id" in refusal(wrong_type).message
    assert refusal(missing).code == "invalid" and "mentor_id" in refusal(missing).message
    assert refusal(unknown_field).code == "invalid" and "agency_secret" in refusal(unknown_field).message


async def test_a_body_that_is_not_json_is_refused_and_the_service_keeps_answering(cluster: Cluster, probe: Probe) -> None:
    for body in (b"not json", b"\xff\xfe", b"[1, 2]"):
        reply = json.loads((await probe.nc.request(cluster.subjects.rpc("scheduling", "waitlist"), body,
                                                   timeout=10)).data)
        assert refusal(reply).code == "invalid", body
    assert "waiting" in await probe.rpc("scheduling", "waitlist", {})

