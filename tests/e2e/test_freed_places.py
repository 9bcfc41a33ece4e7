"""A closed case frees its mentor's place, and the case waiting for that mentor is booked at once, with no other
trigger (no mentor import, referral or round): whether a scheduler closes it or its agency withdraws it. Real NATS,
the services as processes, a real database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language

pytestmark = pytest.mark.e2e


async def _one_booked_one_waiting(cluster: Cluster, probe: Probe) -> tuple[str, str, str, str, str]:
    """A mentor with room for one case takes the first referral; the second waits at caseload.
    (agency, mentor, first's agency referral id, first's and second's referral ids)"""
    s, agency, lang, mentor_id = cluster.subjects, unique("yot"), unique_language(), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang, max_caseload=1)]})
    first, second = unique("TAKEN"), unique("WAITS")
    await probe.submit(agency, referral(first, language=lang))
    taken = (await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == first))[0]["referral_id"]
    (booked,) = await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == taken, timeout=30)
    assert booked["mentor_id"] == mentor_id
    await probe.submit(agency, referral(second, language=lang))
    waits = (await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == second))[0]["referral_id"]
    await probe.wait_for(s.waitlisted(agency), lambda e: e["referral_id"] == waits, timeout=30)
    waiting = await probe.rpc("scheduling", "status", {"referral_id": waits})
    assert waiting["status"] == "waitlisted" and "at caseload" in waiting["reason"], waiting
    return agency, mentor_id, first, taken, waits


async def _closed_by_scheduler(probe: Probe, agency: str, arid: str, rid: str) -> None:
    await probe.rpc("scheduling", "close", {"referral_id": rid, "by": "Kim Scheduler", "reason": "Moved out of area"})


async def _withdrawn_by_agency(probe: Probe, agency: str, arid: str, rid: str) -> None:
    await probe.withdraw(agency, arid, "moved_away")


@pytest.mark.parametrize("closing", [_closed_by_scheduler, _withdrawn_by_agency], ids=["closed", "withdrawn"])
async def test_a_closed_case_frees_its_mentor_for_the_case_waiting_for_them(
    cluster: Cluster, probe: Probe, closing: Callable[[Probe, str, str, str], Awaitable[None]]
) -> None:
    s = cluster.subjects
    agency, mentor_id, first, taken, waits = await _one_booked_one_waiting(cluster, probe)

    await closing(probe, agency, first, taken)

    (booked,) = await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == waits, timeout=30)
    assert booked["mentor_id"] == mentor_id and booked["sessions"], booked
    now = await probe.rpc("scheduling", "status", {"referral_id": waits})
    assert (now["status"], now["mentor_id"]) == ("scheduled", mentor_id), now
    assert [x["session_id"] for x in now["sessions"]] == [x["session_id"] for x in booked["sessions"]]
    closed = await probe.rpc("scheduling", "status", {"referral_id": taken})
    assert (closed["status"], closed["sessions"]) == ("closed", []), "the closed case is not booked again"
    waiting = await probe.rpc("scheduling", "waitlist", {})
    assert waits not in {w["referral_id"] for w in waiting["waiting"]}
