"""NATS permissions against a real nats-server: agencies confined to their own traffic.

No test sleeps and hopes: each waits for the event it expects (the server's permission-violation error, a
message, a connection), with a timeout that fails saying what did not happen. A check that something did NOT
happen relies on order: the server answers one connection's messages in the order they were sent, so once the
answer to a later message is in, none is still coming for an earlier one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.aio.client
import nats.aio.msg
import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RePublish, StreamConfig, StreamSource

from apps.devstack.local_nats import start_nats_server
from shared.nats_auth import (
    admin_user,
    agency_inbox_prefix,
    agency_user,
    hash_password,
    inbox_prefix,
    notifier_user,
    provisioner_user,
    render_config,
    service_user,
)
from shared.streams import provision
from shared.subjects import Subjects
from tests.support.waiting import wait_until

PASSWORDS = {"a": "pw-a", "b": "pw-b", "intake": "pw-intake", "risk": "pw-risk", "scheduling": "pw-sched",
             "operator": "pw-op", "notifier": "pw-notifier", "provisioner": "pw-prov"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("nats-auth")
    users = [agency_user("a", hash_password(PASSWORDS["a"])), agency_user("b", hash_password(PASSWORDS["b"])),
             *(service_user(s, hash_password(PASSWORDS[s])) for s in ("intake", "risk", "scheduling")),
             admin_user(hash_password(PASSWORDS["operator"])), notifier_user(hash_password(PASSWORDS["notifier"])),
             provisioner_user(hash_password(PASSWORDS["provisioner"]))]
    conf = store / "auth.conf"
    conf.write_text(render_config(users))
    proc, url = start_nats_server(store / "js", config=conf)  # returns once the server listens
    yield url.removeprefix("nats://")
    proc.terminate()
    proc.wait(timeout=10)


class Errors:
    """Collects the server's asynchronous -ERR messages (permission violations arrive this way)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._arrived = asyncio.Condition()

    async def callback(self, exc: Exception) -> None:
        async with self._arrived:
            self.seen.append(str(exc))
            self._arrived.notify_all()

    async def expect(self, fragment: str, *, timeout: float = 10) -> str:
        """Wait for an error holding `fragment` (in any case); fails naming it and the errors that did come."""

        def matching() -> list[str]:
            return [e for e in self.seen if fragment.lower() in e.lower()]

        try:
            async with self._arrived:
                await asyncio.wait_for(self._arrived.wait_for(matching), timeout)
        except TimeoutError:
            raise AssertionError(f"no error with {fragment!r} within {timeout:g} s; errors: {self.seen}") from None
        return matching()[0]


@pytest.fixture
async def streams(server: str) -> AsyncIterator[None]:
    """The streams as `reroute streams provision` makes them, as the provisioner."""
    nc = await _provisioner(server, Errors())
    await provision(nc.jetstream(), Subjects(), replicas=1)
    yield
    await nc.close()


async def _agency(server: str, agency: str, errors: Errors) -> nats.aio.client.Client:
    return await nats.connect(f"nats://agency-{agency}:{PASSWORDS[agency]}@{server}", error_cb=errors.callback,
                              inbox_prefix=agency_inbox_prefix(agency).encode(), max_reconnect_attempts=1)


@pytest.mark.parametrize("verb", ["submitted", "updated", "withdraw"])
async def test_an_agency_may_publish_its_own_referrals(server: str, streams: None, verb: str) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    ack = await nc.jetstream().publish(f"referrals.{verb}.a", b"{}")
    assert ack.stream == "SUBMISSIONS"
    await nc.close()


@pytest.mark.parametrize("subject", ["referrals.submitted.b", "referrals.updated.b", "referrals.withdraw.b",
                                     "referrals.withdrawn.a", "referrals.accepted.a", "intake.withdrawn.a"])
async def test_an_agency_cannot_publish_as_another(server: str, streams: None, subject: str) -> None:
    """Nor as intake: an agency cannot withdraw another's referral, nor forge its own outcomes."""
    errors = Errors()
    nc = await _agency(server, "a", errors)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.jetstream().publish(subject, b"{}", timeout=1)
    await errors.expect(f'permissions violation for publish to "{subject}"')
    await nc.close()


@pytest.mark.parametrize("subject", ["referrals.accepted.b", "sessions.scheduled.b", "risk.>", "safeguarding.>",
                                     "risk.assessed.a", "$JS.API.>", "intake.recorded.a", "intake.recorded.*",
                                     "intake.>", "referrals.>", ">"])
async def test_an_agency_cannot_read_what_is_not_its_own(server: str, streams: None, subject: str) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    await nc.subscribe(subject)
    await errors.expect(f'permissions violation for subscription to "{subject}"')
    await nc.close()


async def test_an_agency_cannot_touch_streams(server: str, streams: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.jetstream(timeout=1).stream_info("RISK")
    # refused, not merely slow: the server said so (no answer is ever coming)
    await errors.expect('permissions violation for publish to "$JS.API.STREAM.INFO.RISK"')
    await nc.close()


async def _pull(js: JetStreamContext, stream: str, durable: str) -> None:
    """Pull one message as `durable` would: binding sends nothing, the first fetch asks."""
    await (await js.pull_subscribe_bind(durable=durable, stream=stream)).fetch(1, timeout=1)


async def _refused(errors: Errors, subject: str, call: Callable[[], Awaitable[object]]) -> None:
    """`call` gets no answer, and the server says it refused the publish to `subject` (refused, not merely slow)."""
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)):
        await call()
    await errors.expect(f'permissions violation for publish to "{subject}"')


@pytest.mark.parametrize("attempt", ["read a message", "read its info", "create a consumer", "pull as risk"])
async def test_an_agency_cannot_read_the_stream_of_intakes_facts(server: str, streams: None, attempt: str) -> None:
    """INTAKE holds `intake.recorded`: the pseudonymous person id and earlier referrals by any agency. An agency may
    not reach it through the JetStream API either, whatever it tries."""
    intake = await _service(server, "intake", Errors())
    await intake.jetstream().publish("intake.recorded.a", b'{"person_id": "psn_x", "previously_referred": null}')
    await intake.close()
    errors = Errors()
    nc = await _agency(server, "a", errors)
    js = nc.jetstream(timeout=1)
    refused = {
        "read a message": ("$JS.API.STREAM.MSG.GET.INTAKE", lambda: js.get_msg("INTAKE", seq=1)),
        "read its info": ("$JS.API.STREAM.INFO.INTAKE", lambda: js.stream_info("INTAKE")),
        "create a consumer": ("$JS.API.CONSUMER.DURABLE.CREATE.INTAKE.spy", lambda: js.add_consumer(
            "INTAKE", ConsumerConfig(durable_name="spy", ack_policy=AckPolicy.EXPLICIT))),
        "pull as risk": ("$JS.API.CONSUMER.MSG.NEXT.INTAKE.risk-recorded", lambda: _pull(js, "INTAKE", "risk-recorded")),
    }
    subject, call = refused[attempt]
    try:
        await _refused(errors, subject, call)
    finally:
        await nc.close()


async def test_an_agency_reads_its_own_outcomes(server: str, streams: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    sub = await nc.subscribe("referrals.accepted.a")
    await nc.flush()  # the server has the subscription (or has refused it) before intake publishes
    intake = await nats.connect(f"nats://intake:{PASSWORDS['intake']}@{server}")
    await intake.publish("referrals.accepted.a", b"ok")
    await intake.publish("referrals.accepted.a", b"sentinel")
    await intake.flush()
    got = [(await sub.next_msg(timeout=10)).data for _ in range(2)]
    assert got == [b"ok", b"sentinel"] and not errors.seen  # nothing else came before the sentinel
    await intake.close()
    await nc.close()


async def test_a_service_publishes_only_its_own_events(server: str, streams: None) -> None:
    errors = Errors()
    risk = await nats.connect(f"nats://risk:{PASSWORDS['risk']}@{server}", error_cb=errors.callback)
    await risk.publish("risk.assessed.a", b"{}")
    await risk.publish("referrals.accepted.a", b"{}")
    await errors.expect('permissions violation for publish to "referrals.accepted.a"')
    # an error for the allowed publish, sent before it, would have come before this one
    assert len(errors.seen) == 1 and "referrals.accepted.a" in errors.seen[0]
    await risk.close()


async def test_a_new_agency_is_admitted_after_a_reload_and_a_revoked_one_shut_out(tmp_path: Path) -> None:
    import signal

    from apps.devstack.local_nats import start_nats_server
    from shared.nats_auth import AgencyCredential, LocalCredentials, NatsAuthFile

    creds = LocalCredentials.load_or_create(tmp_path / "creds.json")
    auth = NatsAuthFile(tmp_path / "auth.conf", creds)
    auth.write(agencies=[])
    proc, url = start_nats_server(tmp_path / "js", config=auth.path)
    try:
        base = url.removeprefix("nats://")
        with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
            await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1, allow_reconnect=False)
        agency_c = [AgencyCredential("c", hash_password("pw-c"))]
        assert auth.write(agencies=agency_c)
        assert not auth.write(agencies=list(agency_c)), "unchanged: nothing to reload"
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: admitted(base), timeout=10, every=0.1, what="agency c admitted after the reload")
        nc = await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1,
                                inbox_prefix=agency_inbox_prefix("c").encode())
        await nc.publish("referrals.submitted.c", b"{}")
        await nc.flush()
        await nc.close()
        auth.write(agencies=[])
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: refused(base), timeout=10, every=0.1, what="agency c shut out after the reload")
        with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
            await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1, allow_reconnect=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def admitted(base: str) -> bool:
    """Whether agency c can connect now (a reload takes effect a moment after SIGHUP)."""
    return not await refused(base)


async def refused(base: str) -> bool:
    """Whether the server turns agency c away now."""
    try:
        nc = await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1, allow_reconnect=False)
    except (nats.errors.NoServersError, nats.errors.Error, OSError):
        return True
    await nc.close()
    return False


async def test_intake_may_ask_which_referrals_are_held_and_risk_may_not_ask_intake(server: str) -> None:
    """An agency's status says 'held for review' only if intake may ask risk and scheduling for their dead letters."""
    errors = Errors()
    intake = await nats.connect(f"nats://intake:{PASSWORDS['intake']}@{server}", error_cb=errors.callback,
                                inbox_prefix=inbox_prefix("intake").encode())
    risk = await nats.connect(f"nats://risk:{PASSWORDS['risk']}@{server}", error_cb=errors.callback)
    scheduling = await nats.connect(f"nats://scheduling:{PASSWORDS['scheduling']}@{server}",
                                    error_cb=errors.callback)
    try:
        async def answer(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b'{"held": {}}')

        await risk.subscribe("reroute.rpc.risk.deadletters.held", cb=answer)
        await scheduling.subscribe("reroute.rpc.scheduling.deadletters.held", cb=answer)
        await risk.flush()
        await scheduling.flush()
        for service in ("risk", "scheduling"):
            reply = await intake.request(f"reroute.rpc.{service}.deadletters.held", b"{}", timeout=5)
            assert reply.data == b'{"held": {}}'
        await risk.publish("reroute.rpc.intake.first_name", b"{}")
        await errors.expect('permissions violation for publish to "reroute.rpc.intake.first_name"')
    finally:
        for nc in (intake, risk, scheduling):
            await nc.close()


@pytest.mark.parametrize("inbox", ["_INBOX_intake.>", "_INBOX_risk.x", "_INBOX_scheduling.>", "_INBOX.>",
                                   "_INBOX_AGENCY.b.>", "_INBOX_AGENCY.>", "_INBOX_b.>"])
async def test_an_agency_can_never_subscribe_to_another_partys_inbox(server: str, streams: None, inbox: str) -> None:
    """Replies to the services (raw referrals, first names, assessments), the operator and other agencies stay
    theirs: agencies' inboxes live under _INBOX_AGENCY.<id>, which no id can make into anyone else's."""
    errors = Errors()
    agency = await _agency(server, "a", errors)
    try:
        await agency.subscribe(inbox)
        await errors.expect(f'permissions violation for subscription to "{inbox}"')
        await agency.subscribe(f"{agency_inbox_prefix('a')}.mine")  # its own: allowed, so no error follows
        reply = await agency.request("referrals.submitted.a", b"{}", timeout=5)  # a JetStream PubAck, via its inbox
        assert reply.data and len(errors.seen) == 1, errors.seen
    finally:
        await agency.close()


async def _service(server: str, name: str, errors: Errors) -> nats.aio.client.Client:
    return await nats.connect(f"nats://{name}:{PASSWORDS[name]}@{server}", error_cb=errors.callback,
                              inbox_prefix=inbox_prefix(name).encode(), max_reconnect_attempts=1)


@pytest.mark.parametrize("service", ["risk", "scheduling"])
@pytest.mark.parametrize("attempt", ["read a message", "create a consumer", "pull as intake", "read its info"])
async def test_risk_and_scheduling_cannot_reach_the_raw_submissions(
    server: str, streams: None, service: str, attempt: str
) -> None:
    """Raw referrals (names, birth date, contact details, free text) wait in SUBMISSIONS for intake alone: the other
    services' JetStream permissions name only their own consumers and streams (they had `$JS.API.>`)."""
    errors = Errors()
    agency = await _agency(server, "a", errors)
    await agency.jetstream().publish("referrals.submitted.a", b'{"young_person": {"given_name": "Zephyrine"}}')
    await agency.close()
    nc = await _service(server, service, errors)
    js = nc.jetstream(timeout=1)
    refused = {
        "read a message": ("$JS.API.STREAM.MSG.GET.SUBMISSIONS", lambda: js.get_msg("SUBMISSIONS", 1)),
        "create a consumer": ("$JS.API.CONSUMER.DURABLE.CREATE.SUBMISSIONS.spy", lambda: js.add_consumer(
            "SUBMISSIONS", ConsumerConfig(durable_name="spy", ack_policy=AckPolicy.EXPLICIT))),
        "pull as intake": ("$JS.API.CONSUMER.MSG.NEXT.SUBMISSIONS.intake-submitted",
                           lambda: _pull(js, "SUBMISSIONS", "intake-submitted")),
        "read its info": ("$JS.API.STREAM.INFO.SUBMISSIONS", lambda: js.stream_info("SUBMISSIONS")),
    }
    subject, call = refused[attempt]
    try:
        await _refused(errors, subject, call)
    finally:
        await nc.close()


async def test_each_service_may_use_its_own_consumers_and_streams(server: str, streams: None) -> None:
    """What the narrowed permissions still allow: each service binds, pulls and acknowledges on its own consumers
    and reads its own streams' info, with no permission violation."""
    errors = Errors()
    agency = await nats.connect(f"nats://agency-a:{PASSWORDS['a']}@{server}",
                                inbox_prefix=agency_inbox_prefix("a").encode())
    await agency.jetstream().publish("referrals.submitted.a", b"{}")
    await agency.close()
    for service, subject in (("intake", "intake.recorded.a"), ("risk", "risk.assessed.a")):  # as they publish them
        nc = await _service(server, service, errors)
        await nc.jetstream().publish(subject, b"{}")
        await nc.close()
    own = {"intake": [("SUBMISSIONS", "intake-submitted", "referrals.submitted.*")],
           "risk": [("INTAKE", "risk-recorded", "intake.recorded.*")],
           "scheduling": [("INTAKE", "scheduling-recorded", "intake.recorded.*"),
                          ("RISK", "scheduling-assessed", "risk.assessed.*")]}
    for service, consumers in own.items():
        nc = await _service(server, service, errors)
        js = nc.jetstream(timeout=5)
        for stream, durable, subject in consumers:
            await js.stream_info(stream)
            await js.add_consumer(stream, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                                         filter_subjects=[subject]))
            sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
            for msg in await sub.fetch(1, timeout=5):
                await msg.ack_sync()
            await js.consumer_info(stream, durable)
        await nc.close()
    assert not errors.seen, errors.seen


async def test_risk_may_ask_scheduling_which_referrals_are_closed_so_they_are_not_due_for_review(server: str) -> None:
    errors = Errors()
    risk = await nats.connect(f"nats://risk:{PASSWORDS['risk']}@{server}", error_cb=errors.callback,
                              inbox_prefix=inbox_prefix("risk").encode())
    scheduling = await nats.connect(f"nats://scheduling:{PASSWORDS['scheduling']}@{server}",
                                    error_cb=errors.callback)
    try:
        async def answer(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b'{"referral_ids": ["ref_closed"]}')

        await scheduling.subscribe("reroute.rpc.scheduling.closed.before", cb=answer)
        await scheduling.flush()
        reply = await risk.request("reroute.rpc.scheduling.closed.before", b'{"days": 0}', timeout=5)
        assert reply.data == b'{"referral_ids": ["ref_closed"]}'
        assert errors.seen == []
    finally:
        for nc in (risk, scheduling):
            await nc.close()


@pytest.mark.parametrize("subject", [
    "reroute.rpc.risk.alerts.ack", "reroute.rpc.scheduling.alerts.ack", "reroute.ask.dana.risk.alerts.list",
    "safeguarding.alert.a", "reroute.rpc.intake.person.find", "$JS.API.STREAM.INFO.INTAKE",
    "$JS.API.STREAM.MSG.GET.SAFEGUARDING", "$JS.API.CONSUMER.CREATE.SAFEGUARDING.someone-else",
    "$JS.API.CONSUMER.MSG.NEXT.INTAKE.risk-recorded", "$KV.SOMEONE_ELSES.key"])
async def test_the_notifier_may_only_read_alerts_and_keep_its_escalations(server: str, streams: None,
                                                                         subject: str) -> None:
    """It reads and lists alerts; it cannot acknowledge one (nor in a person's name), forge one, or read anything
    else (a person, intake's facts, another consumer or bucket)."""
    errors = Errors()
    nc = await nats.connect(f"nats://notifier:{PASSWORDS['notifier']}@{server}", error_cb=errors.callback,
                            inbox_prefix=inbox_prefix("notifier").encode(), max_reconnect_attempts=1)
    await nc.publish(subject, b"{}")
    await errors.expect(f'permissions violation for publish to "{subject}"')
    await nc.close()


async def _operator(server: str, errors: Errors) -> nats.aio.client.Client:
    return await nats.connect(f"nats://operator:{PASSWORDS['operator']}@{server}", error_cb=errors.callback,
                              max_reconnect_attempts=1)


async def _provisioner(server: str, errors: Errors) -> nats.aio.client.Client:
    return await nats.connect(f"nats://provisioner:{PASSWORDS['provisioner']}@{server}", error_cb=errors.callback,
                              inbox_prefix=inbox_prefix("provisioner").encode(), max_reconnect_attempts=1)


async def _raw_submission_held(server: str) -> bool:
    """Whether agency a's raw submission still waits in SUBMISSIONS for intake (read as the provisioner, which may
    read the stream's info but none of its messages)."""
    nc = await _provisioner(server, Errors())
    try:
        held = await nc.jetstream(timeout=5).stream_info("SUBMISSIONS", subjects_filter="referrals.submitted.a")
        return (held.state.subjects or {}).get("referrals.submitted.a", 0) >= 1
    finally:
        await nc.close()

async def _a_raw_submission(server: str, errors: Errors) -> None:
    """Agency a submits a referral: its raw submission waits in SUBMISSIONS for intake."""
    agency = await _agency(server, "a", errors)
    await agency.jetstream().publish("referrals.submitted.a", b'{"young_person": {"given_name": "Zephyrine"}}')
    await agency.close()


def _reaching_raw_submissions(js: JetStreamContext) -> dict[str, tuple[str, Callable[[], Awaitable[object]]]]:
    """What reaches raw submissions, removes them, or acts in an agency's name: refused to everyone but intake (and
    the agency its own). Each: the subject the server refuses, and the attempt."""
    spy = StreamConfig(name="SPY", subjects=["spy.>"], sources=[StreamSource(name="SUBMISSIONS")])
    return {
        "read a raw submission": ("$JS.API.STREAM.MSG.GET.SUBMISSIONS", lambda: js.get_msg("SUBMISSIONS", 1)),
        "read it directly": ("$JS.API.DIRECT.GET.SUBMISSIONS", lambda: js.get_msg("SUBMISSIONS", 1, direct=True)),
        "consume them": ("$JS.API.CONSUMER.DURABLE.CREATE.SUBMISSIONS.spy", lambda: js.add_consumer(
            "SUBMISSIONS", ConsumerConfig(durable_name="spy", ack_policy=AckPolicy.EXPLICIT))),
        "pull as intake": ("$JS.API.CONSUMER.MSG.NEXT.SUBMISSIONS.intake-submitted",
                           lambda: _pull(js, "SUBMISSIONS", "intake-submitted")),
        "copy them to a stream of its own": ("$JS.API.STREAM.CREATE.SPY", lambda: js.add_stream(spy)),
        "purge them": ("$JS.API.STREAM.PURGE.SUBMISSIONS", lambda: js.purge_stream("SUBMISSIONS")),
        "delete their stream": ("$JS.API.STREAM.DELETE.SUBMISSIONS", lambda: js.delete_stream("SUBMISSIONS")),
        "read intake's facts": ("$JS.API.STREAM.MSG.GET.INTAKE", lambda: js.get_msg("INTAKE", 1)),
        "list the streams": ("$JS.API.STREAM.LIST", lambda: js.streams_info()),
        "withdraw a referral as an agency": ("referrals.withdraw.a", lambda: js.publish("referrals.withdraw.a", b"{}")),
    }


async def _refused_and_still_held(server: str, nc: nats.aio.client.Client, errors: Errors, subject: str,
                                  call: Callable[[], Awaitable[object]]) -> None:
    """`call` is refused on `subject`, and agency a's raw submission still waits for intake."""
    try:
        await _refused(errors, subject, call)
        assert await _raw_submission_held(server), "the raw submission waits for intake"
    finally:
        await nc.close()


@pytest.mark.parametrize("attempt", [
    "read a raw submission", "read it directly", "consume them", "pull as intake", "copy them to a stream of its own",
    "delete one", "purge them", "delete their stream", "delete the outcomes' stream", "read intake's facts",
    "list the streams", "withdraw a referral as an agency", "submit a referral as an agency",
    "update a referral as an agency", "record a fact as intake", "purge the outcomes' stream",
    "delete an outcome", "read an outcome", "read a stream's info", "delete the earlier intake's consumer"])
async def test_the_operator_account_cannot_read_raw_submissions_nor_purge_or_delete_a_stream(
    server: str, streams: None, attempt: str
) -> None:
    """The installation's account had `$JS.API.>`: it could get any stored message into its own inbox (a raw
    submission: a child's name, birth date, contact details), purge or delete any stream. Then it had provisioning's
    API (stream info, create, update; the earlier layout's upgrade on REFERRALS: its messages, its purge, its old
    consumers, and publishing where the upgrade moves pending messages), which let it put a referral on an agency's
    subject or a fact on intake's, or purge outcomes agencies had not had yet. Now provisioning is the provisioner's
    and the operator keeps only the demo's alerts, so each of these is refused, and the raw submission is still there
    for intake."""
    errors = Errors()
    await _a_raw_submission(server, errors)
    nc = await _operator(server, errors)
    js = nc.jetstream(timeout=1)
    refused = {**_reaching_raw_submissions(js),
        "delete one": ("$JS.API.STREAM.MSG.DELETE.SUBMISSIONS",  # as js.delete_msg asks, with a shorter timeout
                       lambda: nc.request("$JS.API.STREAM.MSG.DELETE.SUBMISSIONS", b'{"seq": 1}', timeout=1)),
        "delete the outcomes' stream": ("$JS.API.STREAM.DELETE.REFERRALS", lambda: js.delete_stream("REFERRALS")),
        "submit a referral as an agency": ("referrals.submitted.a", lambda: js.publish("referrals.submitted.a", b"{}")),
        "update a referral as an agency": ("referrals.updated.a", lambda: js.publish("referrals.updated.a", b"{}")),
        "record a fact as intake": ("intake.recorded.a", lambda: js.publish("intake.recorded.a", b"{}")),
        "purge the outcomes' stream": ("$JS.API.STREAM.PURGE.REFERRALS", lambda: js.purge_stream("REFERRALS")),
        "delete an outcome": ("$JS.API.STREAM.MSG.DELETE.REFERRALS",
                              lambda: nc.request("$JS.API.STREAM.MSG.DELETE.REFERRALS", b'{"seq": 1}', timeout=1)),
        "read an outcome": ("$JS.API.STREAM.MSG.GET.REFERRALS", lambda: js.get_msg("REFERRALS", 1)),
        "read a stream's info": ("$JS.API.STREAM.INFO.REFERRALS", lambda: js.stream_info("REFERRALS")),
        "delete the earlier intake's consumer": ("$JS.API.CONSUMER.DELETE.REFERRALS.intake-submitted",
                                                 lambda: js.delete_consumer("REFERRALS", "intake-submitted")),
    }
    await _refused_and_still_held(server, nc, errors, *refused[attempt])


STREAMS = ("REFERRALS", "SUBMISSIONS", "INTAKE", "RISK", "SAFEGUARDING", "SESSIONS", "DEADLETTER")


@pytest.mark.parametrize("stream", STREAMS)
async def test_the_operator_account_cannot_reconfigure_a_stream_to_capture_requests_or_empty_it(
    server: str, streams: None, stream: str
) -> None:
    """Updating a stream is administering it: tried on review, DEADLETTER given `reroute.ask.>` and a republish to
    the operator's inbox delivered a person's `person.find` (a name, a birth date) to it; cut limits empty a stream.
    The operator may update none of the seven (nor provision them: the provisioner does), and each stream's
    configuration is as provisioning left it."""
    assert set(STREAMS) == {spec.name for spec in Subjects().streams()}
    errors = Errors()
    provisioner = await _provisioner(server, errors)
    before = (await provisioner.jetstream(timeout=5).stream_info(stream)).config
    nc = await _operator(server, errors)
    capture = StreamConfig.from_response(before.as_dict())
    capture.subjects = [*(before.subjects or []), "reroute.ask.>"]
    capture.republish = RePublish(src=">", dest="_INBOX.spy.>")
    capture.max_msgs = 1
    try:
        await _refused(errors, f"$JS.API.STREAM.UPDATE.{stream}", lambda: nc.jetstream(timeout=1).update_stream(capture))
        await _refused(errors, "$JS.API.STREAM.INFO.REFERRALS",
                       lambda: provision(nc.jetstream(timeout=1), Subjects(), replicas=1))
        after = (await provisioner.jetstream(timeout=5).stream_info(stream)).config
        assert after.subjects == before.subjects and after.republish is None and after.max_msgs == before.max_msgs
    finally:
        await nc.close()
        await provisioner.close()


async def test_the_operator_account_reads_the_demos_alerts_and_asks_pings_on_its_own_permissions(
    server: str, streams: None
) -> None:
    """What it is for still works with no permission violation: reading an agency's alerts through an ordered
    consumer of SAFEGUARDING (`reroute up --demo`), and asking for pings and the users' password hashes (no services
    run here: nobody answers)."""
    errors = Errors()
    risk = await _service(server, "risk", errors)
    await risk.jetstream().publish("safeguarding.alert.a", b'{"event_id": "alert-1"}')
    await risk.close()
    nc = await _operator(server, errors)
    try:
        sub = await nc.jetstream().subscribe("safeguarding.alert.a", ordered_consumer=True, stream="SAFEGUARDING")
        assert (await sub.next_msg(timeout=5)).data == b'{"event_id": "alert-1"}'
        await sub.unsubscribe()
        for subject in ("reroute.rpc.intake.ping", "reroute.rpc.intake.agencies.nats", "reroute.rpc.intake.people.nats"):
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request(subject, b"{}", timeout=5)
        await nc.flush()
        assert errors.seen == []
    finally:
        await nc.close()


async def test_the_provisioner_provisions_on_its_own_permissions(server: str, streams: None) -> None:
    """Provisioning again (by name) as the provisioner, with no permission violation; the upgrades of an earlier
    layout run on these permissions in tests/integration/test_streams.py."""
    errors = Errors()
    nc = await _provisioner(server, errors)
    try:
        assert {p.action for p in await provision(nc.jetstream(), Subjects(), replicas=1)} == {"unchanged"}
        await nc.flush()
        assert errors.seen == []
    finally:
        await nc.close()


@pytest.mark.parametrize("attempt", [
    "read a raw submission", "read it directly", "consume them", "pull as intake", "copy them to a stream of its own",
    "purge them", "delete their stream", "read intake's facts", "list the streams", "ask intake for a person",
    "ask in a person's name", "ask for a ping", "ask for the agencies' passwords", "withdraw a referral as an agency"])
async def test_the_provisioner_cannot_read_raw_submissions_nor_ask_anything(
    server: str, streams: None, attempt: str
) -> None:
    """The provisioner administers the streams, and that is all: it cannot get a raw submission into its inbox
    (`STREAM.MSG.GET`, `DIRECT.GET`), consume, pull or copy SUBMISSIONS, read intake's facts, delete or purge a
    stream other than the earlier layout's REFERRALS, nor publish a request of any kind."""
    errors = Errors()
    await _a_raw_submission(server, errors)
    nc = await _provisioner(server, errors)
    js = nc.jetstream(timeout=1)
    refused = {**_reaching_raw_submissions(js),
        "ask intake for a person": ("reroute.rpc.intake.person.find",
                                    lambda: nc.request("reroute.rpc.intake.person.find", b"{}", timeout=1)),
        "ask in a person's name": ("reroute.ask.dana.intake.person.find",
                                   lambda: nc.request("reroute.ask.dana.intake.person.find", b"{}", timeout=1)),
        "ask for a ping": ("reroute.rpc.intake.ping", lambda: nc.request("reroute.rpc.intake.ping", b"{}", timeout=1)),
        "ask for the agencies' passwords": ("reroute.rpc.intake.agencies.nats",
                                            lambda: nc.request("reroute.rpc.intake.agencies.nats", b"{}", timeout=1)),
    }
    await _refused_and_still_held(server, nc, errors, *refused[attempt])


@pytest.mark.parametrize("subject", ["reroute.ask.>", "reroute.rpc.>", "_INBOX.>", "_INBOX_intake.>",
                                     "_INBOX_PERSON.>", "_INBOX_AGENCY.a.>", "_INBOX_console.>", "referrals.>",
                                     "intake.>", ">"])
async def test_the_provisioner_reads_nothing_but_its_own_replies(server: str, streams: None, subject: str) -> None:
    """No one's requests (`reroute.ask.>`, where `person.find` carries a name and a birth date), no one else's
    replies, no events: it subscribes to its own inbox, `_INBOX_provisioner`, alone."""
    errors = Errors()
    nc = await _provisioner(server, errors)
    try:
        await nc.subscribe(subject)
        await errors.expect(f'permissions violation for subscription to "{subject}"')
        await nc.subscribe(f"{inbox_prefix('provisioner')}.mine")  # its own: allowed, so no error follows
        await nc.jetstream(timeout=5).stream_info("SUBMISSIONS")  # an answer, via its inbox
        assert len(errors.seen) == 1, errors.seen
    finally:
        await nc.close()
