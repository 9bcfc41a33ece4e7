"""`reroute streams provision` gives every stream a maximum message size, and brings an existing stream to it; it
upgrades an install of an earlier layout: whose REFERRALS stream kept agencies' raw submissions, or where risk and
scheduling read their facts from `referrals.accepted`; each upgrade also as the `provisioner` NATS user, on its own
permissions (shared/nats_auth.py `provisioner_user`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from apps.devstack.local_nats import start_nats_server
from shared.contracts.intake import ReferralRecorded
from shared.nats_auth import PROVISIONER, hash_password, inbox_prefix, provisioner_user, render_config
from shared.streams import MAX_MESSAGE_BYTES, provision
from shared.subjects import SUBMISSION_DUPLICATE_WINDOW_SECONDS, Subjects
from tests.support.observer import OBSERVER, observer_user
from tests.support.waiting import wait_until


async def test_streams_are_created_with_a_maximum_message_size_and_an_existing_one_is_updated(nats_url: str) -> None:
    subjects = Subjects(f"s{uuid.uuid4().hex[:8]}")
    specs = subjects.streams()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        earlier = specs[0]  # as an earlier version made it: no maximum message size
        assert earlier.name == subjects.referrals_stream
        await js.add_stream(StreamConfig(name=earlier.name, subjects=earlier.subjects,
                                         max_age=earlier.max_age_days * 86_400, duplicate_window=300))

        done = {p.stream: p.action for p in await provision(js, subjects, replicas=1)}

        assert done == {earlier.name: "updated", **{s.name: "created" for s in specs[1:]}}
        for spec in specs:
            config = (await js.stream_info(spec.name)).config
            assert config.max_msg_size == MAX_MESSAGE_BYTES, spec.name
            assert config.subjects == spec.subjects and (config.num_replicas or 1) == 1
        raw = (await js.stream_info(subjects.submissions_stream)).config
        assert raw.retention == RetentionPolicy.WORK_QUEUE and not raw.max_age, "kept until intake has it, however long"
        assert raw.duplicate_window == SUBMISSION_DUPLICATE_WINDOW_SECONDS
        again = await provision(js, subjects, replicas=1)
        assert {p.action for p in again} == {"unchanged"}
    finally:
        for spec in specs:
            try:
                await js.delete_stream(spec.name)
            except nats.js.errors.NotFoundError:
                pass
        await nc.close()


@dataclass
class Upgrade:
    """Where an upgrade is tried: `js` plays the earlier version and looks at the outcome; `provisioner` provisions."""

    js: JetStreamContext
    provisioner: JetStreamContext
    subjects: Subjects
    refused: list[str]
    """The server's errors to the provisioning connection (a permission it lacks)."""


@pytest.fixture(params=["open server", "provisioner"])
async def upgrade(request: pytest.FixtureRequest, nats_url: str, tmp_path: Path) -> AsyncIterator[Upgrade]:
    """On the shared server without users (a namespace of its own), or on a nats-server of its own with the
    provisioner's permissions (bare names, as they spell them), where the test's observer plays the earlier version."""
    refused: list[str] = []

    async def record(exc: Exception) -> None:
        refused.append(str(exc))

    if request.param == "open server":
        nc = await nats.connect(nats_url, error_cb=record)
        yield Upgrade(nc.jetstream(), nc.jetstream(), Subjects(f"m{uuid.uuid4().hex[:8]}"), refused)
        await nc.close()
        return
    config = tmp_path / "auth.conf"
    config.write_text(render_config([provisioner_user(hash_password("pw-prov")), observer_user(hash_password("pw-obs"))]))
    proc, url = start_nats_server(tmp_path / "js", config=config)
    base = url.removeprefix("nats://")
    observer = await nats.connect(f"nats://{OBSERVER}:pw-obs@{base}")
    provisioner = await nats.connect(f"nats://{PROVISIONER}:pw-prov@{base}", error_cb=record,
                                     inbox_prefix=inbox_prefix(PROVISIONER).encode())
    try:
        yield Upgrade(observer.jetstream(), provisioner.jetstream(), Subjects(), refused)
    finally:
        await provisioner.close()
        await observer.close()
        proc.terminate()
        proc.wait(timeout=10)


async def _messages(js: JetStreamContext, stream: str, subject: str) -> list[tuple[str, bytes, dict[str, str]]]:
    found, seq = [], 0
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append((msg.subject or "", msg.data or b"", dict(msg.headers or {})))
        seq = msg.seq or seq + 1


async def test_an_install_of_the_earlier_layout_is_migrated_with_its_pending_submissions(upgrade: Upgrade) -> None:
    """REFERRALS held agencies' raw submissions (names, birth dates) for 30 days, and intake's consumer read them
    there. Provisioning this version narrows REFERRALS to intake's events, purges the submissions intake had
    processed (up to its consumer's ack floor) and moves, in order and with their headers, those it had not to the
    submissions stream, where the new intake reads them. Running it again changes nothing."""
    js, s = upgrade.js, upgrade.subjects
    try:
        # the earlier layout, as its `reroute streams provision` made it (a short window here, so that two
        # agencies' messages with one id could both be stored, as they were when sent more than 300 s apart)
        everything = ".".join(filter(None, [s.namespace, "referrals.>"]))
        await js.add_stream(StreamConfig(name=s.referrals_stream, subjects=[everything],
                                         max_age=30 * 86_400, duplicate_window=SUBMISSION_DUPLICATE_WINDOW_SECONDS))
        processed = await js.publish(s.submitted("a"), b'{"n": "processed"}', headers={"Nats-Msg-Id": "p1"})
        await js.publish(s.accepted("a"), b'{"event_id": "accepted-1"}')
        await js.publish(s.updated("a"), b'{"n": "pending update"}', headers={"Nats-Msg-Id": "u1"})
        await js.publish(s.submitted("b"), b'{"n": "no id"}',
                         headers={"Nats-Expected-Stream": s.referrals_stream, "traceparent": "00-ab-cd-01"})
        first = time.monotonic()
        await js.publish(s.submitted("c"), b'{"n": "c"}', headers={"Nats-Msg-Id": "same"})
        await wait_until(lambda: time.monotonic() - first > 3 * SUBMISSION_DUPLICATE_WINDOW_SECONDS, timeout=5,
                         every=0.05, what="the earlier stream's duplicate window to pass")  # forgotten within two
        assert not (await js.publish(s.submitted("d"), b'{"n": "d"}', headers={"Nats-Msg-Id": "same"})).duplicate
        await js.add_consumer(s.referrals_stream, ConsumerConfig(
            durable_name="intake-submitted", ack_policy=AckPolicy.EXPLICIT,
            filter_subjects=[s.submitted(), s.updated()]))
        sub = await js.pull_subscribe_bind(durable="intake-submitted", stream=s.referrals_stream)
        (got,) = await sub.fetch(1, timeout=5)  # the earlier intake processed the first one
        assert got.metadata.sequence.stream == processed.seq
        await got.ack_sync()
        await sub.unsubscribe()

        done = await provision(upgrade.provisioner, s, replicas=1)

        assert [p.action for p in done if p.stream == s.referrals_stream] == [
            "updated", f"migrated: 1 processed submissions purged, 4 pending moved to {s.submissions_stream}"]
        referrals = await js.stream_info(s.referrals_stream, subjects_filter=">")
        assert referrals.config.subjects == [s.accepted(), s.rejected(), s.withdrawn()]
        assert referrals.state.subjects == {s.accepted("a"): 1}, "no raw submission left; intake's events kept"
        assert not [c.name for c in await js.consumers_info(s.referrals_stream)], "the old consumer is gone"
        moved = await _messages(js, s.submissions_stream, ">")
        assert [(subject, data) for subject, data, _ in moved] == [
            (s.updated("a"), b'{"n": "pending update"}'), (s.submitted("b"), b'{"n": "no id"}'),
            (s.submitted("c"), b'{"n": "c"}'), (s.submitted("d"), b'{"n": "d"}')], "in order, none lost"
        headers = [h for _, _, h in moved]
        assert headers[0]["Nats-Msg-Id"] == "u1" and headers[1] == {"traceparent": "00-ab-cd-01"}
        assert headers[2]["Nats-Msg-Id"] == headers[3]["Nats-Msg-Id"] == "same", "both agencies' messages"

        again = await provision(upgrade.provisioner, s, replicas=1)
        assert {p.action for p in again} == {"unchanged"}
        assert upgrade.refused == [], "the provisioner may do all of it"
        assert len(await _messages(js, s.submissions_stream, ">")) == 4
    finally:
        for spec in s.streams():
            try:
                await js.delete_stream(spec.name)
            except NotFoundError:
                pass


V1_ACCEPTED = {  # a referrals.accepted event as schema_version 1 published it, with the facts risk and scheduling need
    "schema_version": 1, "event_id": "accepted-0", "occurred_at": "2026-12-01T10:00:00Z", "referral_id": "ref_0",
    "agency_id": "a", "agency_referral_id": "A-0", "duplicate": False, "revision": 0, "person_id": "psn_0",
    "previously_referred": {"count": 1, "last_referred_at": "2026-11-01T10:00:00Z"},
    "person": {"age_years": 15, "age_band": "14-15", "gender": "male", "borough": "Hackney", "languages": ["en"]},
    "index_offence": None, "prior_proven_offences": None, "age_at_first_proven_offence": None,
    "indicators": [{"code": "peers_offending", "observed_at": "2026-12-01"}], "protective_factors": [],
    "unsafe_areas": [], "conflict_groups": [], "preferences": {"mentor_gender": "any", "mentor_gender_required": True,
                                                                 "language": None}, "availability": []}


async def test_risk_and_schedulings_pending_accepted_events_move_to_intakes_own_stream(upgrade: Upgrade) -> None:
    """Before schema_version 2, risk and scheduling read their facts from `referrals.accepted` in REFERRALS (which
    told agencies about other agencies' referrals). Provisioning this version copies the events either had not
    processed yet to intake.recorded in INTAKE, in order and with their headers, and removes the old consumers, so
    nothing waiting is lost; the events each had processed are not copied. Running it again changes nothing."""
    js, s = upgrade.js, upgrade.subjects
    try:
        await js.add_stream(StreamConfig(name=s.referrals_stream, subjects=[s.accepted(), s.rejected()],
                                         max_age=30 * 86_400, duplicate_window=300))
        events = [V1_ACCEPTED | {"event_id": f"accepted-{i}", "referral_id": f"ref_{i}", "agency_id": agency}
                  for i, agency in enumerate(["a", "b", "a", "b"])]
        for e in events:
            await js.publish(s.accepted(e["agency_id"]), json.dumps(e).encode(),
                             headers={"Nats-Msg-Id": e["event_id"], "traceparent": f"00-{e['event_id']}-01"})
        await js.publish(s.rejected("a"), b'{"errors": []}', headers={"Nats-Msg-Id": "rejected-0"})
        for durable, processed in (("risk-accepted", 2), ("scheduling-accepted", 1)):  # each at its own pace
            await js.add_consumer(s.referrals_stream, ConsumerConfig(
                durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subjects=[s.accepted()]))
            sub = await js.pull_subscribe_bind(durable=durable, stream=s.referrals_stream)
            for msg in await sub.fetch(processed, timeout=5):
                await msg.ack_sync()
            await sub.unsubscribe()

        done = await provision(upgrade.provisioner, s, replicas=1)

        assert (s.intake_stream, "created") in [(p.stream, p.action) for p in done]
        assert [p.action for p in done if p.action.startswith("migrated")] == [
            (f"migrated: 3 accepted referrals not yet processed by risk or scheduling copied to {s.intake_stream}; "
             f"their consumers on {s.referrals_stream} removed")]
        copied = await _messages(js, s.intake_stream, ">")
        assert [(subject, json.loads(data)["referral_id"]) for subject, data, _ in copied] == [
            (s.recorded("b"), "ref_1"), (s.recorded("a"), "ref_2"), (s.recorded("b"), "ref_3")], \
            "after the slower consumer's floor, in order, each under its agency"
        assert [h["Nats-Msg-Id"] for _, _, h in copied] == ["accepted-1", "accepted-2", "accepted-3"]
        assert copied[0][2]["traceparent"] == "00-accepted-1-01", "the referral's trace goes on"
        assert ReferralRecorded.model_validate_json(copied[0][1]).previously_referred is not None, \
            "a version 1 body is what intake.recorded carries"
        assert not [c.name for c in await js.consumers_info(s.referrals_stream)], "the old consumers are gone"

        again = await provision(upgrade.provisioner, s, replicas=1)
        assert {p.action for p in again} == {"unchanged"}
        assert upgrade.refused == [], "the provisioner may do all of it"
        assert len(await _messages(js, s.intake_stream, ">")) == 3
    finally:
        for spec in s.streams():
            try:
                await js.delete_stream(spec.name)
            except NotFoundError:
                pass
