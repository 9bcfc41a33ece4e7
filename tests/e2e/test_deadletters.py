"""`reroute deadletter`: an operator lists what the services set aside, reads why, replays a fixed one exactly
once, and discards one with a reason, against the running services."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from shared.deadletters import DeadLetterRow
from tests.support.cli import reroute
from tests.support.cluster import (
    Cluster,
    Probe,
    intake_url,
    referral,
    register_agency,
    service_engine,
    unique,
    unique_language,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def _open_dead_letters(probe: Probe, service: str, subject: str) -> list[dict[str, object]]:
    reply = await probe.rpc(service, "deadletters.list", {})
    return [d for d in reply["dead_letters"] if d["subject"] == subject]


async def test_poison_is_kept_by_each_service_that_failed_it_and_can_be_read_and_discarded(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    agency = unique("yot")
    subject = cluster.subjects.recorded(agency)
    await probe.nc.jetstream().publish(subject, b'{"referral_id": "not a whole referral"}',
                                       headers={"Nats-Msg-Id": unique("poison")})

    async def both_kept() -> bool:
        return all([await _open_dead_letters(probe, s, subject) for s in ("risk", "scheduling")])

    await wait_until(both_kept, timeout=30, what="risk and scheduling each keeping the poison message")
    risk_id = str((await _open_dead_letters(probe, "risk", subject))[0]["id"])
    scheduling_id = str((await _open_dead_letters(probe, "scheduling", subject))[0]["id"])
    assert risk_id.startswith("risk-") and scheduling_id.startswith("scheduling-")

    listed = reroute(cluster, tmp_path, "deadletter", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert risk_id in listed.stdout and scheduling_id in listed.stdout
    assert "risk:" in listed.stdout and "open: not a valid ReferralRecorded" in listed.stdout

    shown = reroute(cluster, tmp_path, "deadletter", "show", risk_id)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "not a valid ReferralRecorded" in shown.stdout and subject in shown.stdout
    assert "not a whole referral" not in shown.stdout, "the body is shown only when asked for"
    with_body = reroute(cluster, tmp_path, "deadletter", "show", risk_id, "--body")
    assert "not a whole referral" in with_body.stdout

    still_broken = reroute(cluster, tmp_path, "deadletter", "replay", risk_id)
    assert still_broken.returncode == 1 and "failed again" in still_broken.stdout
    assert await _open_dead_letters(probe, "risk", subject), "a replay that fails again leaves it open"

    discarded = reroute(cluster, tmp_path, "deadletter", "discard", risk_id, "--reason", "test junk", "--by", "ops-ann")
    assert discarded.returncode == 0, discarded.stdout + discarded.stderr
    assert not await _open_dead_letters(probe, "risk", subject)
    everything = reroute(cluster, tmp_path, "deadletter", "list", "--all", "--service", "risk")
    row = next(line for line in everything.stdout.splitlines() if risk_id in line)
    assert "discarded by ops-ann" in row
    again = reroute(cluster, tmp_path, "deadletter", "replay", risk_id)
    assert again.returncode == 1 and "already resolved" in again.stdout

    unknown = reroute(cluster, tmp_path, "deadletter", "show", "nonsense")
    assert unknown.returncode != 0 and "not a dead letter id" in unknown.stdout + unknown.stderr


async def test_a_replayed_dead_letter_runs_once_and_publishes_its_events_once(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    """A referral risk failed on (say, a bug since fixed) is assessed on replay, once, however often replayed. This
    one was kept by the version before intake.recorded: under risk's old consumer, on referrals.accepted, whose
    schema_version 1 body is what intake.recorded carries now."""
    lang, agency = unique_language(), unique("yot")
    await register_agency(probe, agency)
    await probe.submit(agency, referral(unique("R"), language=lang))
    accepted = (await probe.wait_for(cluster.subjects.recorded(agency), timeout=20))[0]
    await probe.wait_for(cluster.subjects.assessed(agency), timeout=20)
    # the same kind of message for a referral risk never got to process: kept as risk would have kept it
    failed = {**accepted, "referral_id": f"ref_{uuid.uuid4().hex[:16]}", "event_id": unique("accepted")}
    dead_letter_id = f"risk-{uuid.uuid4().hex[:10]}"
    engine = service_engine(cluster, "risk")
    with engine.begin() as conn:
        conn.execute(insert(DeadLetterRow).values(
            id=dead_letter_id, message_key=f"{cluster.subjects.accepted(agency)}|{failed['event_id']}",
            consumer="risk-accepted", subject=cluster.subjects.accepted(agency),
            headers=json.dumps({"Nats-Msg-Id": failed["event_id"]}), body=json.dumps(failed).encode(),
            reason="RuntimeError after 5 deliveries; see the service log", deliveries=5, failed_at=datetime.now(UTC),
            referral_id=failed["referral_id"], status="open"))
    engine.dispose()

    first = reroute(cluster, tmp_path, "deadletter", "replay", dead_letter_id, "--by", "ops-ann")
    assert first.returncode == 0 and "replayed" in first.stdout, first.stdout + first.stderr
    assessed = await probe.wait_for(cluster.subjects.assessed(agency),
                                    lambda e: e["referral_id"] == failed["referral_id"], timeout=20)
    second = reroute(cluster, tmp_path, "deadletter", "replay", dead_letter_id)
    assert second.returncode == 1 and "already resolved" in second.stdout  # so it ran nothing, published nothing
    later = await probe.rpc("risk", "deadletters.list", {"include_resolved": True})
    mine = next(d for d in later["dead_letters"] if d["id"] == dead_letter_id)
    assert mine["status"] == "replayed" and mine["resolved_by"] == "ops-ann"
    assert len(probe.matching(cluster.subjects.assessed(agency),
                              lambda e: e["referral_id"] == failed["referral_id"])) == len(assessed) == 1


async def test_a_referral_with_a_dead_letter_is_held_for_review_until_it_is_resolved(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    lang, agency = unique_language(), unique("yot")
    key = await register_agency(probe, agency)
    await probe.submit(agency, referral(unique("R"), language=lang))
    referral_id = (await probe.wait_for(cluster.subjects.accepted(agency), timeout=20))[0]["referral_id"]
    await probe.wait_for(cluster.subjects.waitlisted(agency), timeout=30)  # no mentor speaks this language
    dead_letter_id = f"scheduling-{uuid.uuid4().hex[:10]}"
    engine = service_engine(cluster, "scheduling")
    with engine.begin() as conn:  # as if a later message about it had failed in scheduling
        conn.execute(insert(DeadLetterRow).values(
            id=dead_letter_id, message_key=unique("key"), consumer="scheduling-assessed",
            subject=cluster.subjects.assessed(agency), headers="{}", body=b"{}",
            reason="KeyError after 5 deliveries; see the service log", deliveries=5, failed_at=datetime.now(UTC),
            referral_id=referral_id, status="open"))
    engine.dispose()

    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=20,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        held = (await http.get(f"/v1/referrals/{referral_id}")).json()
        assert held["status"] == "held" and held["reason"] == "held for review by the service"
        operator = reroute(cluster, tmp_path, "status", referral_id)
        assert dead_letter_id in operator.stdout and "KeyError after 5 deliveries" in operator.stdout
        assert "KeyError" not in json.dumps(held), "the agency is not told the service's internals"

        reroute(cluster, tmp_path, "deadletter", "discard", dead_letter_id, "--reason", "superseded")
        released = (await http.get(f"/v1/referrals/{referral_id}")).json()
        assert released["status"] == "waitlisted"
