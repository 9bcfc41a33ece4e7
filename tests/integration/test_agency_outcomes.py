"""An agency's durable outcomes, against a real nats-server with the deployment's users and permissions: intake makes
each agency's consumers with its own credentials; an agency offline while its outcomes are published reads them, and
only them, when it comes back, with its own credentials and a stock nats-py client; and it can neither make a
consumer, pull, read another agency's, nor read or delete anything in the streams.

A refusal is awaited as the server's permission-violation error, never assumed from a silence.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import nats.aio.client
import nats.errors
import pytest

from apps.devstack.local_nats import start_nats_server
from services.intake.outcomes import keep_outcome_consumers
from shared.nats_auth import (
    AGENCY_JS_API,
    agency_inbox_prefix,
    agency_user,
    hash_password,
    inbox_prefix,
    provisioner_user,
    render_config,
    service_user,
)
from shared.streams import provision
from shared.subjects import Subjects

PASSWORDS = {"a": "pw-a", "b": "pw-b", "intake": "pw-intake", "scheduling": "pw-scheduling", "provisioner": "pw-prov"}
S = Subjects()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("agency-outcomes")
    users = [agency_user("a", hash_password(PASSWORDS["a"])), agency_user("b", hash_password(PASSWORDS["b"])),
             *(service_user(s, hash_password(PASSWORDS[s])) for s in ("intake", "scheduling")),
             provisioner_user(hash_password(PASSWORDS["provisioner"]))]
    conf = store / "auth.conf"
    conf.write_text(render_config(users))
    proc, url = start_nats_server(store / "js", config=conf)
    yield url.removeprefix("nats://")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
async def consumers(server: str) -> AsyncIterator[None]:
    """The streams as provisioning makes them, and both agencies' consumers as intake makes them: as intake."""
    provisioner = await nats.connect(f"nats://provisioner:{PASSWORDS['provisioner']}@{server}",
                                     inbox_prefix=inbox_prefix("provisioner").encode())
    await provision(provisioner.jetstream(), S, replicas=1)
    await provisioner.close()
    intake = await nats.connect(f"nats://intake:{PASSWORDS['intake']}@{server}", inbox_prefix=b"_INBOX_intake")
    assert await keep_outcome_consumers(intake.jetstream(), S, ["a", "b"]) == 4
    assert await keep_outcome_consumers(intake.jetstream(), S, ["a", "b"]) == 4  # again: nothing changes, no error
    await intake.close()
    yield


class Errors:
    """The server's asynchronous -ERR messages (permission violations arrive this way)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._arrived = asyncio.Condition()

    async def callback(self, exc: Exception) -> None:
        async with self._arrived:
            self.seen.append(str(exc))
            self._arrived.notify_all()

    async def expect(self, fragment: str, *, timeout: float = 10) -> None:
        def matching() -> bool:
            return any(fragment.lower() in e.lower() for e in self.seen)

        try:
            async with self._arrived:
                await asyncio.wait_for(self._arrived.wait_for(matching), timeout)
        except TimeoutError:
            raise AssertionError(f"no error with {fragment!r} within {timeout:g} s; errors: {self.seen}") from None


async def _agency(server: str, agency: str, errors: Errors | None = None) -> nats.aio.client.Client:
    """Connected as the agency, with what `reroute agencies add` gives it: its user, password and inbox prefix."""
    return await nats.connect(f"nats://agency-{agency}:{PASSWORDS[agency]}@{server}",
                              error_cb=(errors or Errors()).callback, inbox_prefix=agency_inbox_prefix(agency).encode(),
                              max_reconnect_attempts=1)


async def _publish_as_the_services(server: str, *events: tuple[str, dict[str, str]]) -> None:
    """Each event as the service that publishes it: scheduling the sessions, intake the rest."""
    for subject, body in events:
        service = "scheduling" if subject.startswith("sessions.") else "intake"
        nc = await nats.connect(f"nats://{service}:{PASSWORDS[service]}@{server}",
                                inbox_prefix=f"_INBOX_{service}".encode())
        await nc.jetstream().publish(subject, json.dumps(body).encode())
        await nc.close()


async def _drain(sub: nats.js.JetStreamContext.PushSubscription, *, until: str) -> list[dict[str, str]]:
    """Everything delivered up to and including the event whose `mark` is `until`, each acknowledged."""
    got: list[dict[str, str]] = []
    while not got or got[-1].get("mark") != until:
        msg = await sub.next_msg(timeout=10)
        got.append(json.loads(msg.data))
        await msg.ack()
    return got


async def test_an_agency_offline_when_its_outcomes_are_published_reads_its_own_and_only_those_when_back(
    server: str, consumers: None
) -> None:
    run = uuid.uuid4().hex[:8]
    mine = [(S.accepted("a"), {"mark": f"{run}-accepted"}), (S.scheduled("a"), {"mark": f"{run}-scheduled"})]
    others = [(S.accepted("b"), {"mark": f"{run}-b-accepted"}), (S.cancelled("b"), {"mark": f"{run}-b-cancelled"})]
    await _publish_as_the_services(server, *others, *mine)  # while agency a is not connected at all

    errors = Errors()
    nc = await _agency(server, "a", errors)
    js = nc.jetstream(prefix=AGENCY_JS_API)
    referrals = await js.subscribe(S.about_referrals("a"), durable="agency-a", stream=S.referrals_stream,
                                   manual_ack=True)
    sessions = await js.subscribe(S.sessions("a"), durable="agency-a", stream=S.sessions_stream, manual_ack=True)
    from_referrals = await _drain(referrals, until=f"{run}-accepted")
    from_sessions = await _drain(sessions, until=f"{run}-scheduled")
    await nc.close()

    assert [e["mark"] for e in from_referrals + from_sessions if e["mark"].startswith(run)] == [
        f"{run}-accepted", f"{run}-scheduled"]  # nothing of agency b's, though b's were published first
    assert not any("-b-" in e.get("mark", "") for e in from_referrals + from_sessions)
    assert errors.seen == []

    # acknowledged is done with: back again, only what is new arrives
    await _publish_as_the_services(server, (S.cancelled("a"), {"mark": f"{run}-cancelled"}))
    nc = await _agency(server, "a")
    sessions = await nc.jetstream(prefix=AGENCY_JS_API).subscribe(S.sessions("a"), durable="agency-a", stream=S.sessions_stream,
                                              manual_ack=True)
    assert [e["mark"] for e in await _drain(sessions, until=f"{run}-cancelled")] == [f"{run}-cancelled"]
    await nc.close()


async def test_agency_b_reads_its_own_outcomes_from_its_own_consumer(server: str, consumers: None) -> None:
    mark = f"b-{uuid.uuid4().hex[:8]}"
    await _publish_as_the_services(server, (S.rejected("b"), {"mark": mark}))
    nc = await _agency(server, "b")
    sub = await nc.jetstream(prefix=AGENCY_JS_API).subscribe(S.about_referrals("b"), durable="agency-b", stream=S.referrals_stream,
                                         manual_ack=True)
    got = await _drain(sub, until=mark)
    await nc.close()
    assert got[-1] == {"mark": mark}


async def test_an_agency_cannot_bind_or_read_another_agencys_consumer(server: str, consumers: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.jetstream(prefix=AGENCY_JS_API, timeout=1).subscribe(S.about_referrals("b"), durable="agency-b",
                                                                       stream=S.referrals_stream)
    await errors.expect(f'permissions violation for publish to "{AGENCY_JS_API}.CONSUMER.INFO.{S.referrals_stream}.agency-b"')
    await nc.subscribe(f"{agency_inbox_prefix('b')}.outcomes.{S.referrals_stream}")
    await errors.expect(f'permissions violation for subscription to "_INBOX_AGENCY.b.outcomes.{S.referrals_stream}"')
    await nc.close()


@pytest.mark.parametrize("consumer", ["agency-a", "agency-b"])
async def test_an_agency_cannot_make_a_consumer_not_even_one_filtered_to_its_own_subjects(
    server: str, consumers: None, consumer: str
) -> None:
    """A consumer's deliver subject is where the server publishes for it: a push consumer of agency a's own events
    delivering onto `referrals.submitted.b` would have the server submit on b's behalf. So agencies make none."""
    errors = Errors()
    nc = await _agency(server, "a", errors)
    subject = f"$JS.API.CONSUMER.CREATE.{S.referrals_stream}.{consumer}.{S.about_referrals('a')}"
    request = {"stream_name": S.referrals_stream, "config": {
        "name": consumer, "durable_name": consumer, "filter_subject": S.about_referrals("a"),
        "deliver_subject": S.submitted("b"), "ack_policy": "explicit"}}
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.request(subject, json.dumps(request).encode(), timeout=1)
    await errors.expect(f'permissions violation for publish to "{subject}"')
    await nc.close()


@pytest.mark.parametrize("prefix", ["$JS.API", AGENCY_JS_API])
@pytest.mark.parametrize("api", [
    "CONSUMER.MSG.NEXT.{REFERRALS}.agency-a",  # a pull's reply subject is the sender's to choose: none
    "CONSUMER.DELETE.{REFERRALS}.agency-a", "CONSUMER.DELETE.{REFERRALS}.agency-b",
    "STREAM.MSG.GET.{REFERRALS}", "DIRECT.GET.{REFERRALS}", "STREAM.MSG.DELETE.{REFERRALS}",
    "STREAM.PURGE.{REFERRALS}", "STREAM.INFO.{REFERRALS}", "STREAM.MSG.GET.{SESSIONS}",
    "STREAM.MSG.DELETE.{SESSIONS}", "CONSUMER.INFO.{INTAKE}.risk-recorded", "CONSUMER.LIST.{REFERRALS}",
])
async def test_an_agency_can_neither_pull_nor_read_nor_delete_anything_in_the_streams(
    server: str, consumers: None, api: str, prefix: str
) -> None:
    """Through the services' account's API (`AGENCY_JS_API`) as through its own account's (which has no JetStream)."""
    errors = Errors()
    nc = await _agency(server, "a", errors)
    subject = f"{prefix}." + api.format(REFERRALS=S.referrals_stream, SESSIONS=S.sessions_stream,
                                      INTAKE=S.intake_stream)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.request(subject, b'{"seq": 1, "batch": 1}', timeout=1)
    await errors.expect(f'permissions violation for publish to "{subject}"')
    await nc.close()
