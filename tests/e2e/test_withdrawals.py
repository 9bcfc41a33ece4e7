"""An agency withdraws a referral (consent withdrawn, referred in error) through either door, end to end: real NATS,
the three services as processes, a real database. A withdrawal is recorded once and answered again as such; it
refuses later updates; another agency's referral is not found, exactly as an unknown one. Scheduling then closes the
case as a closure does (its future sessions cancelled, the mentor's place freed, off the waitlist, the reason
recorded), risk no longer lists it for review, and an open safeguarding alert stays open."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import select
from sqlmodel import col

from services.intake.tables import ReferralRecord
from tests.support.cluster import (
    Cluster,
    Probe,
    bearer,
    mentor,
    referral,
    register_agency,
    service_engine,
    unique,
    unique_language,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def naming(agency_referral_id: str, event: dict[str, Any]) -> bool:
    return bool(event["agency_referral_id"] == agency_referral_id)


async def submitted(probe: Probe, cluster: Cluster, agency: str, arid: str, language: str) -> str:
    """Submit a referral over NATS; its referral id once intake has accepted it."""
    await probe.submit(agency, referral(arid, language=language))
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    return str(accepted[0]["referral_id"])


async def test_over_nats_a_withdrawal_is_told_once_a_repeat_is_already_withdrawn_and_updates_are_refused(
    cluster: Cluster, probe: Probe
) -> None:
    s, agency, arid = cluster.subjects, unique("yot"), unique("REF")
    await register_agency(probe, agency)  # so that it has its durable consumers of its outcomes
    rid = await submitted(probe, cluster, agency, arid, unique_language())

    await probe.withdraw(agency, arid, "consent_withdrawn", note="Family declined after the first call")
    (told,) = await probe.wait_for(s.withdrawn(agency), lambda e: e["agency_referral_id"] == arid)
    await probe.withdraw(agency, arid, "moved_away")
    repeated = await probe.wait_for(s.withdrawn(agency), lambda e: e["agency_referral_id"] == arid, count=2)
    await probe.nc.jetstream().publish(s.updated(agency), json.dumps(referral(arid, language="en")).encode())
    (refused,) = await probe.wait_for(s.rejected(agency), lambda e: e["agency_referral_id"] == arid)

    assert (told["referral_id"], told["reason"], told["duplicate"]) == (rid, "consent_withdrawn", False)
    assert "note" not in told and "Family" not in json.dumps(probe.events), "the note stays with intake"
    again = repeated[1]
    assert (again["duplicate"], again["reason"], again["withdrawn_at"]) == (True, "consent_withdrawn",
                                                                           told["withdrawn_at"])
    (error,) = refused["errors"]
    assert error["field"] == "agency_referral_id" and "withdrawn on" in error["message"], error
    (internal,) = await probe.wait_for(s.recorded_withdrawal(agency), lambda e: e["referral_id"] == rid)
    assert internal["reason"] == "consent_withdrawn", "scheduling is told once, with the first reason"

    status = await probe.rpc("intake", "status", {"referral_id": rid})
    assert (status["withdrawal_reason"], status["withdrawn_at"] is not None) == ("consent_withdrawn", True)


async def test_the_agencys_durable_consumer_keeps_its_withdrawal_while_it_is_offline(
    cluster: Cluster, probe: Probe
) -> None:
    s, agency, arid = cluster.subjects, unique("yot"), unique("REF")
    await register_agency(probe, agency)
    rid = await submitted(probe, cluster, agency, arid, unique_language())
    await probe.withdraw(agency, arid, "referred_in_error")  # the agency publishes, then goes away
    await probe.wait_for(s.withdrawn(agency), lambda e: e["referral_id"] == rid)

    nc = await nats.connect(cluster.nats_url)  # back, binding its consumer as the README says
    try:
        sub = await nc.jetstream().subscribe(s.about_referrals(agency), durable=f"agency-{agency}",
                                             stream=s.referrals_stream, manual_ack=True)
        outcomes = []
        for _ in range(2):
            msg = await sub.next_msg(timeout=10)
            outcomes.append((msg.subject, json.loads(msg.data)))
            await msg.ack()
    finally:
        await nc.close()

    (accepted_subject, accepted), (withdrawn_subject, withdrawn) = outcomes
    assert (accepted_subject, accepted["referral_id"]) == (s.accepted(agency), rid)
    assert (withdrawn_subject, withdrawn["referral_id"], withdrawn["reason"]) == (s.withdrawn(agency), rid,
                                                                               "referred_in_error")


async def test_over_http_a_withdrawal_answers_202_then_already_withdrawn_and_the_status_says_withdrawn(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency, arid = unique("yot"), f"YOT/{unique('W')}"  # a reference with `/`, as the contract allows
    key = await register_agency(probe, agency)
    created = await http.post("/v1/referrals", json=referral(arid, language=unique_language()), headers=bearer(key))
    assert created.status_code == 202, created.text
    rid = created.json()["referral_id"]

    first = await http.post("/v1/withdrawals", json={"agency_referral_id": arid, "reason": "needs_met_elsewhere"},
                            headers=bearer(key))
    again = await http.post("/v1/withdrawals", json={"agency_referral_id": arid, "reason": "other"},
                            headers=bearer(key))
    update = await http.put("/v1/referrals", params={"agency_referral_id": arid},
                            json=referral(arid, language="en"), headers=bearer(key))
    status = await http.get(f"/v1/referrals/{rid}", headers=bearer(key))

    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert {k: first.json()[k] for k in ("referral_id", "agency_referral_id", "outcome", "duplicate", "reason")} == {
        "referral_id": rid, "agency_referral_id": arid, "outcome": "withdrawn", "duplicate": False,
        "reason": "needs_met_elsewhere"}
    assert first.headers["location"] == first.json()["status_url"] == f"/v1/referrals/{rid}"
    assert (again.json()["outcome"], again.json()["duplicate"], again.json()["reason"]) == (
        "already_withdrawn", True, "needs_met_elsewhere")
    assert again.json()["withdrawn_at"] == first.json()["withdrawn_at"]
    assert update.status_code == 422, update.text
    assert update.json()["code"] == "invalid" and "withdrawn on" in update.json()["errors"][0]["message"]
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "withdrawn"
    assert status.json()["reason"].startswith("withdrawn by your agency (needs met elsewhere)")
    told = await probe.wait_for(cluster.subjects.withdrawn(agency), lambda e: e["referral_id"] == rid, count=2)
    assert [e["duplicate"] for e in told] == [False, True], "NATS tells the agency of both, as HTTP answered"


async def test_a_withdrawal_with_a_reason_it_does_not_know_is_refused_clearly_through_both_doors(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    agency, arid = unique("yot"), unique("REF")
    key = await register_agency(probe, agency)
    await submitted(probe, cluster, agency, arid, unique_language())
    codes = "must be 'consent_withdrawn', 'referred_in_error', 'needs_met_elsewhere', 'moved_away' or 'other'"

    over_http = await http.post("/v1/withdrawals", json={"agency_referral_id": arid, "reason": "changed_mind"},
                                headers=bearer(key))
    await probe.withdraw(agency, arid, "changed_mind")
    # told on referrals.rejected for each: the HTTP door tells NATS of what it decides too
    told = await probe.wait_for(cluster.subjects.rejected(agency), lambda e: e["agency_referral_id"] == arid, count=2)

    assert over_http.status_code == 422, over_http.text
    assert over_http.json()["code"] == "invalid" and over_http.json()["agency_referral_id"] == arid
    assert over_http.json()["errors"] == told[0]["errors"] == told[1]["errors"] == [
        {"field": "reason", "message": codes}]
    status = await probe.rpc("intake", "status", {"agency_id": agency, "agency_referral_id": arid})
    assert status["withdrawn_at"] is None, "nothing was withdrawn"


async def test_another_agencys_referral_is_not_found_through_both_doors_exactly_as_an_unknown_one(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    s, owner, other = cluster.subjects, unique("yot"), unique("police")
    arid, unknown = unique("REF"), unique("NONE")
    key = await register_agency(probe, other)
    rid = await submitted(probe, cluster, owner, arid, unique_language())

    answers: dict[str, Any] = {}
    for name, reference in (("others", arid), ("unknown", unknown)):
        answer = await http.post("/v1/withdrawals", json={"agency_referral_id": reference, "reason": "other"},
                                 headers=bearer(key))
        await probe.withdraw(other, reference, "other")
        # told on referrals.rejected for each: the HTTP door tells NATS of what it decides too
        refused = await probe.wait_for(s.rejected(other), partial(naming, reference), count=2)
        assert refused[0]["errors"] == refused[1]["errors"]
        answers[name] = (answer.status_code, answer.json()["code"], answer.json()["message"], refused[0]["errors"])

    assert answers["others"] == answers["unknown"]
    assert answers["others"][:2] == (404, "not_found")
    nothing = "no referral of yours with this agency_referral_id: nothing to withdraw"
    assert answers["others"][3] == [{"field": "agency_referral_id", "message": nothing}]
    # each NATS withdrawal was answered by its rejection alone: nothing was withdrawn, nor told anyone
    assert not probe.matching(s.withdrawn(owner)) and not probe.matching(s.withdrawn(other))
    status = await probe.rpc("intake", "status", {"referral_id": rid})
    assert status["withdrawn_at"] is None, "the owner's referral is as it was"



async def test_a_booked_referral_withdrawn_over_nats_has_its_sessions_cancelled_and_its_case_closed_and_its_alert_stays(
    cluster: Cluster, probe: Probe
) -> None:
    s, agency, lang, mentor_id = cluster.subjects, unique("yot"), unique_language(), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang, max_caseload=1)]})
    arid = unique("REF")
    await probe.submit(agency, referral(arid, language=lang, indicators=["threat_to_life_warning"]))
    rid = (await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0]["referral_id"]
    (booked,) = await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == rid, timeout=30)
    (alert,) = await probe.wait_for(s.alert(agency), lambda e: e["referral_id"] == rid)

    await probe.withdraw(agency, arid, "consent_withdrawn")
    (cancelled,) = await probe.wait_for(s.cancelled(agency), lambda e: e["referral_id"] == rid, timeout=20)

    assert sorted(cancelled["cancelled"]) == sorted(x["session_id"] for x in booked["sessions"])
    assert cancelled["reason"] == "withdrawn by your agency (consent withdrawn): its remaining sessions are cancelled"
    case = await probe.rpc("scheduling", "status", {"referral_id": rid})
    assert (case["status"], case["sessions"]) == ("closed", [])
    assert case["reason"] == f"withdrawn by the referring agency ({agency}): consent withdrawn"
    due = await probe.rpc("risk", "reviews.due", {"within_days": 365})
    assert rid not in {r["referral_id"] for r in due["reviews"]}, "a withdrawn referral is not due for review"
    alerts = await probe.rpc("risk", "alerts.list", {"acknowledged_days": 0, "limit": 5000})
    (still_open,) = [a for a in alerts["alerts"] if a["alert_id"] == alert["event_id"]]
    assert (still_open["referral_id"], still_open["acknowledged_by"]) == (rid, None), "the alert stays open"

    again = unique("REF")  # the mentor took one case: withdrawn, the place is free for the next young person
    await probe.submit(agency, referral(again, language=lang))
    next_id = (await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == again))[0]["referral_id"]
    (next_booked,) = await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == next_id, timeout=30)
    assert next_booked["mentor_id"] == mentor_id


async def test_referrals_withdrawn_over_http_are_closed_a_booked_one_cancelled_and_a_waiting_one_off_the_waitlist(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    s, agency, lang = cluster.subjects, unique("yot"), unique_language()
    key = await register_agency(probe, agency)
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    booked_ref, waiting_ref = unique("BOOK"), unique("WAIT")
    ids = {}
    for arid, language in ((booked_ref, lang), (waiting_ref, unique_language())):  # no mentor speaks the second
        created = await http.post("/v1/referrals", json=referral(arid, language=language), headers=bearer(key))
        assert created.status_code == 202, created.text
        ids[arid] = created.json()["referral_id"]
    (booked,) = await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == ids[booked_ref], timeout=30)
    await probe.wait_for(s.waitlisted(agency), lambda e: e["referral_id"] == ids[waiting_ref], timeout=30)

    for arid in (booked_ref, waiting_ref):
        answer = await http.post("/v1/withdrawals", json={"agency_referral_id": arid, "reason": "moved_away"},
                                 headers=bearer(key))
        assert (answer.status_code, answer.json()["outcome"]) == (202, "withdrawn"), answer.text
    (cancelled,) = await probe.wait_for(s.cancelled(agency), lambda e: e["referral_id"] == ids[booked_ref], timeout=20)
    await wait_until(lambda: closed(probe, ids[waiting_ref]), timeout=20, what="the waiting referral's case closed")

    assert sorted(cancelled["cancelled"]) == sorted(x["session_id"] for x in booked["sessions"])
    assert "moved away" in cancelled["reason"]
    waiting = await probe.rpc("scheduling", "waitlist", {})
    assert ids[waiting_ref] not in {w["referral_id"] for w in waiting["waiting"]}
    for rid in ids.values():
        status = await http.get(f"/v1/referrals/{rid}", headers=bearer(key))
        assert (status.json()["status"], status.json()["first_session"]) == ("withdrawn", None), status.text


async def closed(probe: Probe, referral_id: str) -> bool:
    return bool((await probe.rpc("scheduling", "status", {"referral_id": referral_id}))["status"] == "closed")


async def test_the_withdrawal_note_is_in_the_persons_export_and_goes_with_their_erasure(
    cluster: Cluster, probe: Probe
) -> None:
    s, agency, arid = cluster.subjects, unique("yot"), unique("REF")
    body = referral(arid, language=unique_language())
    body["young_person"]["family_name"] = unique("Withdrawn")  # a young person of this test's own: erased below
    await probe.submit(agency, body)
    (facts,) = await probe.wait_for(s.recorded(agency), lambda e: e["agency_referral_id"] == arid)
    await probe.withdraw(agency, arid, "other", note="Mum rang: family moving to Leeds")
    await probe.wait_for(s.withdrawn(agency), lambda e: e["referral_id"] == facts["referral_id"])

    exported = await probe.rpc("intake", "person.export", {"person_id": facts["person_id"]})
    (kept,) = exported["data"]["referrals"]
    erased = await probe.rpc("intake", "person.erase", {"person_id": facts["person_id"]}, timeout=30)

    assert (kept["withdrawal"]["reason"], kept["withdrawal"]["note"]) == ("other", "Mum rang: family moving to Leeds")
    assert "error" not in erased, erased
    with service_engine(cluster, "intake").connect() as conn:
        notes = conn.execute(select(col(ReferralRecord.withdrawal_note), col(ReferralRecord.withdrawal_reason))
                             .where(col(ReferralRecord.agency_id) == agency)).all()
    assert [tuple(n) for n in notes] == [(None, "other")], "the note is erased; the anonymous reason is kept"
