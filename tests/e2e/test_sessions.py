"""Session lifecycle, suspension while missing, and cadence step-down, through the real services."""

from __future__ import annotations

import json

import pytest

from shared.contracts.rpc import ErrorCode, RpcError
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.replies import refusal
from tests.support.risk import seen

pytestmark = pytest.mark.e2e


async def _booked(probe: Probe, cluster: Cluster, *, indicators: list[str]) -> tuple[str, str, dict, dict]:  # type: ignore[type-arg]
    lang, agency, arid = unique_language(), unique("yot"), unique("S")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    body = referral(arid, language=lang, indicators=indicators)
    await probe.submit(agency, body)
    accepted = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0]
    rid = accepted["referral_id"]
    scheduled = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    return agency, rid, scheduled, body


async def test_confirm_and_cancel_a_session_and_refuse_attendance_before_it_starts(
    cluster: Cluster, probe: Probe
) -> None:
    agency, rid, scheduled, _ = await _booked(probe, cluster, indicators=["peers_offending"])
    first, second = scheduled["sessions"][0]["session_id"], scheduled["sessions"][1]["session_id"]

    confirmed = await probe.rpc("scheduling", "session", {"session_id": first, "action": "confirm"})
    too_early = await probe.rpc("scheduling", "session", {"session_id": first, "action": "attended"})
    cancelled = await probe.rpc("scheduling", "session", {"session_id": second, "action": "cancel",
                                                          "reason": "Young person has a court date"})
    again = await probe.rpc("scheduling", "session", {"session_id": second, "action": "confirm"})
    unknown = await probe.rpc("scheduling", "session", {"session_id": "ses_nope", "action": "cancel"})

    assert confirmed["status"] == "confirmed"
    status = await probe.rpc("scheduling", "status", {"referral_id": rid})
    assert status["sessions"][0]["session_id"] == first, "a confirmed session is still the case's next session"
    assert refusal(too_early).code == "refused"
    assert "record attendance once it has started" in refusal(too_early).message
    assert cancelled["status"] == "cancelled"
    event = (await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid))[0]
    assert event["cancelled"] == [second] and event["reason"] == "Young person has a court date"
    assert "a cancelled session cannot be marked confirmed" in refusal(again).message
    assert refusal(unknown) == RpcError(code=ErrorCode.NOT_FOUND, message="no session ses_nope")


async def test_sessions_are_suspended_while_the_young_person_is_missing_and_resume_when_found(
    cluster: Cluster, probe: Probe
) -> None:
    agency, rid, scheduled, body = await _booked(probe, cluster, indicators=["peers_offending"])
    js = probe.nc.jetstream()

    await js.publish(cluster.subjects.updated(agency),
                     json.dumps({**body, "indicators": ["peers_offending", "currently_missing"]}).encode())
    held = (await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid))[0]
    assert sorted(held["cancelled"]) == sorted(s["session_id"] for s in scheduled["sessions"])
    assert "missing" in held["reason"]
    status = await probe.rpc("scheduling", "status", {"referral_id": rid})
    assert status["status"] == "suspended" and status["sessions"] == []

    await js.publish(cluster.subjects.updated(agency), json.dumps({**body, "indicators": ["peers_offending"]}).encode())
    resumed = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]
    assert resumed["mentor_id"] == scheduled["mentor_id"] and resumed["sessions"]
    assert "no longer missing" in resumed["reason"]
    assert (await probe.rpc("scheduling", "status", {"referral_id": rid}))["status"] == "scheduled"


async def test_the_cadence_rises_at_once_and_steps_down_only_after_two_lower_reviews(
    cluster: Cluster, probe: Probe
) -> None:
    agency, rid, scheduled, _ = await _booked(probe, cluster, indicators=["peers_offending"])
    assert scheduled["tier"] == "low"
    up = {"referral_id": rid, "tier": "very_high", "by": "Ana Lee", "reason": "Threat made at school"}
    assert (await probe.rpc("risk", "override", up))["assessment"]["tier"] == "very_high"
    raised = await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid)
    assert raised[0]["tier"] == "very_high"

    down = {"referral_id": rid, "tier": "high", "by": "Ana Lee", "reason": "Threat withdrawn"}
    asked = await probe.rpc("risk", "override", down)
    assert asked["pending"]["tier"] == "high"
    signed = {"referral_id": rid, "by": "Sam Roy", "lowering": seen(asked)}
    assert (await probe.rpc("risk", "override.countersign", signed))["assessment"]["tier"] == "high"
    await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] == rid and e["number"] == 3)
    confirm = {"referral_id": rid, "tier": "high", "by": "Sam Roy"}
    assert (await probe.rpc("risk", "override", confirm))["assessment"]["override"]["kind"] == "confirm"

    stepped = await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid, count=2)
    assert len(stepped) == 2, "one re-plan for the rise, one for the step down after the second lower review"
    assert stepped[1]["tier"] == "high" and "very_high → high" in stepped[1]["reason"]


@pytest.mark.parametrize(("wellbeing", "expected"), [("high", "escalate"), ("medium", "close")])
async def test_three_missed_sessions_escalate_or_close_through_the_service(
    cluster: Cluster, probe: Probe, wellbeing: str, expected: str
) -> None:
    """Attendance can only be recorded once a session has started, so the past sessions are put in place in
    scheduling's own database (the arrangement); marking them goes through the service over NATS."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, update

    from services.scheduling.tables import CaseRow, SessionRow
    from tests.support.cluster import service_engine

    agency, rid, scheduled, _ = await _booked(probe, cluster, indicators=["peers_offending"])
    now = datetime.now(UTC)
    past = [f"{rid}-past{i}" for i in range(4)]
    engine = service_engine(cluster, "scheduling")
    with engine.begin() as conn:
        conn.execute(update(CaseRow).where(CaseRow.referral_id == rid).values(wellbeing_tier=wellbeing))
        conn.execute(insert(SessionRow), [
            {"session_id": sid, "referral_id": rid, "mentor_id": scheduled["mentor_id"],
             "start": now - timedelta(days=22 - 7 * i), "end": now - timedelta(days=22 - 7 * i) + timedelta(hours=1),
             "status": "booked", "sequence": 0, "created_at": now - timedelta(days=30),
             "updated_at": now - timedelta(days=30)} for i, sid in enumerate(past)])
    engine.dispose()

    attended = await probe.rpc("scheduling", "session", {"session_id": past[0], "action": "attended"})
    results = [await probe.rpc("scheduling", "session", {"session_id": sid, "action": "missed"}) for sid in past[1:]]

    assert attended["status"] == "attended" and attended["follow_up"] is None
    assert [r["follow_up"] for r in results] == [None, None, expected]
    if expected == "escalate":
        alert = (await probe.wait_for(cluster.subjects.alert(agency), lambda e: e["referral_id"] == rid))[0]
        assert alert["rule_id"] == "E12_disengagement_with_rising_risk"
        assert (await probe.rpc("scheduling", "status", {"referral_id": rid}))["status"] == "scheduled"
    else:
        closed = (await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid))[0]
        assert "three missed sessions" in closed["reason"]
        assert sorted(closed["cancelled"]) == sorted(s["session_id"] for s in scheduled["sessions"])
        assert (await probe.rpc("scheduling", "status", {"referral_id": rid}))["status"] == "closed"
