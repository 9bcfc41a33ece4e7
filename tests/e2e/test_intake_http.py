"""Intake's HTTP API for agencies, end to end: real NATS, the three services as processes, a real database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.telemetry import StoredSpan
from tests.support.cluster import (
    Cluster,
    Probe,
    bearer,
    fresh_language,
    intake_url,
    mentor,
    referral,
    register_agency,
    unique,
)
from tests.support.replies import refusal
from tests.support.suite import make_cluster, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def wait_for_status(http: httpx.AsyncClient, url: str, key: str, want: str, *, timeout: float = 15) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def reached() -> bool:
        answer = await http.get(url, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        last.update(answer.json())
        return bool(last["status"] == want)

    await wait_until(reached, timeout=timeout, every=0.2,
                     what=lambda: f"status {want} (it stayed {last['status']}: {last})")
    return last


async def test_post_gets_202_with_a_status_url_and_a_repeat_gets_the_same_referral(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency, lang = unique("yot"), "en"
    key = await register_agency(probe, agency)
    body = referral(unique("REF"), language=lang)

    first = await http.post("/v1/referrals", json=body, headers=bearer(key))
    again = await http.post("/v1/referrals", json=body, headers=bearer(key))

    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    rid = first.json()["referral_id"]
    assert again.json()["referral_id"] == rid
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert first.json()["status_url"].endswith(f"/v1/referrals/{rid}")
    assert first.headers["location"] == first.json()["status_url"]
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), count=2)
    assert {e["referral_id"] for e in accepted} == {rid}
    assert sorted(e["duplicate"] for e in accepted) == [False, True]
    assert all(e["status_url"] == first.json()["status_url"] for e in accepted), "NATS says where to follow it too"
    facts = await probe.wait_for(cluster.subjects.recorded(agency), count=2)
    assert all(e["person_id"] and e["referral_id"] == rid for e in facts)


async def test_the_http_request_and_the_events_it_causes_are_one_trace(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency, lang = unique("yot"), fresh_language()
    key = await register_agency(probe, agency)
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {**bearer(key), "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}

    answer = await http.post("/v1/referrals", json=referral(unique("REF"), language=lang), headers=headers)

    rid = answer.json()["referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid, timeout=15)
    def spans_of_the_referral() -> list[StoredSpan]:
        return [s for s in cluster.spans() if s.attributes.get("referral.id") == rid]

    await wait_until(lambda: {s.service for s in spans_of_the_referral()} >= {"intake", "risk", "scheduling"},
                     timeout=10, every=0.2, what="spans of the referral from intake, risk and scheduling")
    spans = spans_of_the_referral()
    assert {s.service for s in spans} >= {"intake", "risk", "scheduling"}
    assert {s.trace_id for s in spans} == {caller_trace}, "the caller's trace continues through every service"
    assert any(s.name == "POST /v1/referrals" for s in spans)


async def test_an_invalid_body_gets_422_with_the_same_errors_as_on_nats(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency = unique("police")
    key = await register_agency(probe, agency)
    body = referral(unique("BAD"), language="en")
    body["young_person"]["gender"] = "boy"
    body["referrer"] = {"name": "No Contact", "role": "Teacher"}

    answer = await http.post("/v1/referrals", json=body, headers=bearer(key))
    await probe.submit(agency, body)

    assert answer.status_code == 422
    refused = answer.json()
    assert refused["agency_referral_id"] == body["agency_referral_id"]
    assert {"young_person.gender", "referrer"} <= {e["field"] for e in refused["errors"]}
    on_nats = await probe.wait_for(cluster.subjects.rejected(agency), count=2)
    assert all(e["errors"] == refused["errors"] for e in on_nats), "one validator for both doors"
    assert not probe.matching(cluster.subjects.accepted(agency))


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"[" * 5000 + b"]" * 5000,
                                  b'{"prior_proven_offences": ' + b"9" * 5000 + b"}"],
                         ids=["not-json", "not-an-object", "empty", "nested-5000-deep", "5000-digit-number"])
async def test_an_unreadable_body_gets_422_naming_the_problem(
    probe: Probe, http: httpx.AsyncClient, body: bytes
) -> None:
    key = await register_agency(probe, unique("school"))
    answer = await http.post("/v1/referrals", content=body, headers={**bearer(key), "content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == ""


async def test_a_missing_wrong_or_revoked_key_gets_401_and_nothing_is_stored(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency = unique("charity")
    key = await register_agency(probe, agency)
    other = await register_agency(probe, unique("charity"))
    prefix, _, secret = key.rpartition(".")
    wrong = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {key}"},
        "garbage": bearer("not-a-key"),
        "wrong secret": bearer(f"{prefix}.{secret[::-1]}"),
        "unknown agency": bearer(f"rr1.{unique('nobody')}.{secret}"),
        "another agency's key with this agency's id": bearer(f"{prefix}.{other.rpartition('.')[2]}"),
    }
    arids = []
    for what, headers in wrong.items():
        arid = unique("NOPE")
        arids.append(arid)
        answer = await http.post("/v1/referrals", json=referral(arid, language="en"), headers=headers)
        assert answer.status_code == 401, what
        assert answer.headers["www-authenticate"] == "Bearer"

    await probe.rpc("intake", "agencies.revoke", {"agency_id": agency})
    revoked_arid = unique("NOPE")
    arids.append(revoked_arid)
    assert (await http.post("/v1/referrals", json=referral(revoked_arid, language="en"),
                            headers=bearer(key))).status_code == 401
    assert (await http.get("/v1/referrals/ref_0000000000000000", headers=bearer(key))).status_code == 401

    rotated = (await probe.rpc("intake", "agencies.rotate", {"agency_id": agency}))["api_key"]
    assert rotated != key
    assert (await http.post("/v1/referrals", json=referral(unique("OK"), language="en"),
                            headers=bearer(key))).status_code == 401, "the old key stays dead"
    assert (await http.post("/v1/referrals", json=referral(unique("OK"), language="en"),
                            headers=bearer(rotated))).status_code == 202, "the new key works at once"

    for arid in arids:
        stored = await probe.rpc("intake", "status", {"agency_id": agency, "agency_referral_id": arid})
        assert refusal(stored).code == "not_found"
    # intake publishes what a post caused before it answers the post, so the streams are final here
    assert await probe.stored_count(cluster.subjects.rejected(agency)) == 0
    assert await probe.stored_count(cluster.subjects.accepted(agency)) == 1, "only the new key's referral"


async def test_another_agencys_referral_is_not_found(probe: Probe, http: httpx.AsyncClient) -> None:
    mine, theirs = await register_agency(probe, unique("yot")), await register_agency(probe, unique("yot"))
    rid = (await http.post("/v1/referrals", json=referral(unique("REF"), language="en"),
                           headers=bearer(theirs))).json()["referral_id"]

    probing = await http.get(f"/v1/referrals/{rid}", headers=bearer(mine))
    unknown = await http.get("/v1/referrals/ref_ffffffffffffffff", headers=bearer(mine))

    assert probing.status_code == 404 and unknown.status_code == 404
    assert probing.json()["message"].replace(rid, "X") == unknown.json()["message"].replace("ref_ffffffffffffffff", "X")
    assert (await http.get(f"/v1/referrals/{rid}", headers=bearer(theirs))).status_code == 200


async def test_a_body_over_the_limit_gets_413(cluster: Cluster, probe: Probe, http: httpx.AsyncClient) -> None:
    agency = unique("yot")
    key = await register_agency(probe, agency)
    arid = unique("BIG")
    big = referral(arid, language="en", reason="x" * 70_000)

    declared = await http.post("/v1/referrals", json=big, headers=bearer(key))

    async def chunks() -> AsyncIterator[bytes]:
        data = json.dumps(big).encode()
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]

    streamed = await http.post("/v1/referrals", content=chunks(),
                               headers={**bearer(key), "content-type": "application/json"})

    assert declared.status_code == 413, declared.text
    assert streamed.status_code == 413, streamed.text
    assert "65536" in declared.json()["message"]
    assert refusal(await probe.rpc("intake", "status", {"agency_id": agency, "agency_referral_id": arid})).code == "not_found"


async def test_put_updates_a_referral_and_an_unknown_one_is_refused(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency = unique("yot")
    key = await register_agency(probe, agency)
    arid = unique("REF")
    body = referral(arid, language="en")
    rid = (await http.post("/v1/referrals", json=body, headers=bearer(key))).json()["referral_id"]

    changed = {**body, "indicators": ["weapon_carrying"]}
    updated = await http.put("/v1/referrals", params={"agency_referral_id": arid}, json=changed, headers=bearer(key))
    without_id = {k: v for k, v in changed.items() if k != "agency_referral_id"}
    same_again = await http.put("/v1/referrals", params={"agency_referral_id": arid}, json=without_id,
                                headers=bearer(key))
    new_arid = unique("NEW")
    unknown = await http.put("/v1/referrals", params={"agency_referral_id": new_arid},
                             json={**body, "agency_referral_id": new_arid}, headers=bearer(key))
    mismatch = await http.put("/v1/referrals", params={"agency_referral_id": arid},
                              json={**changed, "agency_referral_id": "OTHER"}, headers=bearer(key))

    assert updated.status_code == 202, updated.text
    assert updated.json() | {"status_url": ""} == {
        "referral_id": rid, "agency_referral_id": arid, "outcome": "updated", "duplicate": False, "revision": 1,
        "status_url": ""}
    assert same_again.status_code == 202 and same_again.json()["outcome"] == "duplicate"
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "agency_referral_id"
    assert "POST /v1/referrals" in unknown.json()["errors"][0]["message"]
    assert mismatch.status_code == 422 and mismatch.json()["errors"][0]["field"] == "agency_referral_id"
    assert "OTHER" not in mismatch.text, "the value given is never echoed"
    revisions = await probe.wait_for(cluster.subjects.recorded(agency), lambda e: e["revision"] == 1)
    assert revisions[0]["indicators"][0]["code"] == "weapon_carrying"


async def test_status_says_scheduled_with_the_first_session_and_the_mentors_first_name(
    probe: Probe, http: httpx.AsyncClient
) -> None:
    lang = fresh_language()
    key = await register_agency(probe, unique("yot"))
    await probe.rpc("scheduling", "mentors.import",
                    {"mentors": [mentor(unique("m"), language=lang, name="Amara Okafor")]})
    arid = unique("REF")
    url = (await http.post("/v1/referrals", json=referral(arid, language=lang), headers=bearer(key))).json()["status_url"]

    status = await wait_for_status(http, url, key, "scheduled")

    assert status["agency_referral_id"] == arid
    assert status["mentor_first_name"] == "Amara"
    assert status["tier"] in {"low", "medium", "high", "very_high"}
    assert status["first_session"] is not None and status["complete"] is True


async def test_status_says_waitlisted_with_the_reason(probe: Probe, http: httpx.AsyncClient) -> None:
    key = await register_agency(probe, unique("yot"))
    url = (await http.post("/v1/referrals", json=referral(unique("REF"), language=fresh_language()),
                           headers=bearer(key))).json()["status_url"]

    status = await wait_for_status(http, url, key, "waitlisted")

    assert status["reason"]
    assert status["mentor_first_name"] is None and status["first_session"] is None


async def test_openapi_is_served_at_docs(http: httpx.AsyncClient) -> None:
    docs = await http.get("/docs")
    document = (await http.get("/openapi.json")).json()

    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert {"/v1/referrals", "/v1/referrals/{referral_id}"} <= set(document["paths"])
    body = document["paths"]["/v1/referrals"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Referral"}
    assert "young_person" in document["components"]["schemas"]["Referral"]["properties"]


@pytest.fixture(scope="module")
def partial_cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of their own, so that risk and scheduling can be stopped to catch the earlier stages."""
    c = make_cluster(nats_server, Path(tmp_path_factory.mktemp("reroute-partial")), "part", isolated=True)
    with running(c):
        yield c


async def test_status_says_assessed_then_received_while_later_services_are_down(partial_cluster: Cluster) -> None:
    c = partial_cluster
    probe = await Probe.open(c.nats_url, c.subjects)
    try:
        key = await register_agency(probe, unique("yot"))
        async with httpx.AsyncClient(base_url=intake_url(c), timeout=20) as http:
            c.processes.stop("scheduling")
            url = (await http.post("/v1/referrals", json=referral(unique("REF"), language="en"),
                                   headers=bearer(key))).json()["status_url"]
            assessed = await wait_for_status(http, url, key, "assessed")
            assert assessed["tier"] and assessed["complete"] is False, "scheduling did not answer"

            c.processes.stop("risk")
            url = (await http.post("/v1/referrals", json=referral(unique("REF"), language="en"),
                                   headers=bearer(key))).json()["status_url"]
            received = await wait_for_status(http, url, key, "received")
            assert received["tier"] is None and received["complete"] is False
    finally:
        await probe.close()
