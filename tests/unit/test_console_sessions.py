"""The console keeps log-ins only: a visitor who has not logged in is given a signed pre-log-in entry kept nowhere, so
requests for the log-in page, however many, neither grow the table nor push anyone's log-in out of it; a log-in page
left too long, or shown before a restart, says so and logs in at the next try; idle sessions are swept from the
table's front, so a sweep looks only at what it removes (and the one it stops at)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import ValuesView
from typing import cast

from starlette.testclient import TestClient
from starlette.types import ASGIApp

from apps.console.app import create_app
from apps.console.client import Person, ServicesClient
from apps.console.live import AlertFeed
from apps.console.sessions import Session, Sessions
from apps.console.settings import ConsoleSettings
from shared.contracts.rpc import Role
from tests.support.console_intake import FakeIntake, log_in

COOKIE = "reroute-console"
IDLE = 15 * 60


def _console(now: list[float]) -> tuple[ASGIApp, Sessions]:
    intake = FakeIntake({"dana": {Role.DSL}, "sam": {Role.SCHEDULER}})
    app = create_app(ConsoleSettings(), cast(ServicesClient, intake), AlertFeed(), clock=lambda: now[0])
    return cast(ASGIApp, app), app.state.console.sessions


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_requests_for_the_log_in_page_keep_nothing_and_a_log_in_still_works() -> None:
    now = [1000.0]
    app, sessions = _console(now)
    with TestClient(app, base_url="http://127.0.0.1:8083") as visitor:
        for _ in range(500):  # cookieless, as a flood would be
            visitor.cookies.clear()
            page = visitor.get("/login")
            assert page.status_code == 200 and page.cookies.get(COOKIE)
        assert len(sessions) == 0
        logged = log_in(visitor, "sam", "sam password")
        assert logged.status_code == 303 and logged.headers["location"] == "/"
        assert len(sessions) == 1 and visitor.get("/").status_code == 200


def test_a_log_in_survives_a_flood_of_visitors() -> None:
    now = [1000.0]
    app, sessions = _console(now)
    with TestClient(app, base_url="http://127.0.0.1:8083") as lead, \
            TestClient(app, base_url="http://127.0.0.1:8083") as flood:
        assert log_in(lead, "sam", "sam password").status_code == 303
        for _ in range(500):
            now[0] += 0.1
            flood.cookies.clear()
            flood.get("/login")
        assert lead.get("/").status_code == 200, "logged out by visitors to the log-in page"
        assert len(sessions) == 1


def test_the_log_in_pages_token_is_its_cookies_and_only_for_logging_in() -> None:
    now = [1000.0]
    app, _ = _console(now)
    with TestClient(app, base_url="http://127.0.0.1:8083") as visitor, \
            TestClient(app, base_url="http://127.0.0.1:8083") as other:
        token = _token(visitor.get("/login").text)
        assert _token(visitor.get("/login").text) == token, "a reload keeps the form's entry"
        other.get("/login")
        assert other.post("/login", data={"csrf_token": token, "person_id": "sam", "password": "sam password"},
                          follow_redirects=False).status_code == 403, "another visitor's token"
        assert visitor.post("/logout", data={"csrf_token": token}).status_code == 403, "a pre-log-in token is no session"
        logged = visitor.post("/login", data={"csrf_token": token, "person_id": "sam", "password": "sam password"},
                              headers={"Origin": "https://evil.example"}, follow_redirects=False)
        assert logged.status_code == 403 and "That form was refused" in logged.text


def test_a_log_in_page_left_too_long_says_so_and_the_next_try_logs_in() -> None:
    now = [1000.0]
    app, sessions = _console(now)
    with TestClient(app, base_url="http://127.0.0.1:8083") as visitor:
        token = _token(visitor.get("/login?next=/alerts").text)
        now[0] += IDLE + 1
        expired = visitor.post("/login", data={"csrf_token": token, "person_id": "Dana", "password": "dana password",
                                               "next": "/alerts"}, follow_redirects=False)
        assert expired.status_code == 403 and len(sessions) == 0
        assert "Your log-in page expired; please try again." in expired.text
        assert 'value="dana"' in expired.text and 'value="/alerts"' in expired.text
        again = visitor.post("/login", data={"csrf_token": _token(expired.text), "person_id": "dana",
                                             "password": "dana password", "next": "/alerts"}, follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == "/alerts"


def test_a_log_in_page_shown_before_a_restart_expires() -> None:
    now = [1000.0]
    first, _ = _console(now)
    restarted, _ = _console(now)
    with TestClient(first, base_url="http://127.0.0.1:8083") as before, \
            TestClient(restarted, base_url="http://127.0.0.1:8083") as after:
        token = _token(before.get("/login").text)
        after.cookies.update(before.cookies)
        posted = after.post("/login", data={"csrf_token": token, "person_id": "sam", "password": "sam password"},
                            follow_redirects=False)
        assert posted.status_code == 403 and "Your log-in page expired" in posted.text


class _Looking(OrderedDict[str, Session]):
    """The sessions' table, counting how many sessions a sweep looks at (it looks at the front one each time)."""

    looked = 0

    def values(self) -> ValuesView[Session]:  # type: ignore[override]
        self.looked += 1
        return super().values()


def test_a_sweep_looks_at_the_idle_sessions_and_one_more_however_many_are_in_use() -> None:
    now = [0.0]
    sessions = Sessions(idle_seconds=IDLE, lifetime_seconds=12 * 3600, clock=lambda: now[0])
    person = Person("sam", frozenset({Role.SCHEDULER}))
    old = [sessions.new(person) for _ in range(3)]
    now[0] += 10
    in_use = [sessions.new(person) for _ in range(5000)]
    sessions.touch(old[0])  # used again: to the back of the table
    sessions._by_key = table = _Looking(sessions._by_key)

    now[0] = IDLE + 5  # old[1] and old[2] idle since 0; old[0] and the 5000 used since
    made = sessions.new(person)
    assert table.looked == 3, "the two idle ones, then the first in use: none of the 5000 behind it"
    assert list(table)[:2] == [in_use[0].key, in_use[1].key] and list(table)[-2:] == [old[0].key, made.key]
    table.looked = 0
    sessions.new(person)
    assert table.looked == 1 and len(sessions) == 5003


def test_a_log_in_page_key_says_nothing_of_how_long_the_host_has_been_up() -> None:
    now = [5_000_000.0]  # the monotonic clock: seconds since the host booted
    app, _ = _console(now)
    with TestClient(app, base_url="http://127.0.0.1:8083") as visitor:
        visitor.get("/login")
        made = visitor.cookies[COOKIE].split(".", 1)[0]
    assert int(made) < 60, "counted from the console's start"


def test_a_cookie_or_token_in_other_scripts_is_refused_not_a_crash() -> None:
    now = [1000.0]
    app, sessions = _console(now)
    assert sessions.pre_log_in("\u00b2.abc") is None and sessions.pre_log_in("\u0661\u0660.abc") is None
    with TestClient(app, base_url="http://127.0.0.1:8083") as visitor:
        visitor.get("/login")
        refused = visitor.post("/login", data={"csrf_token": "\u00e9" * 64, "person_id": "dana",
                                               "password": "dana password"}, follow_redirects=False)
    assert refused.status_code == 403 and "Your log-in page expired" in refused.text


def test_a_wrong_password_renews_an_ageing_log_in_page_so_a_later_retry_works() -> None:
    now = [1000.0]
    app, _ = _console(now)
    with TestClient(app, base_url="http://127.0.0.1:8083") as visitor:
        token = _token(visitor.get("/login").text)
        now[0] += IDLE * 0.6
        wrong = visitor.post("/login", data={"csrf_token": token, "person_id": "dana", "password": "nope"},
                             follow_redirects=False)
        assert wrong.status_code == 401
        now[0] += IDLE * 0.6  # past the first page's time: the retry's form is the renewed one
        right = visitor.post("/login", data={"csrf_token": _token(wrong.text), "person_id": "dana",
                                             "password": "dana password"}, follow_redirects=False)
        assert right.status_code == 303
