"""Agencies' raw submissions (names, birth date, referrer contact, free text) stay on the broker only until intake has
stored them encrypted, wait there however long intake is down, and survive the upgrade from the earlier layout; no
agency's message id can make another agency's referral disappear (issue 11, items 3 and 5)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from shared.subjects import SUBMISSION_DUPLICATE_WINDOW_SECONDS, Subjects
from tests.support.cluster import Cluster, Probe, mentor, ready, referral, unique, unique_language
from tests.support.stored import raw_held, stored_messages
from tests.support.suite import RUN_ID, drop_schemas, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def _window_passed(since: float) -> None:
    """Until the submissions stream has forgotten a message id seen at `since` (it forgets one between one and two
    windows after it), so that what follows tests intake's de-duplication, not the stream's."""
    await wait_until(lambda: time.monotonic() - since > 3 * SUBMISSION_DUPLICATE_WINDOW_SECONDS, timeout=5,
                     every=0.05, what="the submissions stream's duplicate window to pass")


async def test_once_a_submission_is_accepted_no_plain_copy_of_it_stays_on_the_broker(
    cluster: Cluster, probe: Probe
) -> None:
    s, js = cluster.subjects, probe.nc.jetstream()
    agency, arid = unique("yot"), unique("RAW")
    await js.publish(s.submitted(agency), json.dumps(referral(arid, language=unique_language())).encode())
    await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == arid)

    async def gone() -> bool:
        return await raw_held(js, s, agency) == 0

    await wait_until(gone, timeout=10, every=0.05, what="intake's ack removing the submission from the stream")
    with pytest.raises(NotFoundError):
        await js.get_last_msg(s.submissions_stream, s.submitted(agency))
    assert await js.find_stream_name_by_subject(s.submitted(agency)) == s.submissions_stream
    referrals = (await js.stream_info(s.referrals_stream, subjects_filter=s.about_referrals(agency))).state
    assert set(referrals.subjects or {}) == {s.accepted(agency)}, "the events stream holds the event, no raw copy"


async def test_another_agencys_message_id_drops_nothing_and_a_resend_is_still_processed_once(
    cluster: Cluster, probe: Probe
) -> None:
    """Agency A publishes first with the id agency B will use (B's own reference: guessable). B's referral is still
    stored and accepted (the events stream's 300 s window dropped it); B's resend with the same id is processed
    once, by intake's per-agency inbox, after the stream itself has forgotten the id."""
    s, js = cluster.subjects, probe.nc.jetstream()
    lang, a, b = unique_language(), unique("yota"), unique("yotb")
    arid_a, arid_b = unique("A"), unique("B")
    guessed = {"Nats-Msg-Id": arid_b}
    first = time.monotonic()
    await js.publish(s.submitted(a), json.dumps(referral(arid_a, language=lang)).encode(), headers=guessed)
    await probe.wait_for(s.accepted(a), lambda e: e["agency_referral_id"] == arid_a)
    await _window_passed(first)

    sent = time.monotonic()
    ack = await js.publish(s.submitted(b), json.dumps(referral(arid_b, language=lang)).encode(), headers=guessed)
    assert not ack.duplicate, "B's referral is stored, not dropped as a duplicate of A's message"
    accepted = await probe.wait_for(s.accepted(b), lambda e: e["agency_referral_id"] == arid_b)
    assert not accepted[0]["duplicate"]

    await _window_passed(sent)
    await js.publish(s.submitted(b), json.dumps(referral(arid_b, language=lang)).encode(), headers=guessed)
    sentinel = unique("S")  # B's messages are processed in order: once this one is, the resend was
    await js.publish(s.submitted(b), json.dumps(referral(sentinel, language=lang)).encode(),
                     headers={"Nats-Msg-Id": uuid.uuid4().hex})
    await probe.wait_for(s.accepted(b), lambda e: e["agency_referral_id"] == sentinel)

    async def all_acked() -> bool:  # intake acks after its events are published: they reached the probe first
        return await raw_held(js, s, b) == 0

    await wait_until(all_acked, timeout=10, every=0.05, what=f"intake acking {b}'s messages")
    answers = probe.matching(s.accepted(b), lambda e: e["agency_referral_id"] == arid_b)
    assert len({e["event_id"] for e in answers}) == 1, "the resend with the same id was dropped by intake's inbox"


async def test_a_submission_waits_while_intake_is_down_and_is_processed_when_it_is_back(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    cluster = await ready(make_cluster(nats_server, tmp_path, "intakedown", isolated=True))
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    s, js = cluster.subjects, probe.nc.jetstream()
    try:
        lang, agency, arid = unique_language(), unique("yot"), unique("DOWN")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        cluster.processes.stop("intake")
        await probe.submit(agency, referral(arid, language=lang))  # stored once this returns (its PubAck)
        assert await raw_held(js, s, agency) == 1, "the submission waits in the stream for intake"

        cluster.processes.start("intake")
        await cluster.wait_ready(("intake",), timeout=60)
        accepted = await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == arid, timeout=20)
        await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == accepted[0]["referral_id"],
                             timeout=20)

        async def gone() -> bool:
            return await raw_held(js, s, agency) == 0

        await wait_until(gone, timeout=10, every=0.05, what="the processed submission leaving the stream")
    finally:
        await probe.close()
        cluster.processes.stop_all()
        drop_schemas(cluster)


async def test_an_install_of_the_earlier_stream_layout_keeps_working_once_provisioned(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    """The earlier version kept raw submissions in REFERRALS; intake was stopped for the upgrade with submissions
    and an update still unprocessed there. Provisioning moves them to the submissions stream, the new intake
    processes them in order, and REFERRALS keeps intake's events and no raw copy."""
    s = Subjects(f"t{RUN_ID}upgrade")  # the namespace make_cluster gives an isolated cluster of this name
    nc = await nats.connect(nats_server[0])
    js = nc.jetstream()
    agency, first, second = unique("yot"), unique("UP"), unique("UP")
    lang = unique_language()
    try:
        await js.add_stream(StreamConfig(name=s.referrals_stream, subjects=[f"{s.namespace}.referrals.>"],
                                         max_age=30 * 86_400, duplicate_window=300))  # as the earlier version did
        await js.add_consumer(s.referrals_stream, ConsumerConfig(  # the earlier intake's, nothing acked yet
            durable_name="intake-submitted", ack_policy=AckPolicy.EXPLICIT,
            filter_subjects=[s.submitted(), s.updated()]))
        await js.publish(s.submitted(agency), json.dumps(referral(first, language=lang)).encode(),
                         headers={"Nats-Msg-Id": uuid.uuid4().hex})
        await js.publish(s.submitted(agency), json.dumps(referral(second, language=lang)).encode())
        await js.publish(s.updated(agency), json.dumps(referral(first, language=lang, borough="Camden")).encode())

        cluster = await ready(make_cluster(nats_server, tmp_path, "upgrade", isolated=True))
        try:
            assert cluster.subjects == s

            async def processed() -> bool:
                held = await raw_held(js, s, agency)
                events = [e for _, e in await stored_messages(js, s.referrals_stream, s.accepted(agency))]
                return held == 0 and len(events) == 3

            await wait_until(processed, timeout=30, every=0.2, what="the moved submissions processed")
            events = [e for _, e in await stored_messages(js, s.referrals_stream, s.accepted(agency))]
            assert [(e["agency_referral_id"], e["revision"], e["duplicate"]) for e in events] == [
                (first, 0, False), (second, 0, False), (first, 1, False)], "each once, in the order sent"
            facts = [e for _, e in await stored_messages(js, s.intake_stream, s.recorded(agency))]
            assert [e["revision"] for e in facts] == [0, 0, 1] and facts[2]["person"]["borough"] == "Camden"
            stored = await js.stream_info(s.referrals_stream, subjects_filter=">")
            assert set(stored.state.subjects or {}) == {s.accepted(agency)}, "no raw submission left in REFERRALS"
            rids = {e["referral_id"] for e in events}
            await wait_until(lambda: _assessed(js, s, agency, rids), timeout=30, every=0.2,
                             what="risk assessing both referrals")
        finally:
            cluster.processes.stop_all()
            drop_schemas(cluster)
    finally:
        await nc.close()


async def _assessed(js: JetStreamContext, s: Subjects, agency: str, rids: set[str]) -> bool:
    return {e["referral_id"] for _, e in await stored_messages(js, s.risk_stream, s.assessed(agency))} >= rids
