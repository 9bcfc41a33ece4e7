"""One referral, one trace: its submission over HTTP, the agency's update (over NATS) and a risk lead's override are all in
the trace it was first accepted under (the callers' own traces linked to it), HTTP spans follow the semantic
conventions, and `reroute trace` shows it all in time order as soon as the outcome is out; with OTLP set, the
spans reach a real OTLP receiver and `reroute trace` says where they went."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from shared.telemetry import StoredSpan
from tests.support.cli import reroute
from tests.support.cluster import (
    Cluster,
    Probe,
    launch_cluster,
    mentor,
    referral,
    register_agency,
    unique,
    unique_language,
)
from tests.support.otlp import OtlpReceiver, otlp_receiver
from tests.support.shipped_rules import shipped
from tests.support.suite import RUN_ID, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

AGENCY_TRACE = "5a0c1e2d3b4f5a6b7c8d9e0f1a2b3c4d"
"""The trace the agency's own system sends its submission in (W3C traceparent): the referral's trace."""
UPDATE_TRACE = "0f0e0d0c0b0a09080706050403020100"
"""The agency's trace for its later update: a trace of its own, linked to the referral's."""


def _traceparent(trace_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}


async def test_submission_update_and_override_are_one_trace_that_reroute_trace_shows_in_time_order(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("TR")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    key = await register_agency(probe, agency)
    auth = {"Authorization": f"Bearer {key}"}
    body = referral(arid, language=lang, indicators=["peers_offending"])

    posted = await http.post("/v1/referrals", json=body, headers={**auth, **_traceparent(AGENCY_TRACE)})
    assert posted.status_code == 202, posted.text
    rid = posted.json()["referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

    # right after the outcome is out, `reroute trace` has it (spans leave each service within 0.2 s)
    async def shown(*names: str) -> bool:
        out = await asyncio.to_thread(reroute, cluster, cluster.data_dir, "trace", rid)
        return out.returncode == 0 and all(n in out.stdout for n in names)

    await wait_until(lambda: shown("POST /v1/referrals", "risk process", "scheduling process"), timeout=5, every=0.1,
                     what="reroute trace showing intake's, risk's and scheduling's spans")

    changed = {**body, "indicators": ["peers_offending", "ete_disengaged"]}
    await probe.nc.jetstream().publish(cluster.subjects.updated(agency), json.dumps(changed).encode(),
                                       headers={**_traceparent(UPDATE_TRACE), "Nats-Msg-Id": unique("upd")})
    await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] == rid and e["number"] == 2)
    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "very_high", "by": "Ana Lee",
                                         "reason": "New intelligence of a threat"})  # raising: one step
    await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid)
    status = await http.get(f"/v1/referrals/{rid}", headers=auth)
    assert status.status_code == 200, status.text

    def of_referral() -> list[StoredSpan]:
        spans = cluster.spans()
        ours = {s.trace_id for s in spans if s.attributes.get("referral.id") == rid}
        return [s for s in spans if s.trace_id in ours]

    def named(prefix: str, service: str) -> list[StoredSpan]:
        return [s for s in of_referral() if s.service == service and s.name.startswith(prefix)]

    def replans() -> list[StoredSpan]:
        return [s for s in named("scheduling process", "scheduling") if "risk.assessed" in s.name]

    def complete() -> bool:  # each service exports its own spans, within 0.2 s of each other
        return (len(replans()) >= 3 and bool(named("GET /v1/referrals/{referral_id}", "intake"))
                and bool(named("risk override", "risk")) and bool(named("intake referral updated", "intake")))

    await wait_until(complete, timeout=10, every=0.1,
                     what=lambda: f"every span of the referral (have {[s.name for s in of_referral()]})")
    spans = of_referral()
    own = [s for s in spans if s.trace_id == AGENCY_TRACE]
    by_name = {s.name: s for s in own}

    # the referral's own trace holds every step of it, in each service
    assert "POST /v1/referrals" in by_name and "intake referral updated" in by_name and "risk override" in by_name
    assert len([s for s in own if s.name.startswith("risk process")]) == 2, "assessed, then re-assessed"
    assert len([s for s in replans() if s.trace_id == AGENCY_TRACE]) == 3, "booked, then the update's, the override's"
    override = by_name["risk override"]
    assert override.attributes["referral.id"] == rid and override.attributes["risk.tier"] == "very_high"
    assert override.attributes["reroute.outcome"] == "tier_decided"
    replan = [s for s in own if s.parent_id == override.span_id]
    assert [s.service for s in replan] == ["scheduling"], "the re-plan the override caused is its child"
    update = by_name["intake referral updated"]
    assert {link["trace_id"] for link in update.links} == {UPDATE_TRACE}, "linked to the agency's update request"

    # the callers' own traces: the update request and the status poll, each linked to the referral's trace
    door = next(s for s in spans if s.trace_id == UPDATE_TRACE and s.name.startswith("intake process"))
    assert door.attributes["referral.id"] == rid and door.attributes["reroute.outcome"] == "updated"
    assert AGENCY_TRACE in {link["trace_id"] for link in door.links}
    get = next(s for s in spans if s.name == "GET /v1/referrals/{referral_id}")
    assert get.attributes["referral.id"] == rid and get.attributes["http.response.status_code"] == 200
    assert AGENCY_TRACE in {link["trace_id"] for link in get.links}
    posted_span = by_name["POST /v1/referrals"]
    assert posted_span.attributes["http.request.method"] == "POST"
    assert posted_span.attributes["http.route"] == "/v1/referrals"
    assert posted_span.attributes["url.path"] == "/v1/referrals"
    assert posted_span.attributes["http.response.status_code"] == 202
    assert posted_span.attributes["referral.id"] == rid
    assert not [s.name for s in spans if s.name.startswith(("intake GET", "intake POST", "GET GET"))]

    out = reroute(cluster, cluster.data_dir, "trace", rid)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    traces = [line.split("trace ")[1].strip() for line in lines if line.startswith("trace ")]
    assert traces[0] == AGENCY_TRACE and UPDATE_TRACE in traces, out.stdout
    order = [next(i for i, line in enumerate(lines) if name in line)
             for name in ("POST /v1/referrals", "intake referral updated", "risk override")]
    assert order == sorted(order), f"in time order:\n{out.stdout}"


async def test_a_replan_scheduling_starts_itself_and_a_closure_continue_the_referrals_trace(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("LT"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang)]})
    await probe.submit(agency, referral(arid, language=lang), headers={**_traceparent(AGENCY_TRACE[::-1]),
                                                                     "Nats-Msg-Id": unique("sub")})
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    day = datetime.fromisoformat(booked["sessions"][1]["start"]).astimezone(ZoneInfo("Europe/London")).date()

    await probe.rpc("scheduling", "mentors.leave", {"mentor_id": mentor_id, "first_day": day.isoformat(),
                                                    "last_day": day.isoformat()})  # a mentor's leave: no one asked
    await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid)

    def moved() -> list[StoredSpan]:
        return [s for s in cluster.spans() if s.name == "scheduling move sessions for leave"
                and s.attributes.get("referral.id") == rid]

    await wait_until(lambda: bool(moved()), timeout=10, every=0.1, what="the leave's span")
    assert [s.trace_id for s in moved()] == [AGENCY_TRACE[::-1]], "in the referral's own trace"

    await probe.rpc("scheduling", "session", {"session_id": booked["sessions"][0]["session_id"], "action": "cancel",
                                              "reason": "Exams"})
    await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid)
    await probe.rpc("scheduling", "close", {"referral_id": rid, "by": "Kim Operator", "reason": "moved away"})
    await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid, count=2)

    def decided() -> list[StoredSpan]:
        return [s for s in cluster.spans() if s.name in ("scheduling session cancel", "scheduling close referral")
                and s.attributes.get("referral.id") == rid]

    await wait_until(lambda: len(decided()) == 2, timeout=10, every=0.1, what="the cancellation's and closure's spans")
    assert {s.trace_id for s in decided()} == {AGENCY_TRACE[::-1]}, "a scheduler's decisions are in it too"


async def test_a_waitlisted_referral_placed_later_is_placed_in_its_own_trace(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("WT")
    own_trace = "1234567890abcdef1234567890abcdef"
    await probe.submit(agency, referral(arid, language=lang), headers={**_traceparent(own_trace),
                                                                     "Nats-Msg-Id": unique("sub")})
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid)  # no mentor speaks it

    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

    def retried() -> list[StoredSpan]:
        return [s for s in cluster.spans() if s.name == "scheduling retry waitlisted"
                and s.attributes.get("referral.id") == rid]

    await wait_until(lambda: bool(retried()), timeout=10, every=0.1, what="the waitlist retry's span")
    assert [s.trace_id for s in retried()] == [own_trace], "in the referral's own trace"


async def test_reroute_trace_says_no_spans_for_an_unknown_referral(cluster: Cluster) -> None:
    out = reroute(cluster, cluster.data_dir, "trace", "ref_0000000000000000")
    assert out.returncode == 1
    assert "no spans of ref_0000000000000000" in out.stdout, out.stdout


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def otlp_cluster(nats_server: tuple[str, bool], otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Cluster]:
    """Services exporting over OTLP/HTTP to the receiver (and nowhere else)."""
    name = f"otlp{RUN_ID}"
    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url}
    c = launch_cluster(nats_server[0], tmp_path_factory.mktemp("otlp"), namespace=f"t{name}", schema_prefix=f"t{name}",
                       per_service={s: exporting for s in ("intake", "risk", "scheduling")})
    with running(c):
        yield c


async def test_with_otlp_spans_reach_the_backend_as_one_trace_and_reroute_trace_says_where(
    otlp_cluster: Cluster, otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = await Probe.open(otlp_cluster.nats_url, otlp_cluster.subjects)
    try:
        lang, agency = unique_language(), unique("yot")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        arid = unique("OT")
        await probe.submit(agency, referral(arid, language=lang))
        accepted = (await probe.wait_for(otlp_cluster.subjects.accepted(agency),
                                         lambda e: e["agency_referral_id"] == arid))[0]
        rid = accepted["referral_id"]
        await probe.wait_for(otlp_cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)
        await probe.rpc("risk", "override", {"referral_id": rid, "tier": "very_high", "by": "Ana Lee",
                                             "reason": "New intelligence of a threat"})
        await probe.wait_for(otlp_cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid)
    finally:
        await probe.close()

    def received() -> list[str]:
        return sorted(f"{s.service}: {s.name}" for s in otlp.spans() if s.attributes.get("referral.id") == rid)

    await wait_until(lambda: any(n.startswith("risk: risk override") for n in received())
                     and {n.split(":")[0] for n in received()} == {"intake", "risk", "scheduling"}, timeout=10,
                     every=0.1, what=lambda: f"the referral's spans at the OTLP receiver (have {received()})")
    ours = [s for s in otlp.spans() if s.attributes.get("referral.id") == rid]
    assert len({s.trace_id for s in ours}) == 1, "one trace, override included"
    assert not list((otlp_cluster.data_dir / "traces").glob("*.jsonl")), "no local files that nobody reads"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url)
    out = reroute(otlp_cluster, otlp_cluster.data_dir, "trace", rid)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{otlp.url}/v1/traces" in out.stdout and f"referral.id={rid}" in out.stdout
    assert "no spans" not in out.stdout


async def test_a_rescore_under_new_rules_is_in_each_referrals_own_trace(
    otlp_cluster: Cluster, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    referral_trace_id = "feedfacefeedfacefeedfacefeedface"
    probe = await Probe.open(otlp_cluster.nats_url, otlp_cluster.subjects)
    try:
        lang, agency, arid = unique_language(), unique("yot"), unique("RS")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        await probe.submit(agency, referral(arid, language=lang), headers={**_traceparent(referral_trace_id),
                                                                         "Nats-Msg-Id": unique("sub")})
        rid = (await probe.wait_for(otlp_cluster.subjects.accepted(agency),
                                    lambda e: e["agency_referral_id"] == arid))[0]["referral_id"]
        await probe.wait_for(otlp_cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

        rules = copy.deepcopy(shipped())  # a new version deployed as the README says: REROUTE_RULES_FILE, restart
        # risk, rescore (a copy: shipped() is cached, and the unit tests read the shipped version from it)
        rules["version"] = "9.9.9"  # a version no other test's referral was assessed under
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True), encoding="utf-8")
        otlp_cluster.processes.stop("risk")
        otlp_cluster.processes.per_service["risk"] = {**otlp_cluster.processes.per_service.get("risk", {}),
                                                      "REROUTE_RULES_FILE": str(path)}
        otlp_cluster.processes.start("risk")
        await otlp_cluster.wait_ready(("risk",))
        applied = await probe.rpc("risk", "rules.rescore", {"dry_run": False})
        assert applied["republished"] >= 1, applied
        await probe.wait_for(otlp_cluster.subjects.assessed(agency),
                             lambda e: e["referral_id"] == rid and e["rules_version"] == rules["version"])
    finally:
        await probe.close()

    def rescored() -> list[str]:
        return [s.trace_id for s in otlp.spans() if s.name == "risk rescore" and s.attributes.get("referral.id") == rid]

    await wait_until(lambda: bool(rescored()), timeout=10, every=0.1, what="the rescore's span at the OTLP receiver")
    assert rescored() == [referral_trace_id]
