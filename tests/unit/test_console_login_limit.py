"""The console's per-address log-in limit (apps/console/sessions.py LoginLimiter): people logging in at the same
moment are asked to wait seconds, not told they failed; its table of addresses forgets each one once nothing of it
counts, never holds more than its cap, and a full table keeps no newcomer out; an IPv6 client is counted by its
/64; a form with nothing to check is not counted."""

from __future__ import annotations

import asyncio
import re
from typing import cast

import httpx
import pytest
from starlette.types import ASGIApp

from apps.console.app import create_app
from apps.console.client import ServicesClient
from apps.console.live import AlertFeed
from apps.console.sessions import Attempt, LoginLimiter, Refusal
from apps.console.settings import ConsoleSettings
from apps.console.state import ConsoleState
from shared.contracts.intake_rpc import ConsoleLogin, ConsoleLoginRequest
from shared.contracts.rpc import Role
from shared.proxies import counted_as
from tests.support.console_intake import FakeIntake

OFFICE = "203.0.113.5"


class HeldIntake(FakeIntake):
    """intake holding each password check until `answer` is set: log-ins being checked at the same moment."""

    def __init__(self, roles: dict[str, set[Role]], *, full_at: int) -> None:
        super().__init__(roles)
        self.answer, self.full, self.checking, self.full_at = asyncio.Event(), asyncio.Event(), 0, full_at

    async def call(self, endpoint: object, request: ConsoleLoginRequest, *, timeout: float = 5) -> ConsoleLogin:
        self.checking += 1
        if self.checking == self.full_at:
            self.full.set()
        await self.answer.wait()
        return await super().call(endpoint, request, timeout=timeout)


async def _log_in(app: object, person_id: str, password: str) -> httpx.Response:
    """A new visitor from the office's address logs in from the log-in page; the answer, unfollowed."""
    transport = httpx.ASGITransport(app=cast(ASGIApp, app), client=(OFFICE, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8083") as browser:
        found = re.search(r'name="csrf_token" value="([^"]+)"', (await browser.get("/login")).text)
        assert found
        return await browser.post("/login", data={"csrf_token": found.group(1), "person_id": person_id,
                                                  "password": password})


async def test_a_team_logging_in_at_the_same_moment_is_asked_to_wait_seconds_not_told_it_failed() -> None:
    """12 right passwords from one address at once, with a limit of 10: 10 are checked together; the other 2 are told
    that log-ins are being checked and to try again in a few seconds (not 'too many failed log-ins', 5 minutes), and
    then log in."""
    people = [f"demo-{n}" for n in range(12)]
    intake = HeldIntake({person: {Role.SCHEDULER} for person in people}, full_at=10)
    app = create_app(ConsoleSettings(console_login_attempts=10), cast(ServicesClient, intake), AlertFeed())
    async with asyncio.timeout(30):
        tries = [asyncio.create_task(_log_in(app, person, f"{person} password")) for person in people]
        await intake.full.wait()
        while sum(t.done() for t in tries) < 2:  # the two beyond the limit are answered without being checked
            await asyncio.wait([t for t in tries if not t.done()], return_when=asyncio.FIRST_COMPLETED)
        intake.answer.set()
        answered = await asyncio.gather(*tries)
    refused = [(person, a) for person, a in zip(people, answered, strict=True) if a.status_code != 303]
    assert len(refused) == 2 and {a.status_code for _, a in refused} == {429}, [a.status_code for a in answered]
    for _, a in refused:
        assert "Several log-ins from this computer are being checked: try again in a few seconds." in a.text
        assert "failed" not in a.text.split('role="alert"')[1].split("</div>")[0]
        assert a.headers["retry-after"] == "5"
    for person, _ in refused:
        assert (await _log_in(app, person, f"{person} password")).status_code == 303
    assert len(cast(ConsoleState, app.state.console).limiter) == 0  # nothing failed: nothing kept


def test_the_table_forgets_an_address_once_nothing_of_it_counts() -> None:
    """2,000 failures from 2,000 IPv6 networks are 2,000 addresses for 5 minutes, then none."""
    now = [0.0]
    limiter = LoginLimiter(10, clock=lambda: now[0])
    for n in range(2000):
        attempt = limiter.begin(f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::1")
        assert isinstance(attempt, Attempt)
        limiter.failed(attempt)
    assert len(limiter) == 2000
    now[0] += 299
    assert isinstance(limiter.begin("198.51.100.1"), Attempt) and len(limiter) == 2001
    now[0] += 2
    assert isinstance(limiter.begin("198.51.100.2"), Attempt)
    assert len(limiter) == 2  # the two being checked


def test_a_refusal_adds_nothing_and_a_full_table_never_keeps_a_newcomer_out() -> None:
    now = [0.0]
    limiter = LoginLimiter(2, clock=lambda: now[0], addresses=3)
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(2):
            attempt = limiter.begin(address)
            assert isinstance(attempt, Attempt)
            limiter.failed(attempt)
        now[0] += 10
    assert limiter.begin("198.51.100.2") == Refusal("failures", 280)
    assert len(limiter) == 3, "a refusal adds nothing"
    # Whoever fills the table (one failure from each of many addresses) cannot keep others from logging in: the least
    # recently seen address is forgotten to make room, and the newcomer may try.
    assert isinstance(limiter.begin("198.51.100.4"), Attempt)
    assert len(limiter) == 3
    assert isinstance(limiter.begin("198.51.100.1"), Attempt), "the forgotten address counts afresh"


def test_a_full_table_refuses_only_while_every_address_in_it_is_being_checked() -> None:
    limiter = LoginLimiter(5, clock=lambda: 0.0, addresses=2)
    held = [limiter.begin("198.51.100.1"), limiter.begin("198.51.100.2")]
    assert all(isinstance(a, Attempt) for a in held)
    refused = limiter.begin("198.51.100.3")
    assert isinstance(refused, Refusal) and refused.reason == "crowded"
    limiter.failed(cast(Attempt, held[0]))
    assert isinstance(limiter.begin("198.51.100.3"), Attempt), "an address no longer being checked makes room"


@pytest.mark.parametrize(("address", "counted"), [
    ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
    ("2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:1::/64"),
    ("2001:db8:0:2::1", "2001:db8:0:2::/64"),
    ("203.0.113.5", "203.0.113.5"),
    ("::ffff:203.0.113.5", "203.0.113.5"),
    ("-", "-"),
])
def test_an_ipv6_client_is_counted_by_its_64_and_an_ipv4_one_by_itself(address: str, counted: str) -> None:
    assert counted_as(address) == counted


def test_ipv6_addresses_in_one_64_share_its_limit() -> None:
    limiter = LoginLimiter(2)
    for address in ("2001:db8:0:1::1", "2001:db8:0:1::2"):
        attempt = limiter.begin(address)
        assert isinstance(attempt, Attempt)
        limiter.failed(attempt)
    assert isinstance(limiter.begin("2001:db8:0:1::3"), Refusal)
    assert isinstance(limiter.begin("2001:db8:0:2::1"), Attempt)


async def test_a_form_with_nothing_to_check_is_not_counted() -> None:
    """An empty or over-long form is answered without asking intake: it is no guess, so it uses up no try and adds
    nothing to the table."""
    intake = FakeIntake({"demo-0": {Role.SCHEDULER}})
    app = create_app(ConsoleSettings(console_login_attempts=2), cast(ServicesClient, intake), AlertFeed())
    for person_id, password in [("", "")] * 5 + [("demo-0", "")] * 5 + [("x" * 65, "guess")] * 5:
        assert (await _log_in(app, person_id, password)).status_code in (400, 401)
    assert len(cast(ConsoleState, app.state.console).limiter) == 0
    assert (await _log_in(app, "demo-0", "demo-0 password")).status_code == 303


async def test_a_log_in_given_up_while_being_checked_counts_as_failed() -> None:
    """The browser went away (the request is cancelled) after intake may have checked the password: it counts."""
    intake = HeldIntake({"demo-0": {Role.SCHEDULER}}, full_at=1)
    app = create_app(ConsoleSettings(console_login_attempts=1), cast(ServicesClient, intake), AlertFeed())
    async with asyncio.timeout(30):
        given_up = asyncio.create_task(_log_in(app, "demo-0", "guess"))
        await intake.full.wait()
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
    intake.answer.set()
    refused = await _log_in(app, "demo-0", "demo-0 password")
    assert refused.status_code == 429 and "Too many failed log-ins from this computer (1 in 5 minutes)" in refused.text
