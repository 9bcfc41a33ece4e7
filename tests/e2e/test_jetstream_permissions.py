"""Each service's JetStream permissions cover only its own consumers and streams, and the pipeline runs on them;
`reroute person erase` reaches every stream (issue 11, item 3). An agency, with everything its own credentials let it
read, learns nothing of another agency's referral of the same child (issue 11, item 6), and cannot have the server's
own answers, aimed by naming a reply subject, taken for another agency's referral or for a service's event."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from apps.devstack.local_nats import start_nats_server
from apps.devstack.processes import SERVICES
from shared.nats_auth import (
    AGENCY_JS_API,
    admin_user,
    agency_inbox_prefix,
    agency_user,
    hash_password,
    inbox_prefix,
    provisioner_user,
    render_config,
    service_user,
)
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, launch_cluster, mentor, ready, referral, unique, unique_language
from tests.support.observer import OBSERVER, observer_user
from tests.support.stored import raw_held, stored_messages
from tests.support.suite import RUN_ID, drop_schemas
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class SecuredStack:
    """The three services on a nats-server with users, each service connecting as its own user."""

    cluster: Cluster
    agency: str
    agency_url: str
    other: str
    """A second agency."""
    other_url: str
    observer_url: str
    """The test's own eyes (tests/support/observer.py): every subject, any request."""


PASSWORD = "pw-test"


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[SecuredStack]:
    """As `reroute up` runs them: the services' users and permissions from shared/nats_auth.py, two agency users,
    the operator (which pings), the provisioner (which provisions the streams) and the test's observer; bare
    subjects (the permissions name them), so a nats-server of its own."""
    agency, other = unique("yot"), unique("police")
    users = [*(service_user(name, hash_password(PASSWORD)) for name in SERVICES), admin_user(hash_password(PASSWORD)),
             provisioner_user(hash_password(PASSWORD)),
             agency_user(agency, hash_password(PASSWORD)), agency_user(other, hash_password(PASSWORD)),
             observer_user(hash_password(PASSWORD))]
    config = tmp_path / "auth.conf"
    config.write_text(render_config(users))
    proc, url = start_nats_server(tmp_path / "nats", config=config, log_file=tmp_path / "nats.log")
    base = url.removeprefix("nats://")
    per_service = {name: {"NATS_URL": f"nats://{name}:{PASSWORD}@{base}", "REROUTE_INBOX_PREFIX": inbox_prefix(name)}
                   for name in SERVICES}
    cluster = launch_cluster(f"nats://operator:{PASSWORD}@{base}", tmp_path / "data", namespace="",
                             schema_prefix=f"t{RUN_ID}secured{uuid.uuid4().hex[:6]}", per_service=per_service,
                             provisioner_url=f"nats://provisioner:{PASSWORD}@{base}")
    try:
        yield SecuredStack(await ready(cluster), agency, f"nats://agency-{agency}:{PASSWORD}@{base}", other,
                           f"nats://agency-{other}:{PASSWORD}@{base}", f"nats://{OBSERVER}:{PASSWORD}@{base}")
    finally:
        cluster.processes.stop_all()
        drop_schemas(cluster)
        proc.terminate()
        proc.wait(timeout=10)


async def test_the_services_run_on_their_own_jetstream_permissions_and_erasure_reaches_every_stream(
    secured: SecuredStack,
) -> None:
    """With each service confined to its own consumers and streams, a referral goes from an agency to a booked
    session; `reroute person erase` then deletes every message the streams hold about that young person (the
    accepted event, the assessment, the sessions), and nothing about another young person."""
    cluster, agency = secured.cluster, secured.agency
    s, lang = cluster.subjects, unique_language()
    probe = await Probe.open(secured.observer_url, s)
    client = await nats.connect(secured.agency_url, inbox_prefix=agency_inbox_prefix(agency).encode())
    try:
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        erased, kept = unique("ERASE"), unique("KEEP")
        for arid, given in ((erased, "Zephyrine"), (kept, "Ottoline")):
            body = referral(arid, language=lang)
            body["young_person"]["given_name"] = given
            ack = await client.jetstream().publish(s.submitted(agency), json.dumps(body).encode(),
                                                   headers={"Nats-Msg-Id": uuid.uuid4().hex})
            assert ack.stream == s.submissions_stream
        accepted = {e["agency_referral_id"]: e for e in await probe.wait_for(s.recorded(agency), count=2)}
        rid, person, other = accepted[erased]["referral_id"], accepted[erased]["person_id"], accepted[kept]["referral_id"]
        await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] in (rid, other), count=2, timeout=20)

        js = probe.nc.jetstream()

        async def naming(referral_id: str, agency_referral_id: str) -> list[str]:
            """The streams holding a message about this referral."""
            found = []
            for stream, subject in s.agency_events(agency):
                for _, e in await stored_messages(js, stream, subject):
                    if e.get("referral_id") == referral_id or e.get("agency_referral_id") == agency_referral_id:
                        found.append(stream)
            return sorted(found)

        before = await naming(rid, erased)
        assert before == sorted([s.referrals_stream, s.intake_stream, s.risk_stream, s.sessions_stream]), before
        as_observer = dataclasses.replace(cluster, nats_url=secured.observer_url)  # the operator account may not
        # on the services' host, where their span files are (no console runs here to erase spans over NATS)
        done = await asyncio.to_thread(reroute, as_observer, cluster.data_dir, "person", "erase", person, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert await naming(rid, erased) == [], "every stored message about the erased young person is gone"
        assert await naming(other, kept) == before, "another young person's messages are untouched"
        assert await raw_held(js, s, agency) == 0
        logs = "".join(cluster.processes.log_file(n).read_text(errors="replace") for n in SERVICES)
        assert "permissions violation" not in logs.lower(), "no service was refused anything it needs"
    finally:
        await client.close()
        await probe.close()


async def test_an_agency_learns_nothing_of_another_agencys_referral_of_the_same_child(secured: SecuredStack) -> None:
    """`referrals.accepted` once carried `person_id` and `previously_referred`: an oracle for "is this child known to
    a gang-diversion service?". Here an agency subscribes, with its own credentials, to everything it may read; after
    another agency has referred a child, it refers that child and one nobody referred. Nothing it receives names the
    other agency's referral, a person id or earlier referrals, and what it is told about the two children has the
    same fields and, on its own subjects `referrals.*`, the same values. It can neither subscribe to intake's facts
    nor read their stream; risk still counts the repeat referral from them."""
    cluster, agency, other = secured.cluster, secured.agency, secured.other
    s, lang = cluster.subjects, unique_language()
    probe = await Probe.open(secured.observer_url, s)  # sees what the services see
    seen: list[tuple[str, dict[str, Any]]] = []
    refused: list[str] = []

    async def on_error(exc: Exception) -> None:
        refused.append(str(exc))

    watcher = await nats.connect(secured.agency_url, inbox_prefix=agency_inbox_prefix(agency).encode(),
                                 error_cb=on_error)
    police = await nats.connect(secured.other_url, inbox_prefix=agency_inbox_prefix(other).encode())

    async def record(msg: Msg) -> None:
        if msg.subject != s.submitted(agency):  # its own submissions come back to it, as it sent them
            seen.append((msg.subject, json.loads(msg.data)))

    try:
        for subject in (s.about_referrals(agency), s.sessions(agency)):  # all an agency may read (besides replies)
            await watcher.subscribe(subject, cb=record)
        await watcher.flush()
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        child = referral(unique("POLICE"), language=lang)
        child["young_person"] |= {"given_name": "Oyelaran", "family_name": unique("Known")}
        await police.jetstream().publish(s.submitted(other), json.dumps(child).encode(),
                                         headers={"Nats-Msg-Id": uuid.uuid4().hex})
        (theirs,) = await probe.wait_for(s.recorded(other))

        known = child | {"agency_referral_id": unique("KNOWN")}
        unknown = json.loads(json.dumps(child)) | {"agency_referral_id": unique("UNKNOWN")}
        unknown["young_person"]["family_name"] = unique("Unknown")
        for body in (known, unknown):
            await watcher.jetstream().publish(s.submitted(agency), json.dumps(body).encode(),
                                              headers={"Nats-Msg-Id": uuid.uuid4().hex})
        facts = {e["agency_referral_id"]: e for e in await probe.wait_for(s.recorded(agency), count=2)}
        assert facts[known["agency_referral_id"]]["person_id"] == theirs["person_id"], "the services know the child"
        assert facts[known["agency_referral_id"]]["previously_referred"]["count"] == 1
        assert "previously_referred" not in facts[unknown["agency_referral_id"]], "absent on a first referral"
        rids = {arid: e["referral_id"] for arid, e in facts.items()}
        booked = await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] in rids.values(), count=2,
                                      timeout=30)
        assert len(booked) == 2, "both booked with the one mentor: the same kinds of events for both"

        assessed = {e["referral_id"]: e for e in await probe.wait_for(s.assessed(agency), count=2)}
        repeat = "L06_referred_again_within_12_months"
        assert [repeat in {r["rule_id"] for r in assessed[rids[arid]]["likelihood"]["reasons"]}
                for arid in (known["agency_referral_id"], unknown["agency_referral_id"])] == [True, False], \
            "risk still scores the repeat referral, from facts the agency never sees"

        # every event the watcher could receive about the two referrals has arrived (ordered per subject)
        await wait_until(lambda: len([e for subj, e in seen if subj == s.scheduled(agency)]) >= 2
                         and len([e for subj, e in seen if subj == s.accepted(agency)]) >= 2,
                         timeout=10, what="the agency receiving its own accepted and sessions events")
        told = json.dumps([e for _, e in seen])
        for secret in (theirs["person_id"], theirs["referral_id"], theirs["agency_referral_id"], other,
                       "person_id", "previously_referred"):
            assert secret not in told, f"the agency was told {secret!r}"

        def about(arid: str) -> list[tuple[str, dict[str, Any]]]:
            rid = rids[arid]
            return [(subj.rsplit(".", 2)[-2], e) for subj, e in seen if e.get("referral_id") == rid]

        ids = {"event_id", "referral_id", "agency_referral_id", "status_url", "occurred_at", "received_at"}
        known_told, unknown_told = about(known["agency_referral_id"]), about(unknown["agency_referral_id"])
        assert [(kind, sorted(e)) for kind, e in known_told] == [(kind, sorted(e)) for kind, e in unknown_told], \
            "the same events with the same fields"
        assert [{k: v for k, v in e.items() if k not in ids} for kind, e in known_told if kind == "accepted"] == \
            [{k: v for k, v in e.items() if k not in ids} for kind, e in unknown_told if kind == "accepted"], \
            "and the same acceptance"

        for forbidden in (s.recorded(agency), s.recorded(), "intake.>"):
            await watcher.subscribe(forbidden)
        await watcher.flush()
        await wait_until(lambda: len([r for r in refused if "permissions violation for subscription" in r]) >= 3,
                         timeout=10, what="the server refusing each subscription to intake's facts")
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)):
            await watcher.jetstream(timeout=1).get_msg(s.intake_stream, seq=1)
        await wait_until(lambda: any(f'publish to "$JS.API.STREAM.MSG.GET.{s.intake_stream}"'.lower() in r.lower()
                                     for r in refused),
                         timeout=10, what=lambda: f"the server refusing to read the INTAKE stream (errors: {refused})")
    finally:
        await watcher.close()
        await police.close()
        await probe.close()


def _dropped(metrics: str, consumer: str) -> float:
    """`reroute_messages_dropped_total` of a consumer, for the server's replies, from a /metrics page (0 if absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("reroute_messages_dropped_total{") and f'consumer="{consumer}"' in line
               and 'reason="server_reply"' in line)


async def test_the_servers_replies_an_agency_aims_at_another_agency_or_at_the_services_stay_in_its_own_account(
    secured: SecuredStack,
) -> None:
    """The reply subject of a message is its sender's to choose, and the server publishes its answer there with its
    own authority, whatever the sender may publish: a PubAck, an error, a consumer's information, the empty answer to
    an acknowledgement. Agency A, with only its own credentials, aims each at agency B's submission and outcome
    subjects and at the services' `intake.recorded`. Before each agency had an account of its own, intake told B its
    "referral" was malformed (a rejection B never caused), the streams kept the answers, and B's durable consumer
    delivered them. Now each answer goes to that subject in A's own account: A gets the same answers on its own
    inbox, while B hears of nothing but its own next referral, no service sees (or has to drop) any of them, and no
    stream keeps one."""
    cluster, a, b = secured.cluster, secured.agency, secured.other
    s = cluster.subjects
    probe = await Probe.open(secured.observer_url, s)
    attacker = await nats.connect(secured.agency_url, inbox_prefix=agency_inbox_prefix(a).encode())
    victim = await nats.connect(secured.other_url, inbox_prefix=agency_inbox_prefix(b).encode())
    told_b: list[dict[str, Any]] = []
    answered_a: list[bytes] = []

    async def hear(msg: Msg) -> None:
        told_b.append(json.loads(msg.data))

    async def answered(msg: Msg) -> None:
        answered_a.append(msg.data)

    try:
        assert "error" not in await probe.rpc("intake", "agencies.add", {"agency_id": a, "name": "Attacker"})
        for told in (s.about_referrals(b), s.sessions(b)):  # everything b may hear live
            await victim.subscribe(told, cb=hear)
        await victim.flush()
        js = attacker.jetstream(prefix=AGENCY_JS_API)
        # one of agency a's own outcomes, read from its own consumer, so it has a message to acknowledge
        await js.publish(s.submitted(a), b"{}")
        own = await js.subscribe(s.about_referrals(a), durable=f"agency-{a}", stream=s.referrals_stream,
                                 manual_ack=True)
        outcome = await own.next_msg(timeout=30)

        async def aim_each_at(target: str) -> None:
            await attacker.publish(s.submitted(a), b'{"agency_referral_id": "A-1"}', reply=target)  # a PubAck
            await attacker.publish(s.updated(a), b"{}", reply=target, headers={"Nats-Expected-Stream": "NONE"})  # error
            await attacker.publish(f"{AGENCY_JS_API}.CONSUMER.INFO.{s.referrals_stream}.agency-{a}", b"", reply=target)
            await attacker.publish(outcome.reply, b"+ACK", reply=target)  # the empty answer to an acknowledgement

        targets = [s.submitted(b), s.updated(b), s.recorded(b), s.accepted(b), s.rejected(b), s.scheduled(b),
                   s.alert(b)]
        for target in targets:
            await aim_each_at(target)
        # The same four aimed at a's own inbox arrive there: the server answers, in a's own account.
        mine = f"{agency_inbox_prefix(a)}.answers"
        await attacker.subscribe(mine, cb=answered)
        await aim_each_at(mine)
        await attacker.flush()
        await wait_until(lambda: len(answered_a) == 4, timeout=30,
                         what=lambda: f"the server's four answers on a's own inbox (got {answered_a})")
        assert any(b'"stream"' in body for body in answered_a) and any(b'"error"' in body for body in answered_a), \
            answered_a

        sentinel = unique("B-OWN")  # b's own referral, not valid: its rejection is the first b may hear of
        await victim.jetstream(prefix=AGENCY_JS_API).publish(
            s.submitted(b), json.dumps({"agency_referral_id": sentinel}).encode())
        await wait_until(lambda: any(e.get("agency_referral_id") == sentinel and "event_id" in e for e in told_b),
                         timeout=30, what=lambda: f"b told of its own rejection (told: {told_b})")
        heard = [e for e in told_b if e.get("agency_referral_id") != sentinel]  # its own submission, and the answer
        assert heard == [], f"b was told only of its own referral, not of what a aimed at it: {told_b}"
        for stream, subject in ((s.intake_stream, s.recorded(b)), (s.referrals_stream, s.about_referrals(b)),
                                (s.sessions_stream, s.sessions(b)), (s.safeguarding_stream, s.alert(b))):
            kept = [body for _, body in await stored_messages(probe.nc.jetstream(), stream, subject)]
            assert all("event_id" in body for body in kept), f"{stream} kept none of the server's answers: {kept}"
        for service in SERVICES:
            held = (await probe.rpc(service, "deadletters.list", {}))["dead_letters"]
            assert held == [], f"{service} kept none of the server's answers as dead letters: {held}"
        async with httpx.AsyncClient(timeout=5) as http:
            for service, consumer in (("intake", "intake-submitted"), ("risk", "risk-recorded"),
                                      ("scheduling", "scheduling-recorded")):
                ops = f"{(await probe.rpc(service, 'ping', {}))['ops_url']}/metrics"
                assert _dropped((await http.get(ops)).text, consumer) == 0, f"{service} had nothing to drop"
    finally:
        await attacker.close()
        await victim.close()
        await probe.close()
