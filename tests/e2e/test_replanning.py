"""Re-planning when a referral's tier changes: only its future sessions move, at the new cadence."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language

pytestmark = pytest.mark.e2e


async def _scheduled(probe: Probe, cluster: Cluster, agency: str, arid: str) -> dict:  # type: ignore[type-arg]
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    rid = accepted[0]["referral_id"]
    return (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]


async def test_a_raised_tier_replans_the_same_mentor_at_the_new_cadence(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("RP"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang)]})
    await probe.submit(agency, referral(arid, language=lang, indicators=["peers_offending"]))
    scheduled = await _scheduled(probe, cluster, agency, arid)
    rid = scheduled["referral_id"]
    assert scheduled["tier"] == "low" and len(scheduled["sessions"]) == 3, "fortnightly over 28 days"

    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "very_high", "by": "Ana Lee",
                                         "reason": "New intelligence of a threat"})
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]

    assert moved["mentor_id"] == mentor_id == moved["previous_mentor_id"]
    assert moved["tier"] == "very_high" and "low → very_high" in moved["reason"]
    before = {s["session_id"] for s in scheduled["sessions"]}
    kept = before & {s["session_id"] for s in moved["sessions"]}
    assert sorted([*moved["cancelled"], *kept]) == sorted(before), "each old session is kept or cancelled"
    assert not kept & set(moved["cancelled"])
    assert len(moved["sessions"]) >= 8, "twice a week over 28 days"
    assert moved["sessions"][0] == scheduled["sessions"][0], "the same slot, where it still fits: the same session"
    calendar = await probe.rpc("scheduling", "calendar", {"mentor_id": mentor_id, "days": 60})
    by_status = {s["session_id"]: s["status"] for s in calendar["sessions"]}
    assert all(by_status[sid] == "cancelled" for sid in moved["cancelled"])
    assert all(by_status[s["session_id"]] == "booked" for s in moved["sessions"])
    booked = sorted(datetime.fromisoformat(s["start"]) for s in calendar["sessions"] if s["status"] == "booked")
    assert len(booked) == len(set(booked)), "no double booking"


async def test_a_tier_a_volunteer_may_not_take_moves_the_case_to_a_staff_mentor(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("RV")
    volunteer, staff = unique("vol"), unique("staff")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(volunteer, language=lang, kind="volunteer")]})
    await probe.submit(agency, referral(arid, language=lang, indicators=["peers_offending"]))
    scheduled = await _scheduled(probe, cluster, agency, arid)
    assert scheduled["mentor_id"] == volunteer
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(staff, language=lang, kind="staff")]})

    await probe.rpc("risk", "override", {"referral_id": scheduled["referral_id"], "tier": "high", "by": "Ana Lee",
                                         "reason": "Weapon seen"})
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency),
                                  lambda e: e["referral_id"] == scheduled["referral_id"]))[0]

    assert moved["previous_mentor_id"] == volunteer and moved["mentor_id"] == staff
    assert moved["reason"] == "tier changed low → high: new cadence; a new mentor takes over"
    said = (await probe.rpc("scheduling", "status", {"referral_id": scheduled["referral_id"]}))["reason"]
    assert f"{volunteer} cannot take a high case" in said, "schedulers see which rule moved the case"
