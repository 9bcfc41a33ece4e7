"""A log-in ends after the idle time without anything the person did: what a page fetches by itself (the alerts
list an open page refreshes, its live stream) does not keep it alive. The console app in-process on a clock of the
test's own, with a stand-in that answers as intake and risk would (the browser tests use the real services)."""

from __future__ import annotations

import re
from typing import Any, cast

import httpx

from apps.console.app import create_app
from apps.console.client import Person, ServicesClient
from apps.console.live import AlertFeed
from apps.console.settings import ConsoleSettings
from shared.contracts.intake_rpc import ConsoleLogin
from shared.contracts.safeguarding_rpc import SafeguardingAlerts

IDLE_MINUTES = 15


class Services:
    """Answers as the services would for one safeguarding lead with no alerts."""

    async def call(self, endpoint: Any, request: Any, **_: Any) -> ConsoleLogin:
        return ConsoleLogin(person_id="dana", roles=["dsl"], one_time=False, second_factor="done")

    async def whoami(self, person_id: str) -> Person:
        return Person(person_id, frozenset({"dsl"}))  # type: ignore[arg-type]

    async def ask(self, person: Person, endpoint: Any, request: Any, *, service: str | None = None,
                  **_: Any) -> SafeguardingAlerts:
        return SafeguardingAlerts(service=service or "risk", alerts=[])


async def test_what_a_page_fetches_by_itself_does_not_keep_the_log_in_alive() -> None:
    now = [0.0]
    app = create_app(ConsoleSettings(console_idle_minutes=IDLE_MINUTES), cast(ServicesClient, Services()),
                     AlertFeed(), clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as browser:
        form = (await browser.get("/login")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        logged = await browser.post("/login", data={"csrf_token": token[1], "person_id": "dana", "password": "x" * 12,
                                                   "code": "123456"})
        assert logged.status_code == 303 and logged.headers["location"] == "/"

        now[0] += IDLE_MINUTES * 60 - 60
        assert (await browser.get("/alerts")).status_code == 200  # the person opens the page: alive again
        for _ in range(3):  # the open page refreshes its list as alerts come
            now[0] += IDLE_MINUTES * 60 - 60
            listed = await browser.get("/alerts/list", headers={"HX-Request": "true"})
        assert listed.status_code == 401 and listed.headers["HX-Redirect"] == "/login", "idle since the page opened"
        again = await browser.get("/alerts")
        assert again.status_code == 303 and again.headers["location"] == "/login?next=%2Falerts"
