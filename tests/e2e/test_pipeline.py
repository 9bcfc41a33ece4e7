"""The referral pipeline end to end: real NATS, the three services as processes, a real database."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

import pytest

from shared.telemetry import StoredSpan
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def test_referral_flows_through_all_three_services_in_one_trace(cluster: Cluster, probe: Probe) -> None:
    lang, agency = unique_language(), unique("yot")
    imported = await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    assert imported["imported"] == 1
    arid = unique("REF")

    await probe.submit(agency, referral(arid, language=lang))

    accepted = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0]
    rid = accepted["referral_id"]
    assessed = (await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] == rid))[0]
    scheduled = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]

    assert accepted["agency_id"] == agency
    assert assessed["tier"] in {"low", "medium", "high", "very_high"}
    assert {"likelihood", "harm", "wellbeing", "reasons", "needs", "rules_version"} <= assessed.keys()
    assert scheduled["sessions"], "at least one session is booked"
    first = datetime.fromisoformat(scheduled["sessions"][0]["start"])
    assert first.utcoffset() is not None, "session times carry their offset"

    spans = await _spans_of(cluster, rid, services={"intake", "risk", "scheduling"})
    assert len({s.trace_id for s in spans}) == 1, "one trace per referral across the three services"


async def _spans_of(cluster: Cluster, referral_id: str, *, services: set[str], timeout: float = 10) -> list[StoredSpan]:
    def spans() -> list[StoredSpan]:
        return [s for s in cluster.spans() if s.attributes.get("referral.id") == referral_id]

    await wait_until(lambda: {s.service for s in spans()} >= services, timeout=timeout, every=0.2,
                     what=lambda: f"spans from {sorted(services)} (only from {sorted({s.service for s in spans()})})")
    return spans()


async def test_the_same_referral_submitted_twice_is_one_referral_with_one_set_of_sessions(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency = unique_language(), unique("school")
    mentor_id = unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang)]})
    body = referral(unique("REF"), language=lang)

    await probe.submit(agency, body)
    await probe.submit(agency, body)

    accepted = await probe.wait_for(cluster.subjects.accepted(agency), count=2)
    assert len({e["referral_id"] for e in accepted}) == 1
    assert sorted(e["duplicate"] for e in accepted) == [False, True]
    rid = accepted[0]["referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)
    # risk and scheduling have dealt with the repeat, and scheduling with whatever risk made of it: a wrongly
    # repeated assessment or booking would be in the streams now
    s = cluster.subjects
    await probe.wait_processed(s.recorded(agency), by=[s.durable("risk", "recorded"),
                                                       s.durable("scheduling", "recorded")])
    await probe.wait_processed(s.assessed(agency), by=[s.durable("scheduling", "assessed")])
    assert await probe.stored_count(s.assessed(agency)) == 1
    assert await probe.stored_count(s.scheduled(agency)) == 1
    calendar = await probe.rpc("scheduling", "calendar", {"mentor_id": mentor_id, "days": 60})
    booked = [s for s in calendar["sessions"] if s["case"] == rid]
    scheduled = probe.matching(cluster.subjects.scheduled(agency))[0]
    assert len(booked) == len(scheduled["sessions"])


MALFORMED = [
    pytest.param(b"{not json", "", "not valid JSON", id="not-json"),
    pytest.param(b"[1, 2]", "", "JSON object", id="not-an-object"),
    pytest.param({"drop": "young_person"}, "young_person", "required", id="missing-field"),
    pytest.param({"set": ("prior_proven_offences", "many")}, "prior_proven_offences", "whole number", id="wrong-type"),
    pytest.param({"set_yp": ("date_of_birth", "2011-02-31")}, "young_person.date_of_birth", "YYYY-MM-DD", id="bad-date"),
    pytest.param({"set_yp": ("borough", "Atlantis")}, "young_person.borough", "not a London borough", id="bad-borough"),
    pytest.param({"set": ("indicators", ["knife_crime"])}, "indicators[0].code", "unknown indicator code",
                 id="unknown-indicator"),
    pytest.param({"set": ("consent", {"given": False, "recorded_at": "2026-11-20T10:00:00+00:00"})}, "consent",
                 "consent has not been given", id="no-consent"),
    pytest.param({"set": ("ethnicity", "x")}, "ethnicity", "unknown field", id="field-not-in-contract"),
]


@pytest.mark.parametrize(("change", "field", "message"), MALFORMED)
async def test_malformed_body_is_rejected_with_a_specific_error_and_the_next_referral_still_flows(
    cluster: Cluster, probe: Probe, change: bytes | dict[str, object], field: str, message: str
) -> None:
    lang, agency = unique_language(), unique("police")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    arid = unique("BAD")
    body: dict[str, object] | bytes
    if isinstance(change, bytes):
        body = change
    else:
        body = referral(arid, language=lang)
        if "drop" in change:
            del body[change["drop"]]  # type: ignore[arg-type]
        if "set" in change:
            key, value = change["set"]  # type: ignore[misc]
            body[key] = value
        if "set_yp" in change:
            key, value = change["set_yp"]  # type: ignore[misc]
            body["young_person"][key] = value  # type: ignore[index]

    await probe.submit(agency, body)
    rejected = (await probe.wait_for(cluster.subjects.rejected(agency)))[0]

    assert any(e["field"] == field and message in e["message"] for e in rejected["errors"]), rejected["errors"]
    if not isinstance(change, bytes):
        assert rejected["agency_referral_id"] == arid
    good = unique("GOOD")
    await probe.submit(agency, referral(good, language=lang))
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == good)
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == accepted[0]["referral_id"])
    assert not probe.matching(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)


async def test_every_problem_in_a_body_is_reported(cluster: Cluster, probe: Probe) -> None:
    agency = unique("charity")
    body = referral(unique("BAD"), language="en")
    body["young_person"]["gender"] = "boy"  # type: ignore[index]
    body["young_person"]["languages"] = ["english"]  # type: ignore[index]
    body["referrer"] = {"name": "No Contact", "role": "Teacher"}
    await probe.submit(agency, body)
    rejected = (await probe.wait_for(cluster.subjects.rejected(agency)))[0]
    fields = {e["field"] for e in rejected["errors"]}
    assert {"young_person.gender", "young_person.languages[0]", "referrer"} <= fields


async def test_twenty_referrals_at_once_never_double_book_a_mentor_or_exceed_caseload(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency = unique_language(), unique("yot")
    mentors = [mentor(unique("m"), language=lang, max_caseload=6) for _ in range(3)]
    await probe.rpc("scheduling", "mentors.import", {"mentors": mentors})
    arids = [unique("C") for _ in range(20)]

    await asyncio.gather(*(probe.submit(agency, referral(a, language=lang)) for a in arids))

    accepted = await probe.wait_for(cluster.subjects.accepted(agency), count=20, timeout=15)
    ids = {e["referral_id"] for e in accepted}
    done = lambda e: e["referral_id"] in ids
    await wait_until(lambda: len(probe.matching(cluster.subjects.scheduled(agency), done)) + len(
        probe.matching(cluster.subjects.waitlisted(agency), done)) >= 20, timeout=20, every=0.2,
        what="every referral being scheduled or waitlisted")

    scheduled = probe.matching(cluster.subjects.scheduled(agency), done)
    waitlisted = probe.matching(cluster.subjects.waitlisted(agency), done)
    assert len(scheduled) == 18 and len(waitlisted) == 2, "3 mentors × caseload 6"
    assert all("caseload" in w["reason"] for w in waitlisted)
    for m in mentors:
        calendar = await probe.rpc("scheduling", "calendar", {"mentor_id": m["id"], "days": 60})
        sessions = sorted((datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in calendar["sessions"])
        for (_, end), (start, _) in itertools.pairwise(sessions):
            assert end <= start, f"{m['id']} is double-booked"
        assert len({s["case"] for s in calendar["sessions"]}) <= m["max_caseload"]
