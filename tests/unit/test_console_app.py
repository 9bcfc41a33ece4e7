"""The console's structure, read from the app itself: every route declares exactly one guard (the roles it needs, or
why anyone may use it), an area's routes need the area's roles, every route that changes anything is CSRF-checked;
sessions end when idle or old; failed log-ins are limited per address; it refuses to listen beyond loopback without
TLS; after logging in it goes only to a path on the console itself."""

from __future__ import annotations

import re
from typing import cast

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from apps.console.app import create_app, pages
from apps.console.auth import Needs, Open, csrf_protected, local_path, routes_of
from apps.console.client import ServicesClient
from apps.console.live import AlertFeed
from apps.console.pages import AREAS
from apps.console.sessions import Attempt, LoginLimiter, Refusal, Sessions
from apps.console.settings import ConsoleSettings
from shared.contracts.rpc import Role
from tests.support.console_intake import FakeIntake, log_in

APP = create_app(ConsoleSettings(), cast(ServicesClient, None), AlertFeed())
OPEN = {("/login", "GET"), ("/login", "POST"), ("/logout", "POST"), ("/healthz", "GET")}
"""The routes anyone may use: a new one is added here on purpose, or it must need a role."""


def test_every_route_declares_who_may_use_it() -> None:
    routes = routes_of(APP)
    assert {r.path for r in routes} >= {"/", "/login", "/alerts", "/alerts/{alert_id}/ack"}
    unguarded = [r.path for r in routes if r.guard is None]
    assert not unguarded, f"routes without exactly one guard (Needs or Open): {unguarded}"
    opened = {(r.path, m) for r in routes if isinstance(r.guard, Open) for m in r.methods}
    assert opened == OPEN


def test_an_areas_routes_need_its_roles() -> None:
    for area in AREAS:
        mine = [r for r in routes_of(APP) if r.path == area.href or r.path.startswith(area.href + "/")]
        assert mine, f"area {area.name} has no routes"
        assert all(isinstance(r.guard, Needs) and r.guard.roles == area.roles for r in mine), area.name


def test_every_route_is_csrf_checked() -> None:
    from fastapi.routing import iter_route_contexts

    for route in iter_route_contexts(APP.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            assert any(d.call is csrf_protected for d in dependant.dependencies), route.path


def test_pages_are_the_whole_page_routes() -> None:
    """Each area adds its own pages (listed in tests/support/console_pages.py); parts of a page are none."""
    assert {"/", "/login", "/password", "/second-factor", "/alerts", "/risk", "/risk/referral", "/risk/audit",
            "/identity", "/access"} <= pages(APP)
    assert {"/operations", "/operations/dead-letters", "/operations/dead-letters/{dead_letter_id}", "/traces",
            "/traces/referral", "/traces/{trace_id}"} <= pages(APP)
    assert not {"/alerts/list", "/alerts/events", "/healthz"} & pages(APP)


def test_a_session_ends_when_idle_or_too_old() -> None:
    now = [0.0]
    sessions = Sessions(idle_seconds=900, lifetime_seconds=3600, clock=lambda: now[0])
    session = sessions.new()
    for _ in range(4):
        now[0] += 800
        assert sessions.find(session.key) is session
        sessions.touch(session)
    now[0] += 500  # 3700 s since it began, though used 500 s ago
    assert sessions.find(session.key) is None
    idle = sessions.new()
    now[0] += 901
    assert sessions.find(idle.key) is None and sessions.find(None) is None


def test_failed_log_ins_are_limited_per_address_and_successful_ones_are_not_counted() -> None:
    now = [0.0]
    limiter = LoginLimiter(3, clock=lambda: now[0])
    for _ in range(50):  # a team logging in one after another from one office
        attempt = limiter.begin("10.0.0.1")
        assert isinstance(attempt, Attempt)
        limiter.logged_in(attempt)
    for _ in range(3):
        attempt = limiter.begin("10.0.0.1")
        assert isinstance(attempt, Attempt)
        limiter.failed(attempt)
    assert limiter.begin("10.0.0.1") == Refusal("failures", 300)
    assert isinstance(limiter.begin("10.0.0.2"), Attempt)
    now[0] += 301
    assert isinstance(limiter.begin("10.0.0.1"), Attempt)


def test_log_in_attempts_still_being_checked_count_until_they_succeed() -> None:
    """Guesses sent all at once are held to the limit too: each counts from its start, not once it has failed; the
    refusal says they are being checked (a few seconds), not that they failed (the window)."""
    limiter = LoginLimiter(3)
    in_flight = [limiter.begin("10.0.0.1") for _ in range(3)]
    assert limiter.begin("10.0.0.1") == Refusal("checking", 5, checking=3)
    logged_in = in_flight[0]
    assert isinstance(logged_in, Attempt)
    limiter.logged_in(logged_in)
    assert isinstance(limiter.begin("10.0.0.1"), Attempt)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "", None,
                                    "alerts"])
def test_after_log_in_only_a_path_on_the_console(target: str | None) -> None:
    assert local_path(target) == "/"


def test_a_path_on_the_console_is_kept() -> None:
    assert local_path("/alerts?x=1") == "/alerts?x=1"


def test_it_listens_beyond_loopback_only_over_tls() -> None:
    with pytest.raises(ValidationError, match="not a loopback address"):
        ConsoleSettings(console_host="0.0.0.0")
    with pytest.raises(ValidationError, match="must be an https"):
        ConsoleSettings(console_host="0.0.0.0", console_public_url="http://console.example.org")
    behind = ConsoleSettings(console_host="0.0.0.0", console_public_url="https://console.example.org")
    assert behind.tls and not ConsoleSettings().tls


def test_an_empty_spans_token_from_an_older_compose_env_receives_no_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REROUTE_CONSOLE_SPANS_TOKEN", "")  # compose passes it empty from an .env without it
    assert ConsoleSettings().console_spans_token is None


def test_the_access_log_names_an_areas_route_not_the_path_asked() -> None:
    """An alert id (or any id) in a path stays out of the log: the route's template is written instead."""
    from shared.http import AccessLog

    scope = {"type": "http", "path": "/alerts/alert:ref_0123:E01_immediate_danger:1/ack", "method": "POST",
             "root_path": ""}
    assert AccessLog(APP)._route(scope) == "/alerts/{alert_id}/ack"


def _log_in_tries(app: object, peer: str, forwarded: str | None, tries: int) -> list[int]:
    """The status of each of `tries` log-in attempts (a wrong password) from `peer`, forwarded for `forwarded`."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with TestClient(cast(ASGIApp, app), base_url="http://127.0.0.1:8083", client=(peer, 40000)) as browser:
        page = browser.get("/login", headers=headers)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text
        return [browser.post("/login", data={"csrf_token": found.group(1), "person_id": "someone", "password": "guess"},
                             headers=headers).status_code for _ in range(tries)]


def test_behind_a_trusted_proxy_the_log_in_limit_counts_each_client_not_the_proxy() -> None:
    """In compose and Kubernetes every request arrives from the proxy: counted by the proxy's address, one person
    guessing passwords would lock the whole organisation out of the console."""
    intake = cast(ServicesClient, FakeIntake({}))
    settings = ConsoleSettings(console_login_attempts=2, console_trusted_proxies="10.0.0.0/8")
    app = create_app(settings, intake, AlertFeed())
    assert _log_in_tries(app, "10.0.0.5", "203.0.113.7", 3) == [401, 401, 429]
    assert _log_in_tries(app, "10.0.0.5", "203.0.113.8", 1) == [401], "another client behind the proxy was locked out"
    # The header is believed only from a trusted proxy: a client cannot choose a fresh address for each try.
    untrusted = create_app(ConsoleSettings(console_login_attempts=2), intake, AlertFeed())
    assert _log_in_tries(untrusted, "198.51.100.9", "203.0.113.9", 3) == [401, 401, 429]
    assert _log_in_tries(untrusted, "198.51.100.9", "203.0.113.10", 1) == [429]


def test_many_successful_log_ins_from_one_computer_are_never_refused_and_failures_still_are() -> None:
    """A team trying the demo, or an office behind one public address: only wrong passwords use up its tries."""
    people = [f"demo-{n}" for n in range(5)]
    intake = FakeIntake({person: {Role.SCHEDULER} for person in people})
    app = create_app(ConsoleSettings(console_login_attempts=3), cast(ServicesClient, intake), AlertFeed())
    with TestClient(cast(ASGIApp, app), base_url="http://127.0.0.1:8083", client=("203.0.113.5", 40000)) as browser:
        for round_ in range(10):
            for person in people:
                logged = log_in(browser, person, f"{person} password")
                assert logged.status_code == 303 and logged.headers["location"] == "/", (round_, person, logged.text)
        assert [log_in(browser, "demo-0", "guess").status_code for _ in range(3)] == [401, 401, 401]
        refused = log_in(browser, "demo-1", "demo-1 password")  # even the right password: nothing is checked
        assert refused.status_code == 429
        assert "Too many failed log-ins from this computer (3 in 5 minutes): try again in 5 minutes" in refused.text
        assert refused.headers["retry-after"] == "300"


def test_trusted_proxies_are_addresses_or_networks() -> None:
    with pytest.raises(ValidationError, match="REROUTE_CONSOLE_TRUSTED_PROXIES: 'proxy.local' is not an IP address"):
        ConsoleSettings(console_trusted_proxies="10.0.0.1, proxy.local")
