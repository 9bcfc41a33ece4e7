"""The risk leads' pages in Debian's Chromium, against a real `reroute up`: a lead raises a tier and asks to lower it;
the lowering waits, with the tier in force unchanged, until a second lead, who sees the case first, countersigns it
(with the keyboard alone); the lead who asked cannot countersign it, even by posting the form by hand; a lowering can be
refused with a reason; a person without the `risk_lead` role is refused every page and every decision, by URL too."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.console import ConsoleStack, accessible, csrf_token, new_person_logged_in
from tests.support.console_risk import RiskRecord, assessed_referral, decide_tier, open_case, risk_record, tab_to

pytestmark = [pytest.mark.browser]


async def lowering_shown(page: Page) -> dict[str, str]:
    """The hidden fields by which the case page's forms name the lowering and the assessment it showed."""
    form = page.locator('form[action="/risk/referral/refuse"]')
    return {name: await form.locator(f'input[name="{name}"]').get_attribute("value") or ""
            for name in ("tier", "requested_at", "assessment_number")}


async def test_a_lowering_waits_for_a_second_lead_who_countersigns_it(browser: Browser, stack: ConsoleStack) -> None:
    rid = await assessed_referral(stack)
    first, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    raised = await decide_tier(page, stack, rid, "very_high", "Older associates seen with a knife at the school gate")
    await expect(raised).to_contain_text(f"{rid} is now at tier very_high")
    assert risk_record(stack, rid).tier == "very_high"

    asked = await decide_tier(page, stack, rid, "high", "Knife surrendered; family engaged with the YOT")
    await expect(asked).to_contain_text(f"Lowering {rid} to high is asked for by {first}: it waits for a second risk "
                                        "lead's countersignature; until then tier very_high stays in force.")
    assert risk_record(stack, rid) == RiskRecord("very_high", [("high", "pending", None)])
    await expect(page.get_by_role("button", name="Countersign")).to_have_count(0)  # not offered to the asker

    # the asker posts the countersignature by hand: risk refuses it, and nothing changes
    posted = await page.request.post(f"{stack.url}/risk/referral/countersign", form={
        "csrf_token": await csrf_token(page), "referral_id": rid, **await lowering_shown(page)}, max_redirects=0)
    assert posted.status == 303
    await page.reload()
    await expect(page.locator(".notice")).to_contain_text(f"Nothing recorded: override refused: a down-override needs "
                                                          f"a countersignature from a second person, not {first} again")
    assert risk_record(stack, rid).lowerings == [("high", "pending", None)]

    # the second lead finds it waiting, opens the case, and countersigns it with the keyboard alone
    second, other = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    waiting = other.get_by_role("row").filter(has_text=rid)
    await expect(waiting.get_by_role("cell").nth(1)).to_have_text("high")
    await expect(waiting.get_by_role("cell").nth(2)).to_have_text(first)
    await waiting.get_by_role("link", name=rid).click()
    await expect(other.get_by_role("heading", name="Waiting for a second risk lead: lower to high")).to_be_visible()
    await expect(other.get_by_text("Knife surrendered; family engaged with the YOT")).to_be_visible()
    await expect(other.get_by_role("heading", name="History of its tier")).to_be_visible()
    await accessible(other)
    sign = other.get_by_role("button", name=f"Countersign: lower {rid} to high")
    await tab_to(other, sign)
    await other.keyboard.press("Enter")
    await expect(other.locator(".notice")).to_contain_text(f"{rid} is now at tier high, countersigned by {second}")
    assert risk_record(stack, rid) == RiskRecord("high", [("high", "countersigned", second)])
    history = other.get_by_role("row").filter(has_text=f"(countersigned by {second})")
    await expect(history).to_contain_text(first)


async def test_a_second_lead_signs_only_the_lowering_the_page_showed(browser: Browser, stack: ConsoleStack) -> None:
    rid = await assessed_referral(stack)
    first, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await decide_tier(page, stack, rid, "very_high", "Older associates seen with a knife at the school gate")
    await decide_tier(page, stack, rid, "high", "Knife surrendered")
    _, other = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await open_case(other, stack, rid)
    await expect(other.get_by_role("heading", name="Waiting for a second risk lead: lower to high")).to_be_visible()

    # while the second lead reads the case, the first withdraws that lowering and asks for another
    await open_case(page, stack, rid)
    await page.get_by_label("Why you withdraw it").fill("Asked too soon")
    await page.get_by_role("button", name="Withdraw my lowering").click()
    await expect(page.locator(".notice")).to_contain_text(f"The lowering is refused: {rid} stays at tier very_high.")
    await decide_tier(page, stack, rid, "medium", "Moved school, away from the group")

    await other.get_by_role("button", name=f"Countersign: lower {rid} to high").click()
    notice = other.locator(".notice")
    await expect(notice).to_contain_text(f"Nothing recorded: the lowering you saw (to high, asked by {first} at ")
    await expect(notice).to_contain_text(f"was withdrawn by {first}; the pending one asks for medium (asked by {first}"
                                         " at ")
    await expect(notice).to_contain_text("open the case again")
    assert risk_record(stack, rid) == RiskRecord("very_high", [("high", "refused", first), ("medium", "pending", None)])
    await expect(other.get_by_role("heading", name="Waiting for a second risk lead: lower to medium")).to_be_visible()


async def test_a_second_lead_refuses_a_lowering_and_the_tier_stays(browser: Browser, stack: ConsoleStack) -> None:
    rid = await assessed_referral(stack)
    _, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await decide_tier(page, stack, rid, "very_high", "Threats made online")
    await decide_tier(page, stack, rid, "high", "Threats withdrawn")

    second, other = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await open_case(other, stack, rid)
    await other.get_by_label("Why you refuse it").fill("The threats were repeated yesterday")
    await other.get_by_role("button", name="Refuse the lowering").click()
    await expect(other.locator(".notice")).to_contain_text(f"The lowering is refused: {rid} stays at tier very_high.")
    assert risk_record(stack, rid).lowerings == [("high", "refused", second)]
    assert risk_record(stack, rid).tier == "very_high"


async def test_without_the_risk_lead_role_every_page_and_decision_is_refused_by_url_too(
        browser: Browser, stack: ConsoleStack) -> None:
    rid = await assessed_referral(stack)
    _, lead = await new_person_logged_in(browser, stack, "risk_lead", path="/risk")
    await decide_tier(lead, stack, rid, "very_high", "Seen with older associates")
    await decide_tier(lead, stack, rid, "high", "Moved school")
    shown = await lowering_shown(lead)  # valid fields, as a lead's page has them: only the role can refuse the posts

    someone, page = await new_person_logged_in(browser, stack, "dsl", "scheduler", "operator", "admin")
    await expect(page.get_by_role("link", name="Risk reviews")).to_have_count(0)
    for path in ("/risk", f"/risk/referral?referral_id={rid}", "/risk/audit"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()
        await expect(page.get_by_text(f"You are logged in as {someone}")).to_be_visible()
    await accessible(page)
    token = await csrf_token(page)
    for action, form in (("override", {"tier": "low", "reason": "not mine"}), ("countersign", shown),
                         ("refuse", {**shown, "reason": "not mine"})):
        posted = await page.request.post(f"{stack.url}/risk/referral/{action}", max_redirects=0,
                                         form={"csrf_token": token, "referral_id": rid, **form})
        assert posted.status == 403, action
    assert risk_record(stack, rid) == RiskRecord("very_high", [("high", "pending", None)])
