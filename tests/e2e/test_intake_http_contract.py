"""Intake's HTTP API keeps its published contract: an OpenAPI document a third-party validator accepts, one error
shape for every refusal, a try-it page that needs no CDN, and referrals found and updated by the agency's own
reference, `/` and all, never another agency's. Real NATS, the three services as processes, a real database."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, bearer, referral, register_agency, unique

pytestmark = pytest.mark.e2e


def _ambiguous_paths(document: dict[str, Any]) -> list[str]:
    """Paths that differ only in their parameters' names, which the OpenAPI specification forbids (and which
    openapi-spec-validator lets pass)."""
    seen: dict[str, str] = {}
    clashes = []
    for path in document["paths"]:
        shape = re.sub(r"{[^}]+}", "{}", path)
        if shape in seen:
            clashes.append(f"{seen[shape]} and {path}")
        seen[shape] = path
    return clashes


async def test_the_openapi_document_passes_an_independent_validator(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()

    validate(document)  # openapi-spec-validator: raises on a document that breaks the specification
    assert _ambiguous_paths(document) == []
    assert document["servers"], "clients are told where the API answers"
    assert {(path, method) for path, ops in document["paths"].items() for method in ops} >= {
        ("/v1/referrals", "post"), ("/v1/referrals", "put"), ("/v1/referrals", "get"),
        ("/v1/referrals/{referral_id}", "get")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith("4"):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
                    assert {"code", "message"} <= set(schema["required"]), f"{method} {path} {status}"

    broken = {**document, "paths": {**document["paths"], "/v1/referrals/{agency_referral_id}": {
        "put": {**document["paths"]["/v1/referrals"]["put"], "parameters": [
            {"name": "agency_referral_id", "in": "path", "required": True, "schema": {"type": "string"}}]}}}}
    assert _ambiguous_paths(broken) == ["/v1/referrals/{referral_id} and /v1/referrals/{agency_referral_id}"]
    with pytest.raises(OpenAPIValidationError):
        validate({**document, "paths": {"/v1/referrals/{referral_id}": {
            "get": {"responses": {"200": {"description": "no parameter declared for the template"}}}}}})


async def test_every_refusal_has_a_code_and_a_message(probe: Probe, http: httpx.AsyncClient) -> None:
    key = await register_agency(probe, unique("yot"))
    small = referral(unique("REF"), language="en")

    answers = {
        "unauthorized": await http.post("/v1/referrals", json=small, headers=bearer("wrong")),
        "not_found": await http.get("/v1/referrals/ref_ffffffffffffffff", headers=bearer(key)),
        "method_not_allowed": await http.put("/v1/referrals/REF-1", json=small, headers=bearer(key)),
        "too_large": await http.post("/v1/referrals", json={**small, "reason": "x" * 70_000}, headers=bearer(key)),
        "invalid": await http.post("/v1/referrals", json={**small, "young_person": {}}, headers=bearer(key)),
    }
    missing_query = await http.get("/v1/referrals", headers=bearer(key))
    impossible = await http.get("/v1/referrals", params={"agency_referral_id": "A\x00B"}, headers=bearer(key))
    impossible_id = await http.get("/v1/referrals/ref%00", headers=bearer(key))

    for code, answer in answers.items():
        body = answer.json()
        assert body["code"] == code and body["message"], (code, answer.status_code, body)
    assert answers["unauthorized"].status_code == 401 and answers["unauthorized"].headers["www-authenticate"]
    assert "agency_referral_id=" in answers["method_not_allowed"].json()["message"], "the old PUT says where to go"
    assert "65536" in answers["too_large"].json()["message"]
    invalid = answers["invalid"].json()
    assert invalid["agency_referral_id"] == small["agency_referral_id"], "the 422 body agencies parse is kept"
    assert {e["field"] for e in invalid["errors"]} >= {"young_person.given_name"}
    assert missing_query.status_code == 422 and missing_query.json()["code"] == "invalid"
    assert missing_query.json()["errors"] == [{"field": "agency_referral_id", "message": (
        "required: give it in the query (?agency_referral_id=...)")}], "in reroute's words, not 'Field required'"
    assert impossible.status_code == 422, "a reference no referral can have (PostgreSQL cannot even compare a NUL)"
    assert impossible.json()["errors"] == [{"field": "agency_referral_id", "message": (
        "may hold only letters (A-Z, a-z), digits (0-9) and . _ : / -, no spaces")}], "not pydantic's pattern"
    assert impossible_id.status_code == 422 and [e["field"] for e in impossible_id.json()["errors"]] == ["referral_id"]


async def test_a_reference_with_slashes_is_found_and_updated_by_its_agency_only(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    agency, other = unique("yot"), unique("yot")
    key, other_key = await register_agency(probe, agency), await register_agency(probe, other)
    reference = f"YOT/2026/{unique('17')}"
    body = referral(reference, language="en")
    rid = (await http.post("/v1/referrals", json=body, headers=bearer(key))).json()["referral_id"]

    encoded = await http.get("/v1/referrals", params={"agency_referral_id": reference}, headers=bearer(key))
    raw = await http.get(f"/v1/referrals?agency_referral_id={reference}", headers=bearer(key))  # `/` as it is
    updated = await http.put("/v1/referrals", params={"agency_referral_id": reference},
                             json={k: v for k, v in body.items() if k != "agency_referral_id"} | {
                                 "indicators": ["weapon_carrying"]}, headers=bearer(key))
    theirs = await http.get("/v1/referrals", params={"agency_referral_id": reference}, headers=bearer(other_key))
    their_update = await http.put("/v1/referrals", params={"agency_referral_id": reference},
                                  json={**body, "indicators": []}, headers=bearer(other_key))

    assert encoded.status_code == 200, encoded.text
    assert encoded.json()["referral_id"] == rid and encoded.json()["agency_referral_id"] == reference
    assert raw.status_code == 200 and raw.json()["referral_id"] == rid
    assert updated.status_code == 202, updated.text
    assert (updated.json()["referral_id"], updated.json()["revision"]) == (rid, 1)
    assert theirs.status_code == 404 and theirs.json()["code"] == "not_found", "another agency cannot find it"
    assert their_update.status_code == 422, "nor update it: to them it was never submitted"
    assert (await http.get(f"/v1/referrals/{rid}", headers=bearer(key))).json()["revision"] == 1, "nothing changed"

    ours = await asyncio.to_thread(reroute, cluster, tmp_path, "status", reference)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert rid in ours.stdout and f"from {agency} (their ref {reference})" in ours.stdout
    by_agency = await asyncio.to_thread(reroute, cluster, tmp_path, "status", reference, "--agency", agency)
    assert by_agency.returncode == 0 and rid in by_agency.stdout
    elsewhere = await asyncio.to_thread(reroute, cluster, tmp_path, "status", reference, "--agency", other)
    assert elsewhere.returncode != 0 and rid not in elsewhere.stdout


async def test_our_id_wins_and_a_reference_two_agencies_use_must_name_the_agency(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    first, second = unique("yot"), unique("yot")
    keys = {first: await register_agency(probe, first), second: await register_agency(probe, second)}
    shared_reference = f"CASE/{unique('9')}"
    rids = {a: (await http.post("/v1/referrals", json=referral(shared_reference, language="en"),
                                headers=bearer(k))).json()["referral_id"] for a, k in keys.items()}
    # an agency whose own reference is another referral's id: `reroute status ID` means ours
    lookalike = (await http.post("/v1/referrals", json=referral(rids[first], language="en"),
                                 headers=bearer(keys[second]))).json()["referral_id"]

    both = await asyncio.to_thread(reroute, cluster, tmp_path, "status", shared_reference)
    named = await asyncio.to_thread(reroute, cluster, tmp_path, "status", shared_reference, "--agency", second)
    ours = await asyncio.to_thread(reroute, cluster, tmp_path, "status", rids[first])
    theirs = await asyncio.to_thread(reroute, cluster, tmp_path, "status", rids[first], "--agency", second)

    assert both.returncode != 0
    assert "several agencies" in both.stdout + both.stderr
    assert named.returncode == 0 and rids[second] in named.stdout
    assert ours.returncode == 0 and f"from {first} " in ours.stdout and lookalike not in ours.stdout
    assert theirs.returncode == 0 and lookalike in theirs.stdout


async def test_the_try_it_page_loads_nothing_from_elsewhere(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")

    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    scripts = re.findall(r"""url: ['"]([^'"]+)['"]""", page.text)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources + scripts), sources + scripts
    assert "cdn" not in page.text.lower()
    for source in sources:
        asset = await http.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    bundle = await http.get(next(s for s in sources if s.endswith(".js")))
    assert "SwaggerUIBundle" in bundle.text


def _consent(body: dict[str, Any], given: Any) -> dict[str, Any]:
    return {**body, "consent": {**body["consent"], "given": given}}


async def test_consent_and_counts_are_json_true_and_numbers_at_both_doors(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    """The published schema says consent.given is a boolean that must be true and a count an integer: "yes", 1,
    "true", "3" or true are refused naming the field, over HTTP and over NATS alike, and nothing is stored."""
    agency = unique("yot")
    key = await register_agency(probe, agency)
    bad = {f"{given!r}": (_consent(referral(unique("BAD"), language="en"), given), "consent.given")
           for given in ["yes", "1", 1, "true"]}
    bad["'3' offences"] = ({**referral(unique("BAD"), language="en"), "prior_proven_offences": "3"},
                           "prior_proven_offences")
    bad["true offences"] = ({**referral(unique("BAD"), language="en"), "prior_proven_offences": True},
                            "prior_proven_offences")
    good = {**referral(unique("GOOD"), language="en"), "prior_proven_offences": 3, "age_at_first_proven_offence": 12,
            "preferences": {"mentor_gender": "any", "mentor_gender_required": False}}
    good_on_nats = {**good, "agency_referral_id": unique("GOOD")}

    answers = {name: await http.post("/v1/referrals", json=body, headers=bearer(key)) for name, (body, _) in bad.items()}
    for body, _ in bad.values():
        await probe.submit(agency, body)
    accepted = await http.post("/v1/referrals", json=good, headers=bearer(key))
    await probe.submit(agency, good_on_nats)
    update = await http.put("/v1/referrals", params={"agency_referral_id": good["agency_referral_id"]},
                            json=_consent(good, "yes"), headers=bearer(key))

    for name, (body, field) in bad.items():
        answer = answers[name]
        assert answer.status_code == 422, (name, answer.text)
        errors = answer.json()["errors"]
        assert [e["field"] for e in errors] == [field], (name, errors)
        assert "must be" in errors[0]["message"] and "Input should" not in errors[0]["message"], errors
        published = await probe.wait_for(cluster.subjects.rejected(agency), count=2,  # one per door
                                         where=lambda e, b=body: e["agency_referral_id"] == b["agency_referral_id"])
        assert all(e["errors"] == errors for e in published), "one validator for both doors"
    assert "true or false" in answers["'yes'"].json()["errors"][0]["message"]
    assert "whole number" in answers["'3' offences"].json()["errors"][0]["message"]
    assert answers["true offences"].json()["errors"][0]["message"] == (
        "must be a whole number (a JSON number such as 3), not true/false")
    assert accepted.status_code == 202, accepted.text
    await probe.wait_for(cluster.subjects.accepted(agency),
                         lambda e: e["agency_referral_id"] == good_on_nats["agency_referral_id"])
    assert update.status_code == 422 and [e["field"] for e in update.json()["errors"]] == ["consent.given"]
    assert not probe.matching(cluster.subjects.accepted(agency),
                              lambda e: e["agency_referral_id"].startswith("BAD") or e["revision"] > 0)


@pytest.mark.parametrize(("body", "said"), [
    (b'{"agency_referral_id": "R', "body is not valid JSON: Unterminated string starting at line 1 column 24"),
    (b'{"agency_referral_id": "R-1", "prior_proven_offences": NaN}',
     "body is not valid JSON: NaN and Infinity are not JSON numbers"),  # Python's json reads NaN; JSON has none
])
async def test_a_body_that_is_not_json_is_refused_in_plain_words_at_both_doors(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient, body: bytes, said: str
) -> None:
    agency = unique("yot")
    key = await register_agency(probe, agency)

    answer = await http.post("/v1/referrals", content=body,
                             headers={**bearer(key), "content-type": "application/json"})
    await probe.submit(agency, body)

    assert answer.status_code == 422 and answer.json()["errors"] == [{"field": "", "message": said}]
    published = await probe.wait_for(cluster.subjects.rejected(agency), count=2)  # one per door
    assert all(e["errors"] == [{"field": "", "message": said}] for e in published), published
