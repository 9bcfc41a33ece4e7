"""A closed referral is no longer due for review: `reroute reviews due` lists the tiers of open cases only."""

from __future__ import annotations

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language


async def test_a_referral_closed_by_the_service_is_not_due_for_review_and_an_open_one_still_is(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency = unique_language(), unique("yot")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    s = cluster.subjects
    ids = {}
    for arid in (unique("OPEN"), unique("CLOSED")):
        await probe.submit(agency, referral(arid, language=lang))
        ids[arid] = (await probe.wait_for(s.accepted(agency), lambda e, a=arid: e["agency_referral_id"] == a)
                     )[0]["referral_id"]
    open_id, closed_id = ids.values()
    for rid in ids.values():
        await probe.wait_for(s.assessed(agency), lambda e, r=rid: e["referral_id"] == r)
        await probe.wait_for(s.scheduled(agency), lambda e, r=rid: e["referral_id"] == r)

    closed = await probe.rpc("scheduling", "close", {"referral_id": closed_id, "by": "a scheduler",
                                                     "reason": "the family moved away"})
    assert closed.get("status") == "closed", closed
    due = {r["referral_id"] for r in (await probe.rpc("risk", "reviews.due", {"within_days": 365}))["reviews"]}

    assert open_id in due
    assert closed_id not in due
