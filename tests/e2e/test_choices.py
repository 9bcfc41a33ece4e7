"""A scheduler's view: recommendations with reasons, a chosen assignment, and the waitlist."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.replies import refusal

pytestmark = pytest.mark.e2e


async def test_recommend_shows_the_best_options_and_why_each_other_mentor_is_out(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("REC")
    ok1, ok2, full, far, rotl = (unique(p) for p in ("ok1", "ok2", "full", "far", "rotl"))
    mentors = [
        mentor(ok1, language=lang), mentor(ok2, language=lang),
        mentor(full, language=lang, max_caseload=0),
        mentor(far, language=lang, borough="Croydon"),
        mentor(rotl, language=lang, kind="rotl", licence={"return_by": "17:00", "exclusion_zones": ["Hackney"]}),
    ]
    await probe.rpc("scheduling", "mentors.import", {"mentors": mentors})
    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

    r = await probe.rpc("scheduling", "recommend", {"referral_id": rid})

    assert {o["mentor_id"] for o in r["options"]} == {ok1, ok2}
    assert [o["breakdown"]["same_weekly_slot"] for o in r["options"]] == [3.0, 3.0]  # S09, every week kept
    # A venue in the young person's own borough (registered ones in Hackney, or the office), so no journey out.
    assert [(bool(o["venue"]), o["route"]) for o in r["options"]] == [(True, ["Hackney"])] * 2
    reasons = {e["mentor_id"]: e["reason"] for e in r["excluded"]}
    assert "caseload" in reasons[full]
    assert "does not cover Hackney" in reasons[far]
    assert "exclusion zone" in reasons[rotl]


async def test_assign_refuses_an_infeasible_mentor_naming_the_constraint_and_books_a_feasible_one(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("ASG")
    first, second, far = unique("m1"), unique("m2"), unique("far")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(first, language=lang), mentor(second, language=lang), mentor(far, language=lang, borough="Bexley")]})
    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    other = second if booked["mentor_id"] == first else first

    refused = await probe.rpc("scheduling", "assign", {"referral_id": rid, "mentor_id": far, "by": "Kim",
                                                       "reason": "Knows the family"})
    assert refusal(refused).code == "refused" and "does not cover Hackney" in refusal(refused).message
    no_reason = await probe.rpc("scheduling", "assign", {"referral_id": rid, "mentor_id": other, "by": "Kim"})
    assert "why (reason)" in refusal(no_reason).message

    done = await probe.rpc("scheduling", "assign", {"referral_id": rid, "mentor_id": other, "by": "Kim",
                                                    "reason": "Shared interest in boxing"})
    assert done["mentor_id"] == other
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]
    assert moved["previous_mentor_id"] == booked["mentor_id"] and moved["mentor_id"] == other
    assert moved["reason"] == "the service chose another mentor for the young person", "no operator's name or note"
    said = (await probe.rpc("scheduling", "status", {"referral_id": rid}))["reason"]
    assert said == "assigned by Kim: Shared interest in boxing", "schedulers keep who chose and why"
    assert sorted(moved["cancelled"]) == sorted(s["session_id"] for s in booked["sessions"])


async def test_the_waitlist_says_who_waits_why_and_what_would_place_them(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("WL")
    busy = unique("busy")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(busy, language=lang, max_caseload=0)]})
    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid)

    waiting = {w["referral_id"]: w for w in (await probe.rpc("scheduling", "waitlist", {}))["waiting"]}

    assert "at caseload" in waiting[rid]["reason"]
    assert waiting[rid]["would_place"] == f"one more place with {busy}"
