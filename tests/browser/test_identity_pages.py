"""A young person's identity for a stated purpose, and the data protection officer's access log, in Debian's Chromium
against a real `reroute up`: a safeguarding lead opens who the child of an alert is and the referrer's contact details
by giving a purpose (never in the alerts list; refused without one); intake logs it, and the data protection officer
finds it by who looked; a person without the role is refused both pages and the look-up itself, by URL too, and
nothing of theirs reaches the log."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import func, select
from sqlmodel import col

from services.intake.tables import PersonalDataAccessRecord
from tests.support.console import ConsoleStack, accessible, csrf_token, new_person_logged_in

pytestmark = [pytest.mark.browser]
URGENT = ("threat_to_life_warning", "intent_to_use_weapon")
CHILD, BORN, REFERRER = "Jordan Testperson", "17 May 2010", "Test Referrer"
"""The fictional young person and referrer of tests/support/cluster.py's referral."""


def look_ups(stack: ConsoleStack, referral_id: str) -> int:
    """How many look-ups of the referral intake's own access log holds."""
    engine = stack.up.engine("intake")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(
                col(PersonalDataAccessRecord.referral_id) == referral_id)).scalar_one())
    finally:
        engine.dispose()


async def test_a_lead_opens_who_the_child_of_an_alert_is_for_a_purpose_and_the_dpo_sees_who_looked(
        browser: Browser, stack: ConsoleStack) -> None:
    rid = await asyncio.to_thread(stack.refer, *URGENT)
    lead, page = await new_person_logged_in(browser, stack, "dsl", path="/alerts")
    alert = page.locator("li.alert").filter(has_text=rid).first
    await expect(alert).to_be_visible()
    await expect(page.get_by_text("Testperson")).to_have_count(0)  # never in the list
    await alert.get_by_role("link", name="who this is").click()
    await expect(page.get_by_role("heading", name="Identify a young person", level=1)).to_be_visible()
    await expect(page.get_by_label("Referral id")).to_have_value(rid)
    await expect(page.get_by_text("Testperson")).to_have_count(0)

    for purpose in ("", "   "):  # by hand, past the browser's own check: refused, nothing shown, nothing asked
        posted = await page.request.post(f"{stack.url}/identity", form={
            "csrf_token": await csrf_token(page), "referral_id": rid, "purpose": purpose})
        body = await posted.text()
        assert posted.status == 400 and "Say why you need to know" in body and "Testperson" not in body
    assert look_ups(stack, rid) == 0

    await page.get_by_label("Why you need to know").fill("Calling the police: immediate danger")
    await page.get_by_role("button", name="Show who this is").click()
    shown = page.get_by_role("region", name=f"Referral {rid}")
    await expect(shown).to_contain_text(CHILD)
    await expect(shown).to_contain_text(BORN)
    await expect(shown).to_contain_text(REFERRER)
    await expect(shown.get_by_role("link", name="referrer@example.org")).to_be_visible()
    await accessible(page)
    assert look_ups(stack, rid) == 1

    _, log = await new_person_logged_in(browser, stack, "dpo", path=f"/access?asked_by={lead}")
    row = log.get_by_role("row").filter(has_text=rid)
    await expect(row).to_have_count(1)
    await expect(row.get_by_role("cell").nth(1)).to_have_text(lead)
    await expect(row.get_by_role("cell").nth(2)).to_have_text("identity")
    await expect(row).to_contain_text(f"Calling the police: immediate danger (safeguarding alert alert:{rid}:")
    await expect(log.get_by_text("Testperson")).to_have_count(0)  # the log names referrals, never children
    await log.get_by_label("Who looked").fill(f"nobody-{uuid.uuid4().hex[:6]}")
    await log.get_by_role("button", name="Search").click()
    await expect(log.get_by_role("heading", name="No look-ups matching")).to_be_visible()
    await log.get_by_label("Who looked").fill("")
    await log.get_by_label("Referral id").fill(rid)
    await log.get_by_label("Referral id").press("Enter")
    await expect(log.get_by_role("row").filter(has_text=lead)).to_have_count(1)


async def test_without_the_role_the_identity_and_the_access_log_are_refused_by_url_too(
        browser: Browser, stack: ConsoleStack) -> None:
    rid = await asyncio.to_thread(stack.refer, *URGENT)
    _, page = await new_person_logged_in(browser, stack, "scheduler", "risk_lead", "operator")
    await expect(page.get_by_role("link", name="Identify a young person")).to_have_count(0)
    for path in ("/identity", f"/identity?referral_id={rid}", "/access", f"/access?referral_id={rid}"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()
    posted = await page.request.post(f"{stack.url}/identity", max_redirects=0, form={
        "csrf_token": await csrf_token(page), "referral_id": rid, "purpose": "curious"})
    assert posted.status == 403 and "Testperson" not in await posted.text()

    _, lead = await new_person_logged_in(browser, stack, "dsl")  # may identify, may not read the log
    response = await lead.goto(f"{stack.url}/access")
    assert response is not None and response.status == 403
    _, officer = await new_person_logged_in(browser, stack, "dpo")  # may read the log, may not identify
    posted = await officer.request.post(f"{stack.url}/identity", max_redirects=0, form={
        "csrf_token": await csrf_token(officer), "referral_id": rid, "purpose": "checking"})
    assert posted.status == 403 and "Testperson" not in await posted.text()
    assert look_ups(stack, rid) == 0
