"""The running services: registering an agency makes its durable consumers of its outcomes at once, and no service
acts on a message that asks for no answer (what the server sends onto a subject someone named as a reply, such as
the empty reply to an acknowledgement: any client may name any subject there)."""

from __future__ import annotations

import json

import nats
from nats.js.api import AckPolicy

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language


async def test_a_registered_agency_has_its_outcome_consumers_at_once(cluster: Cluster, probe: Probe) -> None:
    agency = unique("yot")
    added = await probe.rpc("intake", "agencies.add", {"agency_id": agency, "name": "Outcomes YOT"})
    assert "error" not in added, added

    js = probe.nc.jetstream()
    s = cluster.subjects
    referrals = await js.consumer_info(s.referrals_stream, f"agency-{agency}")
    sessions = await js.consumer_info(s.sessions_stream, f"agency-{agency}")

    assert referrals.config.filter_subject == s.about_referrals(agency)
    assert sessions.config.filter_subject == s.sessions(agency)
    assert referrals.config.deliver_subject == f"_INBOX_AGENCY.{agency}.outcomes.{s.referrals_stream}"
    assert sessions.config.deliver_subject == f"_INBOX_AGENCY.{agency}.outcomes.{s.sessions_stream}"
    assert referrals.config.ack_policy == sessions.config.ack_policy == AckPolicy.EXPLICIT


async def test_an_agency_offline_while_its_referral_is_accepted_and_scheduled_reads_both_when_back(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("REF")
    assert "error" not in await probe.rpc("intake", "agencies.add", {"agency_id": agency, "name": "Offline YOT"})
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    s = cluster.subjects

    await probe.submit(agency, referral(arid, language=lang))  # the agency publishes, then goes away
    rid = (await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0]["referral_id"]
    await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == rid)

    nc = await nats.connect(cluster.nats_url)  # back, binding its consumers as the README says
    js = nc.jetstream()
    outcomes = []
    for subject, stream in ((s.about_referrals(agency), s.referrals_stream), (s.sessions(agency), s.sessions_stream)):
        sub = await js.subscribe(subject, durable=f"agency-{agency}", stream=stream, manual_ack=True)
        msg = await sub.next_msg(timeout=10)
        outcomes.append((msg.subject, json.loads(msg.data)))
        await msg.ack()
    await nc.close()

    (accepted_subject, accepted), (scheduled_subject, scheduled) = outcomes
    assert (accepted_subject, accepted["agency_referral_id"], accepted["referral_id"]) == (s.accepted(agency), arid, rid)
    assert (scheduled_subject, scheduled["referral_id"]) == (s.scheduled(agency), rid) and scheduled["sessions"]


async def test_a_service_acts_on_no_message_that_asks_for_no_answer(cluster: Cluster, probe: Probe) -> None:
    reflected, asked = unique("yot"), unique("yot")
    subject = cluster.subjects.rpc("intake", "agencies.add")

    await probe.nc.publish(subject, json.dumps({"agency_id": reflected, "name": "no one asked"}).encode())
    # the same subscription answers in order: once this is answered, the one before it has been dealt with
    assert "error" not in await probe.rpc("intake", "agencies.add", {"agency_id": asked, "name": "asked"})

    listed = {a["agency_id"] for a in (await probe.rpc("intake", "agencies.list", {}))["agencies"]}
    assert asked in listed
    assert reflected not in listed


async def test_a_service_answers_a_request_only_onto_an_inbox_never_onto_an_agencys_subjects(
    cluster: Cluster, probe: Probe
) -> None:
    """A request's reply subject is its sender's to choose, and a service may answer onto any subject: a person who
    names an agency's outcome subject, or its durable consumer's deliver subject, would have the answer (an
    assessment, a status) kept by a stream and delivered to the agency. Such a request is not answered at all."""
    s, agency = cluster.subjects, unique("yot")
    aimed = [s.accepted(agency), s.scheduled(agency), f"_INBOX_AGENCY.{agency}.outcomes.{s.referrals_stream}",
             s.alert(agency)]
    heard: list[str] = []

    async def hear(msg: nats.aio.msg.Msg) -> None:
        heard.append(msg.subject)

    watching = [await probe.nc.subscribe(subject, cb=hear) for subject in aimed]
    await probe.nc.flush()
    for subject in aimed:
        await probe.nc.publish(s.rpc("scheduling", "status"), json.dumps({"referral_id": "ref_x"}).encode(),
                               reply=subject)
    # the same subscription answers in order: once this is answered, the ones before it have been dealt with
    answered = await probe.rpc("scheduling", "status", {"referral_id": "ref_x"})
    await probe.nc.flush()

    assert answered["error"]["code"] == "not_found", answered
    assert heard == [], f"answered onto {heard}"
    for sub in watching:
        await sub.unsubscribe()
