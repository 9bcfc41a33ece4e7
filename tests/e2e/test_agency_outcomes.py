"""The running services: registering an agency makes its durable consumers of its outcomes at once, and no service
acts on a message that asks for no answer (what the server sends onto a subject someone named as a reply, such as
the empty reply to an acknowledgement: any client may name any subject there)."""

from __future__ import annotations

import json

from nats.js.api import AckPolicy

from tests.support.cluster import Cluster, Probe, unique


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


async def test_a_service_acts_on_no_message_that_asks_for_no_answer(cluster: Cluster, probe: Probe) -> None:
    reflected, asked = unique("yot"), unique("yot")
    subject = cluster.subjects.rpc("intake", "agencies.add")

    await probe.nc.publish(subject, json.dumps({"agency_id": reflected, "name": "no one asked"}).encode())
    # the same subscription answers in order: once this is answered, the one before it has been dealt with
    assert "error" not in await probe.rpc("intake", "agencies.add", {"agency_id": asked, "name": "asked"})

    listed = {a["agency_id"] for a in (await probe.rpc("intake", "agencies.list", {}))["agencies"]}
    assert asked in listed
    assert reflected not in listed
