"""Risk end to end: safeguarding alerts, the practitioner's review of a tier, and re-assessment on update."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.replies import refusal
from tests.support.risk import seen
from tests.support.shipped_rules import likelihood_points, with_points

pytestmark = pytest.mark.e2e
WEAPON = "L10_weapon_carrying"


async def _assessed(probe: Probe, cluster: Cluster, agency: str, arid: str, *, number: int = 1) -> dict:  # type: ignore[type-arg]
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    rid = accepted[0]["referral_id"]
    found = await probe.wait_for(cluster.subjects.assessed(agency),
                                 lambda e: e["referral_id"] == rid and e["number"] == number)
    return found[0]


async def test_a_threat_to_life_referral_raises_an_alert_and_is_very_high(cluster: Cluster, probe: Probe) -> None:
    agency, arid = unique("police"), unique("TTL")
    await probe.submit(agency, referral(arid, language="en", indicators=["threat_to_life_warning", "peers_offending"]))

    assessed = await _assessed(probe, cluster, agency, arid)
    alerts = await probe.wait_for(cluster.subjects.alert(agency), lambda e: e["referral_id"] == assessed["referral_id"])

    assert assessed["tier"] == "very_high"
    assert assessed["harm"]["tier"] == "very_high" and assessed["harm"]["floor"] == "very_high"
    alert = next(a for a in alerts if a["rule_id"].startswith("E02"))
    assert alert["actions"], "the alert says what to do"
    deadline = datetime.fromisoformat(alert["deadline"])
    assert deadline <= datetime.fromisoformat(alert["occurred_at"]) + timedelta(hours=24)
    assert "E02_threat_to_life_warning" in assessed["escalations"]
    assert any(r["rule_id"].startswith("E02") for r in assessed["reasons"])


async def test_override_up_then_a_countersigned_lowering_changes_the_published_tier_with_an_audit_trail(
    cluster: Cluster, probe: Probe
) -> None:
    agency, arid = unique("yot"), unique("OVR")
    await probe.submit(agency, referral(arid, language="en", indicators=["peers_offending"]))
    first = await _assessed(probe, cluster, agency, arid)
    rid, computed = first["referral_id"], first["computed_tier"]
    assert computed == "low"

    refused = await probe.rpc("risk", "override", {"referral_id": rid, "tier": "high", "by": "Ana Lee"})
    assert "needs a reason" in refusal(refused).message and refusal(refused).code == "refused"
    up = await probe.rpc("risk", "override", {"referral_id": rid, "tier": "high", "by": "Ana Lee",
                                              "reason": "Disclosed carrying a knife at interview"})
    assert up["assessment"]["tier"] == "high" and up["assessment"]["override"]["kind"] == "up"
    republished = await _assessed(probe, cluster, agency, arid, number=2)
    assert republished["tier"] == "high" and republished["computed_tier"] == "low"

    asked = await probe.rpc("risk", "override", {"referral_id": rid, "tier": "low", "by": "Ana Lee",
                                                 "reason": "Knife disclosure withdrawn"})
    assert asked["pending"]["tier"] == "low" and asked["pending"]["by"] == "Ana Lee"
    assert asked["assessment"]["tier"] == "high", "a lowering only asked for changes nothing yet"
    shown = await probe.rpc("risk", "assessment", {"referral_id": rid})
    assert shown["assessment"]["tier"] == "high" and shown["pending"]["tier"] == "low"
    waiting = (await probe.rpc("risk", "overrides.pending", {}))["lowerings"]
    assert [(w["tier"], w["by"]) for w in waiting if w["referral_id"] == rid] == [("low", "Ana Lee")]
    same_person = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "ana lee",
                                                                   "lowering": seen(shown)})
    assert "second person" in refusal(same_person).message and refusal(same_person).code == "refused"
    down = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy",
                                                            "lowering": seen(shown)})
    assert down["assessment"]["tier"] == "low"
    assert (await _assessed(probe, cluster, agency, arid, number=3))["tier"] == "low"
    waiting = (await probe.rpc("risk", "overrides.pending", {}))["lowerings"]
    assert rid not in {w["referral_id"] for w in waiting}, "a countersigned lowering waits no longer"

    history = (await probe.rpc("risk", "assessment", {"referral_id": rid}))["history"]
    assert [(h["tier"], h["cause"], h["by"]) for h in history] == [
        ("low", "referral", None), ("high", "override", "Ana Lee"), ("low", "override", "Ana Lee")]
    assert history[2]["countersigned_by"] == "Sam Roy" and history[2]["reason"] == "Knife disclosure withdrawn"


async def test_a_countersignature_naming_a_withdrawn_lowering_is_refused_and_the_new_one_stays_pending(
    cluster: Cluster, probe: Probe
) -> None:
    agency, arid = unique("yot"), unique("SEEN")
    await probe.submit(agency, referral(arid, language="en", indicators=["peers_offending"]))
    rid = (await _assessed(probe, cluster, agency, arid))["referral_id"]
    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "high", "by": "Ana Lee", "reason": "Knife seen"})
    first = await probe.rpc("risk", "override", {"referral_id": rid, "tier": "medium", "by": "Ana Lee",
                                                 "reason": "Calmer at school"})
    shown = await probe.rpc("risk", "assessment", {"referral_id": rid})
    assert shown["pending"] == first["pending"], "the second lead reads the case: a lowering to medium waits"

    withdrawn = await probe.rpc("risk", "override.refuse", {"referral_id": rid, "by": "Ana Lee",
                                                            "reason": "Asked too soon", "lowering": seen(shown)})
    assert withdrawn["assessment"]["tier"] == "high"
    second = await probe.rpc("risk", "override", {"referral_id": rid, "tier": "low", "by": "Ana Lee",
                                                  "reason": "Moved school"})
    signed = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy",
                                                              "lowering": seen(shown)})
    refused = await probe.rpc("risk", "override.refuse", {"referral_id": rid, "by": "Sam Roy",
                                                          "reason": "Not convinced", "lowering": seen(shown)})
    unnamed = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy"})

    said = refusal(signed)
    assert said.code == "refused", said
    assert said.message.startswith("the lowering you saw (to medium, asked by Ana Lee at "), said.message
    assert "was withdrawn by Ana Lee; the pending one asks for low (asked by Ana Lee at " in said.message
    assert "open the case again" in said.message
    assert refusal(refused).code == "refused" and "the pending one asks for low" in refusal(refused).message
    assert refusal(unnamed).code == "refused" and "name the lowering you countersign" in refusal(unnamed).message
    after = await probe.rpc("risk", "assessment", {"referral_id": rid})
    assert after["assessment"]["tier"] == "high" and len(after["history"]) == 2, "nothing signed, nothing published"
    assert after["pending"] == second["pending"], "the lowering to low still waits, unsigned and unrefused"

    down = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy",
                                                            "lowering": seen(after)})
    assert down["assessment"]["tier"] == "low" and down["assessment"]["override"]["reason"] == "Moved school"


async def test_a_countersignature_of_a_case_reassessed_since_it_was_read_is_refused_until_it_is_read_again(
    cluster: Cluster, probe: Probe
) -> None:
    agency, arid = unique("yot"), unique("READ")
    body = referral(arid, language="en", indicators=["peers_offending"])
    await probe.submit(agency, body)
    rid = (await _assessed(probe, cluster, agency, arid))["referral_id"]
    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "high", "by": "Ana Lee", "reason": "Knife seen"})
    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "medium", "by": "Ana Lee", "reason": "Calmer"})
    read = await probe.rpc("risk", "assessment", {"referral_id": rid})  # the second lead opens the case: assessment 2

    # the agency updates the referral meanwhile: new reasons, the lowering to medium still pending and still legal
    updated = {**body, "indicators": ["peers_offending", "unstructured_time"]}
    await probe.nc.jetstream().publish(cluster.subjects.updated(agency), json.dumps(updated).encode())
    again = await _assessed(probe, cluster, agency, arid, number=3)
    assert again["tier"] == "high" and "L17_unstructured_time_late_nights" in again["change"]["rules_added"]

    unread = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy",
                                                              "lowering": seen(read)})
    older = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy",  # an older client
                                                             "lowering": {k: v for k, v in seen(read).items()
                                                                          if k != "assessment_number"}})
    said = refusal(unread)
    assert said.code == "refused", said
    assert said.message.startswith("the case was re-assessed (assessment 3, at "), said.message
    assert said.message.endswith(") since you opened it (assessment 2): open it again"), said.message
    assert refusal(older).code == "refused" and "name the assessment of the case you read" in refusal(older).message
    after = await probe.rpc("risk", "assessment", {"referral_id": rid})
    assert after["assessment"]["tier"] == "high" and after["pending"] == read["pending"], "nothing signed"

    down = await probe.rpc("risk", "override.countersign", {"referral_id": rid, "by": "Sam Roy",
                                                            "lowering": seen(after)})
    assert down["assessment"]["tier"] == "medium" and down["assessment"]["number"] == 4


async def test_a_down_override_below_an_escalation_floor_is_refused(cluster: Cluster, probe: Probe) -> None:
    agency, arid = unique("yot"), unique("FLR")
    await probe.submit(agency, referral(arid, language="en", indicators=["weapon_carrying"]))
    first = await _assessed(probe, cluster, agency, arid)
    assert first["tier"] == "high" and first["harm"]["floor"] == "high"

    refused = await probe.rpc("risk", "override", {"referral_id": first["referral_id"], "tier": "medium",
                                                   "by": "Ana Lee", "reason": "Seems calmer"})

    assert "floor high" in refusal(refused).message and refusal(refused).code == "refused"
    current = await probe.rpc("risk", "assessment", {"referral_id": first["referral_id"]})
    assert current["assessment"]["tier"] == "high" and len(current["history"]) == 1
    assert current["pending"] is None, "refused when asked: nothing waits for a countersignature"


async def test_an_update_from_the_agency_reassesses_and_stores_the_diff(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("school"), unique("UPD")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    body = referral(arid, language=lang, indicators=["peers_offending"])
    await probe.submit(agency, body)
    first = await _assessed(probe, cluster, agency, arid)

    updated = {**body, "indicators": ["peers_offending", "weapon_carrying"]}
    await probe.nc.jetstream().publish(cluster.subjects.updated(agency), __import__("json").dumps(updated).encode())
    second = await _assessed(probe, cluster, agency, arid, number=2)

    assert second["tier"] == "high" and first["tier"] == "low"
    change = second["change"]
    assert change["cause"] == "update" and change["previous_tier"] == "low" and change["direction"] == "up"
    assert "L10_weapon_carrying" in change["rules_added"]
    history = (await probe.rpc("risk", "assessment", {"referral_id": first["referral_id"]}))["history"]
    assert [h["cause"] for h in history] == ["referral", "update"]
    assert "low → high" in history[1]["summary"]
    revisions = probe.matching(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    assert [e["revision"] for e in revisions] == [0, 1]


async def test_an_update_of_an_unknown_referral_is_rejected(cluster: Cluster, probe: Probe) -> None:
    agency, arid = unique("school"), unique("NOPE")
    await probe.nc.jetstream().publish(cluster.subjects.updated(agency),
                                       __import__("json").dumps(referral(arid, language="en")).encode())
    rejected = (await probe.wait_for(cluster.subjects.rejected(agency)))[0]
    assert rejected["errors"][0]["field"] == "agency_referral_id"
    assert "submit it on referrals.submitted first" in rejected["errors"][0]["message"]


async def test_rescore_dry_run_reports_changes_without_publishing(cluster: Cluster, probe: Probe) -> None:
    result = await probe.rpc("risk", "rules.rescore", {"dry_run": True})
    assert result["total"] >= 1 and result["republished"] == 0
    assert any("re-scored" in line or "referral" in line for line in result["lines"])


async def test_the_fairness_audit_counts_groups_from_monitoring_data_held_by_intake(
    cluster: Cluster, probe: Probe
) -> None:
    agency = unique("charity")
    for _ in range(3):
        await probe.submit(agency, referral(unique("EQ"), language="en",
                                            equality_monitoring={"ethnicity": "Test group", "religion": None}))
    await probe.wait_for(cluster.subjects.assessed(agency), count=3)
    result = await probe.rpc("intake", "audit", {"min_group_size": 10})
    text = "\n".join(result["lines"])
    assert "ethnicity" in text and "Test group" in text
    assert "<5" in text, "small counts are suppressed"


def test_the_shipped_rules_pass_the_check_and_a_prohibited_rule_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = subprocess.run([sys.executable, "-m", "apps.cli.main", "rules", "check",
                         "services/risk/rules/sos-risk-needs.yaml"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "rules.yaml"
    bad.write_text(with_points(WEAPON, {"stop_and_search": likelihood_points("weapon_carrying")}))
    refused = subprocess.run([sys.executable, "-m", "apps.cli.main", "rules", "check", str(bad)],
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "prohibited input" in refused.stdout + refused.stderr


async def test_rescore_apply_with_unchanged_rules_republishes_nothing(cluster: Cluster, probe: Probe) -> None:
    before = len(probe.events)
    result = await probe.rpc("risk", "rules.rescore", {"dry_run": False})
    assert result["republished"] == 0 and result["up"] == 0 and result["down"] == 0
    assert not [s for s, _, _ in probe.events[before:] if ".assessed." in s]


async def test_a_candidate_rules_file_is_previewed_never_applied(cluster: Cluster, probe: Probe) -> None:
    text = with_points(WEAPON, {"weapon_carrying": likelihood_points("weapon_carrying") + 4})
    refused = await probe.rpc("risk", "rules.rescore", {"dry_run": False, "rules_yaml": text})
    assert "can only be previewed" in refusal(refused).message and refusal(refused).code == "refused"
    preview = await probe.rpc("risk", "rules.rescore", {"dry_run": True, "rules_yaml": text, "rules_name": "v2.yaml"})
    assert preview["republished"] == 0 and preview["total"] >= 1
    broken = await probe.rpc("risk", "rules.rescore", {"dry_run": True, "rules_yaml": with_points(
        WEAPON, {"ethnicity": likelihood_points("weapon_carrying") + 4})})
    assert "prohibited input" in refusal(broken).message and refusal(broken).code == "refused"
