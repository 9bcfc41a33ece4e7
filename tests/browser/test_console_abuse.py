"""Abuses of the console tried through its public door (Debian's Chromium against a real `reroute up`): a session key
planted before log-in, a removed person's open console, a child's name on a list."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from tests.support.console import ConsoleStack, log_in, new_person_logged_in, said
from tests.support.console_risk import assessed_referral, decide_tier

pytestmark = [pytest.mark.browser]
COOKIE = "reroute-console"  # the stack is reached on loopback, without TLS: no `__Host-` prefix
CHILD = ("Jordan", "Testperson")  # the young person's names in every referral the stack is sent
"""tests/support/cluster.py's referral(): the names the console must never show on a list."""


async def test_a_session_key_planted_before_log_in_is_never_logged_in(browser: Browser, stack: ConsoleStack) -> None:
    person = stack.person("scheduler")
    victim = await (await browser.new_context()).new_page()
    await victim.goto(stack.url + "/login")
    planted = {c["name"]: c["value"] for c in await victim.context.cookies()}[COOKIE]  # what an attacker would plant

    await log_in(victim, stack, person, stack.one_time_password(person))
    await expect(victim.get_by_role("heading", name="Choose your console password")).to_be_visible()
    assert {c["name"]: c["value"] for c in await victim.context.cookies()}[COOKIE] != planted

    attacker = await browser.new_context()
    await attacker.add_cookies([{"name": COOKIE, "value": planted, "url": stack.url}])
    page = await attacker.new_page()
    for path in ("/password", "/"):
        await page.goto(stack.url + path)
        await expect(page.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()


async def test_a_removed_persons_open_console_is_shut_at_their_next_request(browser: Browser,
                                                                            stack: ConsoleStack) -> None:
    person, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await expect(page.get_by_role("heading", name="Risk reviews", level=1)).to_be_visible()

    removed = await asyncio.to_thread(stack.reroute, "people", "remove", person)
    assert removed.returncode == 0, said(removed)
    await page.reload()
    await expect(page.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()
    fetched = await page.request.get(stack.url + "/risk", max_redirects=0)
    assert fetched.status == 303 and fetched.headers["location"].startswith("/login")


async def test_no_list_shows_a_childs_name(browser: Browser, stack: ConsoleStack) -> None:
    rid = await assessed_referral(stack, "threat_to_life_warning", "intent_to_use_weapon")
    _, page = await new_person_logged_in(browser, stack, "dsl", "risk_lead")
    await decide_tier(page, stack, rid, "very_high", "Seen with older associates")  # a review is now due
    await page.goto(stack.url + "/alerts")
    await expect(page.get_by_text(rid).first).to_be_visible()
    shown = {"/alerts": await page.content()}
    for path in ("/alerts/list", "/risk?within=365"):
        response = await page.request.get(stack.url + path)
        assert response.status == 200, path
        shown[path] = await response.text()
    assert rid in shown["/risk?within=365"]
    for path, html in shown.items():
        assert not [n for n in CHILD if n.lower() in html.lower()], f"{path} shows the child's name"
