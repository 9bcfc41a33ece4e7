"""People's NATS permissions against a real nats-server: each role may ask exactly the requests `Endpoint.roles`
grants it, only in its own name; the console may ask them in anyone's name; the operator account may speak for
no one. No services run here: a request the server lets through finds no responder (`NoRespondersError`), one it
refuses draws a permission violation; the server answers one connection in order, so once a flush is answered
every violation for what was sent before it has arrived."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import nats.aio.client
import nats.aio.msg
import nats.errors
import pytest

from apps.console.erasure import SpanErasure
from apps.devstack.local_nats import start_nats_server
from shared.contracts.intake_rpc import CONSOLE_ONLY
from shared.contracts.rpc import ERASE_SPANS, Erased, ReferralIds, Role, all_endpoints
from shared.nats_auth import (
    CONSOLE,
    OPERATOR_INBOX,
    admin_user,
    console_user,
    hash_password,
    inbox_prefix,
    person_inbox_prefix,
    person_user,
    render_config,
)
from shared.role_table import README, markdown, rewritten
from shared.span_store import SpanStore
from shared.subjects import Subjects
from shared.telemetry import StoredSpan
from tests.support.waiting import wait_until

PASSWORD = "pw-people"
S = Subjects()
EVERY_REQUEST = [(service, e.verb, e.roles) for e in all_endpoints() for service in e.services]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("people-auth")
    hashed = hash_password(PASSWORD)
    users = [*(person_user(f"p-{role}", hashed, [role]) for role in Role), console_user(hashed), admin_user(hashed)]
    conf = store / "auth.conf"
    conf.write_text(render_config(users))
    proc, url = start_nats_server(store / "js", config=conf, log_file=store / "nats.log")
    yield url.removeprefix("nats://")
    proc.terminate()
    proc.wait(timeout=10)


class Violations:
    def __init__(self) -> None:
        self.subjects: set[str] = set()

    async def record(self, exc: Exception) -> None:
        text = str(exc)
        if "permissions violation" in text.lower() and '"' in text:
            self.subjects.add(text.split('"')[1])


async def _connect(server: str, user: str, inbox: str, seen: Violations) -> nats.aio.client.Client:
    return await nats.connect(f"nats://{user}:{PASSWORD}@{server}", error_cb=seen.record, inbox_prefix=inbox.encode(),
                              max_reconnect_attempts=1)


async def _refused(nc: nats.aio.client.Client, seen: Violations, subjects: list[str], expected: set[str]) -> set[str]:
    """Publish on every subject; the ones the server refused (waiting for the `expected` ones to be reported)."""
    for subject in subjects:
        await nc.publish(subject, b"{}")
    await nc.flush()
    await wait_until(lambda: expected <= seen.subjects, timeout=10, every=0.02,
                     what=lambda: f"refusals of {sorted(expected - seen.subjects)}")
    await nc.flush()
    return seen.subjects & set(subjects)


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_may_ask_exactly_its_requests_and_in_its_own_name_only(server: str, role: Role) -> None:
    me, other = f"p-{role}", f"p-{next(r for r in Role if r != role)}"
    seen = Violations()
    nc = await _connect(server, f"person-{me}", person_inbox_prefix(me), seen)
    try:
        own = [S.ask(me, service, verb) for service, verb, _ in EVERY_REQUEST]
        allowed = {S.ask(me, service, verb) for service, verb, roles in EVERY_REQUEST if role in roles}
        impersonating = [S.ask(other, service, verb) for service, verb, roles in EVERY_REQUEST if role in roles]
        services_own = [S.rpc(service, verb) for service, verb, _ in EVERY_REQUEST]
        everything = [*own, *impersonating, *services_own]
        expected = set(everything) - allowed
        assert allowed, f"{role} may ask something"
        assert await _refused(nc, seen, everything, expected) == expected

        # what is allowed reaches the services (none run here, so no one answers)
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request(S.ask(me, "intake", "people.whoami"), b"{}", timeout=5)
    finally:
        await nc.close()


async def test_a_person_cannot_read_another_persons_replies(server: str) -> None:
    seen = Violations()
    nc = await _connect(server, "person-p-scheduler", person_inbox_prefix("p-scheduler"), seen)
    try:
        for subject in (f"{person_inbox_prefix('p-dsl')}.>", "_INBOX_PERSON.>", S.ask("*", "intake", ">"),
                        f"{inbox_prefix('intake')}.>"):
            await nc.subscribe(subject)
        await wait_until(lambda: len(seen.subjects) == 4, timeout=10, every=0.02,
                         what=lambda: f"four refused subscriptions (got {seen.subjects})")
    finally:
        await nc.close()


async def test_the_console_may_act_for_anyone_and_the_operator_account_for_no_one(server: str) -> None:
    asked_by_people = [(service, verb) for service, verb, roles in EVERY_REQUEST if roles]
    service_only = [(service, verb) for service, verb, roles in EVERY_REQUEST if not roles]

    seen = Violations()
    console = await _connect(server, CONSOLE, inbox_prefix(CONSOLE), seen)
    try:
        for_anyone = [S.ask(who, service, verb) for who in ("p-dsl", "someone-else") for service, verb in asked_by_people]
        console_passwords = [S.rpc(service, e.verb) for e in CONSOLE_ONLY for service in e.services]
        refused = [*(S.ask("p-dsl", service, verb) for service, verb in service_only),
                   *(S.rpc(service, verb) for service, verb, _ in EVERY_REQUEST
                     if S.rpc(service, verb) not in console_passwords)]
        assert await _refused(console, seen, [*for_anyone, *console_passwords, *refused], set(refused)) == set(refused)
    finally:
        await console.close()

    seen = Violations()
    operator = await _connect(server, "operator", OPERATOR_INBOX, seen)
    try:
        speaking = [S.ask("p-admin", "intake", "people.whoami"), S.ask("p-risk_lead", "risk", "override"),
                    S.rpc("intake", "first_name"), S.rpc("risk", "override"), S.rpc("intake", "people.add"),
                    S.rpc("intake", "people.remove"), *(S.rpc(s, "deadletters.replay") for s in S_SERVICES),
                    S.rpc("intake", "console.login"), S.rpc("intake", "console.password"),
                    S.rpc("intake", "console.totp.begin"), S.rpc("intake", "people.console_password")]
        supervising = [S.rpc("intake", "people.nats"), S.rpc("intake", "agencies.nats"),
                       S.rpc("intake", "people.bootstrap"), *(S.rpc(s, "ping") for s in S_SERVICES)]
        assert await _refused(operator, seen, [*speaking, *supervising], set(speaking)) == set(speaking)
    finally:
        await operator.close()


async def test_the_console_answers_an_admins_erasure_of_spans_on_its_own_permissions(server: str, tmp_path: Path) -> None:
    """`reroute person erase` reaches the console's span store over NATS: the console may take the request and answer
    it (only an admin may ask it: the test above, per role)."""
    store = SpanStore.of(tmp_path)
    store.add([StoredSpan("ab" * 16, "cd" * 8, None, "intake.accept", "intake", 1, 2, "OK", {"referral.id": "R-1"})])
    seen = Violations()
    console = await _connect(server, CONSOLE, inbox_prefix(CONSOLE), seen)
    admin = await _connect(server, "person-p-admin", person_inbox_prefix("p-admin"), seen)
    erasure = SpanErasure(store)
    try:
        await erasure.start(console, S)
        replies: list[nats.aio.msg.Msg] = []

        async def answered() -> bool:
            # Once, on CI's loaded machine, the server said no one answered though the console had subscribed and
            # flushed: the permission is what is tested here, so a question that met no responder is asked again.
            try:
                replies.append(await admin.request(S.ask("p-admin", "console", ERASE_SPANS.verb),
                                                   ReferralIds(referral_ids=["R-1"]).model_dump_json().encode(),
                                                   timeout=5))
            except nats.errors.NoRespondersError:
                return False
            return True

        await wait_until(answered, timeout=15, every=0.2, what="the console's answer to the admin's erasure")
        assert Erased.model_validate_json(replies[0].data).erased == {"referrals": 1, "spans": 1}
        assert store.spans_of_referral("R-1") == [] and seen.subjects == set()
    finally:
        await erasure.stop()
        await admin.close()
        await console.close()
        store.close()


async def test_the_operator_account_asks_nothing_a_person_may_ask_not_even_what_records_no_one(server: str) -> None:
    """The installation's account once could ask, on the services' own subjects, every request that records no one:
    export or erase a young person's data, add or revoke agencies, purge, import mentors, read assessments. Now it
    may ask only what supervision needs (pings, the users' password hashes, the first admin)."""
    seen = Violations()
    operator = await _connect(server, "operator", OPERATOR_INBOX, seen)
    try:
        unrecorded = [S.rpc(service, verb) for service, verb, roles in EVERY_REQUEST
                      if roles and verb != "ping"]
        assert {"reroute.rpc.intake.person.export", "reroute.rpc.intake.agencies.add", "reroute.rpc.intake.purge",
                "reroute.rpc.scheduling.mentors.import", "reroute.rpc.risk.assessment"} <= set(unrecorded)
        service_only = [S.rpc("risk", "audit.rows"), S.rpc("scheduling", "closed.before")]
        events = ["referrals.accepted.a", "referrals.rejected.a", "risk.assessed.a", "sessions.scheduled.a",
                  "safeguarding.alert.a", "deadletter.intake"]
        refused = [*unrecorded, *service_only, *events]
        assert await _refused(operator, seen, refused, set(refused)) == set(refused)
        with pytest.raises(nats.errors.NoRespondersError):  # what it needs reaches the services (none run here)
            await operator.request(S.rpc("intake", "agencies.nats"), b"{}", timeout=5)
    finally:
        await operator.close()


@pytest.mark.parametrize("subject", ["reroute.ask.>", "reroute.ask.*.intake.person.find", ">",
                                     "referrals.submitted.*", "referrals.>", "reroute.rpc.>", "_INBOX_intake.>",
                                     "_INBOX_scheduling.>", "_INBOX_PERSON.>", "_INBOX_AGENCY.>",
                                     f"{inbox_prefix(CONSOLE)}.>"])
async def test_the_operator_account_reads_no_ones_requests_or_replies(server: str, subject: str) -> None:
    """A person's request may be a name and a birth date looked up (`person.find`); a raw referral goes to intake on
    `referrals.submitted.*` and to its inbox when it pulls; the services' and people's replies hold first names and
    assessments. The operator account could subscribe to all of it; now to its own replies alone. Tried as it would:
    the operator subscribes, a safeguarding lead looks a child up by name, and nothing reaches the operator."""
    seen = Violations()
    operator = await _connect(server, "operator", OPERATOR_INBOX, seen)
    dsl = await _connect(server, "person-p-dsl", person_inbox_prefix("p-dsl"), Violations())
    got: list[str] = []

    async def record(msg: nats.aio.msg.Msg) -> None:
        got.append(msg.subject)

    try:
        await operator.subscribe(subject, cb=record)
        await wait_until(lambda: subject.lower() in seen.subjects, timeout=10, every=0.02,  # as nats-py reports it
                         what=lambda: f"the server refusing the operator's subscription to {subject} ({seen.subjects})")
        with pytest.raises(nats.errors.NoRespondersError):  # no subscriber at all: not the operator's either
            await dsl.request(S.ask("p-dsl", "intake", "person.find"),
                              b'{"given_name": "Oyelaran", "family_name": "Known", "date_of_birth": "2010-03-04"}',
                              timeout=5)
        await operator.flush()
        assert got == []
    finally:
        await operator.close()
        await dsl.close()


S_SERVICES = ("intake", "risk", "scheduling")


SERVICES_ONLY = {("intake", "agencies.nats"), ("intake", "people.nats"), ("intake", "people.bootstrap"),
                 ("risk", "audit.rows"), ("scheduling", "closed.before"), ("intake", "console.login"),
                 ("intake", "console.password"), ("intake", "console.totp.begin"), ("intake", "console.totp.confirm")}
"""Requests no person may ask: the services ask them of each other, the operator account the `.nats` ones and
the first admin, and the console the log-in ones."""


def test_every_request_names_who_may_ask_it() -> None:
    """An endpoint declared without roles can be asked by no person, not even through the CLI: a new one must say
    which roles may ask it (`Endpoint.roles`), or be added here as one only the services ask."""
    unasked = {(service, verb) for service, verb, roles in EVERY_REQUEST if not roles}
    assert unasked == SERVICES_ONLY


def test_the_readme_role_table_is_the_declared_one() -> None:
    """README.md's table of roles and requests is generated from `Endpoint.roles`: regenerate it with
    `python -m shared.role_table` when an endpoint or its roles change."""
    readme = README.read_text()
    assert rewritten(readme) == readme, "README.md's role table is stale: run `python -m shared.role_table`"
    assert markdown() in readme

