"""An address the console does not serve is a page in its layout, not FastAPI's bare JSON: with the areas for a person
logged in, else a link to log in; the OTLP receiver, and a client asking for JSON, keep their JSON answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from apps.console.app import create_app
from apps.console.client import Person, ServicesClient
from apps.console.live import AlertFeed
from apps.console.settings import ConsoleSettings
from shared.contracts.rpc import Role
from tests.support.console_intake import FakeIntake, log_in

MISTYPED = ["/nonexistent", "/traces/referrals/ref_0123456789abcdef", "/risk/referrals/ref_0123456789abcdef",
            "/referrals/ref_0123456789abcdef/history", "/operations/dead-letters/x/y"]


@pytest.fixture
def intake() -> FakeIntake:
    return FakeIntake({"ops": {Role.OPERATOR}, "sched": {Role.SCHEDULER}})


@pytest.fixture
def browser(intake: FakeIntake) -> Iterator[TestClient]:
    app = create_app(ConsoleSettings(), cast(ServicesClient, intake), AlertFeed())
    with TestClient(cast(ASGIApp, app), base_url="http://127.0.0.1:8083") as client:
        yield client


def _is_page(response: object, status: int) -> str:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]  # as on every page
    assert '<html lang="en-GB">' in response.text and "<h1>" in response.text
    return response.text


@pytest.mark.parametrize("path", MISTYPED)
def test_a_mistyped_address_is_a_page_that_links_to_log_in(browser: TestClient, path: str) -> None:
    html = _is_page(browser.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}), 404)
    assert "<h1>Page not found</h1>" in html and 'href="/login"' in html
    assert 'aria-label="Areas"' not in html


@pytest.mark.parametrize("path", MISTYPED)
def test_a_person_logged_in_gets_it_with_their_areas(browser: TestClient, path: str) -> None:
    assert log_in(browser, "ops", "ops password").status_code == 303
    html = _is_page(browser.get(path), 404)  # curl's Accept: */*
    assert "<h1>Page not found</h1>" in html and "Logged in as <strong>ops</strong>" in html
    assert 'href="/operations"' in html and 'href="/alerts"' not in html  # their areas only


def test_a_removed_person_gets_it_without_areas_and_is_logged_out(browser: TestClient, intake: FakeIntake) -> None:
    assert log_in(browser, "ops", "ops password").status_code == 303
    del intake.roles["ops"]
    html = _is_page(browser.get("/nonexistent"), 404)
    assert 'aria-label="Areas"' not in html and 'href="/login"' in html
    intake.roles["ops"] = {Role.OPERATOR}
    assert browser.get("/operations", follow_redirects=False).headers["location"].startswith("/login")


def test_a_known_routes_not_found_is_a_page_too(browser: TestClient) -> None:
    assert log_in(browser, "sched", "sched password").status_code == 303
    html = _is_page(browser.get("/referrals/not-a-referral"), 404)
    assert "That is not a referral id" in html and "Logged in as <strong>sched</strong>" in html


def test_an_address_only_forms_post_to_is_a_page_that_says_so(browser: TestClient) -> None:
    answered = browser.get("/logout")
    html = _is_page(answered, 405)
    assert "<h1>This address is not a page</h1>" in html and answered.headers["allow"] == "POST"


def test_a_query_a_page_cannot_read_is_a_page_that_says_which(browser: TestClient) -> None:
    assert browser.get("/operations/dead-letters?all=maybe", follow_redirects=False).status_code == 303  # to log in
    assert log_in(browser, "ops", "ops password").status_code == 303
    html = _is_page(browser.get("/operations/dead-letters?all=maybe"), 400)
    assert "<h1>This address cannot be read</h1>" in html and "all: Input should be a valid boolean" in html


def test_the_span_receiver_and_a_client_asking_for_json_keep_json(browser: TestClient) -> None:
    for answered, status in [
        (browser.post("/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"}), 404),
        (browser.get("/v1/traces"), 405),
        (browser.post("/v1/metrics", content=b""), 404),
        (browser.get("/nonexistent", headers={"Accept": "application/json"}), 404),
    ]:
        assert answered.status_code == status and answered.headers["content-type"] == "application/json"
        assert answered.json()["detail"]
    assert browser.get("/v1/traces").headers["allow"] == "POST"


def test_every_page_links_the_consoles_icon_so_the_browser_does_not_ask_for_favicon_ico(
        browser: TestClient, intake: FakeIntake) -> None:
    """Without a linked icon every browser asks for /favicon.ico: a whole 404 page, and intake asked who is logged in."""
    icon = '<link rel="icon" href="/static/favicon.png" type="image/png">'
    assert icon in _is_page(browser.get("/login"), 200) and icon in _is_page(browser.get("/nonexistent"), 404)
    served = browser.get("/static/favicon.png")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content.startswith(b"\x89PNG")
    assert "img-src 'self'" in browser.get("/login").headers["content-security-policy"]  # the icon is on 'self'

    asked: list[str] = []
    whoami = intake.whoami

    async def counted(person_id: str) -> Person | None:
        asked.append(person_id)
        return await whoami(person_id)

    assert log_in(browser, "ops", "ops password").status_code == 303
    intake.whoami = counted  # type: ignore[method-assign]
    ico = browser.get("/favicon.ico", headers={"Accept": "image/avif,image/webp,image/png,image/*,*/*;q=0.8"})
    assert ico.status_code == 404 and ico.headers["content-type"] == "application/json"  # not a page
    assert asked == []
