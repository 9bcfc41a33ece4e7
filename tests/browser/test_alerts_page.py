"""The safeguarding leads' alerts page in Debian's Chromium, against a real `reroute up`: a new referral's alerts
appear on the open page without a reload (announced in its live region) and are acknowledged by the person logged in,
whom the service records; the overdue one says so in words; a person without the `dsl` role is refused the page, its
parts and the acknowledgement, by URL too; a form posted without the session's CSRF token changes nothing; five wrong
passwords lock a log-in until an admin issues a new one-time password."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlmodel import col

from services.risk.tables import AlertRecord
from tests.support.console import ConsoleStack, accessible, csrf_token, log_in, new_person_logged_in

pytestmark = [pytest.mark.browser]
E01, E02 = "E01_immediate_danger", "E02_threat_to_life_warning"
URGENT = ("threat_to_life_warning", "intent_to_use_weapon")
"""Indicators that raise E01 (deadline: now, so overdue at once) and E02 (same day)."""


def acknowledged_by(stack: ConsoleStack, alert_id: str) -> str | None:
    """Who risk's own record says acknowledged the alert."""
    engine = stack.up.engine("risk")
    try:
        with engine.connect() as conn:
            return conn.execute(select(col(AlertRecord.acknowledged_by))
                                .where(col(AlertRecord.event_id) == alert_id)).scalar()
    finally:
        engine.dispose()


async def test_a_new_alert_appears_on_the_open_page_and_the_lead_acknowledges_it(browser: Browser,
                                                                                  stack: ConsoleStack) -> None:
    lead, page = await new_person_logged_in(browser, stack, "dsl", path="/alerts")
    await expect(page.get_by_role("heading", name="Safeguarding alerts", level=1)).to_be_visible()
    await page.evaluate("window.sameDocument = 'since the page was opened'")

    rid = await asyncio.to_thread(stack.refer, *URGENT)

    live = page.get_by_role("status").filter(has_text="New safeguarding alert")
    await expect(live).to_contain_text(f"on referral {rid}")  # announced to screen readers, as it is raised
    e02 = page.locator("li.alert").filter(has_text=rid).filter(has=page.get_by_role("heading", name=E02))
    e01 = page.locator("li.alert").filter(has_text=rid).filter(has=page.get_by_role("heading", name=E01))
    await expect(e02).to_contain_text("police liaison")
    await expect(e01.get_by_role("heading", name=f"Overdue {E01}")).to_be_visible()  # in words, not colour alone
    await expect(e01).to_contain_text("(overdue by")
    assert await page.evaluate("window.sameDocument") == "since the page was opened", "the page was reloaded"
    await accessible(page)

    await e02.get_by_label("What was done or arranged").fill("Police liaison called; safety plan agreed")
    await e02.get_by_role("button", name=f"Acknowledge {E02} as {lead}").click()
    await expect(page.get_by_role("status").filter(has_text="acknowledged by")).to_contain_text(
        f"Alert {E02} on referral {rid} acknowledged by {lead}")
    done = page.locator("ul.done li").filter(has_text=rid)
    await expect(done).to_contain_text(f"acknowledged by {lead}")
    await expect(done).to_contain_text("Police liaison called; safety plan agreed")
    assert acknowledged_by(stack, f"alert:{rid}:{E02}:1") == lead, "risk records the person logged in"
    assert acknowledged_by(stack, f"alert:{rid}:{E01}:1") is None


async def test_without_the_dsl_role_the_page_and_the_acknowledgement_are_refused_by_url_too(
        browser: Browser, stack: ConsoleStack) -> None:
    rid = await asyncio.to_thread(stack.refer, *URGENT)
    alert_id = f"alert:{rid}:{E02}:1"
    scheduler, page = await new_person_logged_in(browser, stack, "scheduler")
    await expect(page.get_by_role("link", name="Safeguarding alerts")).to_have_count(0)

    for path in ("/alerts", "/alerts/list", "/alerts/events"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()
        await expect(page.get_by_text(f"You are logged in as {scheduler}")).to_be_visible()
    await accessible(page)
    posted = await page.request.post(f"{stack.url}/alerts/{alert_id}/ack", form={
        "csrf_token": await csrf_token(page), "note": "not mine to take"}, max_redirects=0)
    assert posted.status == 403
    assert acknowledged_by(stack, alert_id) is None

    # not logged in at all: to the log-in page, and back to where they were going
    anonymous = await (await browser.new_context()).new_page()
    await anonymous.goto(stack.url + "/alerts")
    await expect(anonymous.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()
    assert anonymous.url.endswith("/login?next=%2Falerts")


async def test_a_form_without_the_csrf_token_changes_nothing(browser: Browser, stack: ConsoleStack) -> None:
    rid = await asyncio.to_thread(stack.refer, *URGENT)
    alert_id = f"alert:{rid}:{E02}:1"
    _, page = await new_person_logged_in(browser, stack, "dsl", path="/alerts")

    forged: list[dict[str, str | float | bool]] = [  # the type Playwright's `form=` takes (a dict is invariant)
        {"note": "forged"}, {"note": "forged", "csrf_token": "not-the-sessions-token"}]
    for form in forged:
        posted = await page.request.post(f"{stack.url}/alerts/{alert_id}/ack", form=form, max_redirects=0)
        assert posted.status == 403 and "That form was refused" in await posted.text()
    from_elsewhere = await page.request.post(f"{stack.url}/alerts/{alert_id}/ack", max_redirects=0, form={
        "note": "forged", "csrf_token": await csrf_token(page)}, headers={"Origin": "https://evil.example"})
    assert from_elsewhere.status == 403
    assert acknowledged_by(stack, alert_id) is None


async def test_five_wrong_passwords_lock_the_log_in_until_an_admin_issues_a_new_one(browser: Browser,
                                                                                   stack: ConsoleStack) -> None:
    person = stack.person("dsl")
    right = stack.one_time_password(person)
    page = await (await browser.new_context()).new_page()
    for attempt in range(5):
        await log_in(page, stack, person, f"wrong-{attempt}")
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("Not logged in:")
    await expect(page.get_by_role("alert")).to_contain_text("this log-in is locked until")
    await accessible(page)

    await log_in(page, stack, person, right)
    await expect(page.get_by_role("alert")).to_contain_text("this log-in is locked until")  # the right one too

    fresh = stack.one_time_password(person)  # an admin's new one-time password lifts the lock
    await log_in(page, stack, person, fresh)
    await expect(page.get_by_role("heading", name="Choose your console password")).to_be_visible()
