"""The traces in Debian's Chromium, against a real `reroute up`: an operator finds one referral's trace as a waterfall
across intake, risk and scheduling (which the services sent to the console's OTLP receiver) by its id with the
keyboard alone, and the recent traces list it; a scheduler follows the link on a referral's page to that referral's
waterfall, and no further: a person without the `operator` role is refused every traces page (the lists, one trace by
id, a referral's by id), by URL too; a person without a role that may open referrals is refused a referral's trace,
by URL too."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from shared.span_store import SpanStore
from shared.telemetry import TRACES_DIR
from tests.support.console import ConsoleStack, accessible, new_person_logged_in
from tests.support.console_pages import TRACED, traced

pytestmark = [pytest.mark.browser]


async def test_an_operator_finds_a_referral_s_trace_as_a_waterfall_across_the_three_services(
        browser: Browser, stack: ConsoleStack) -> None:
    referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
    _, page = await new_person_logged_in(browser, stack, "operator", path="/traces")
    await page.get_by_label("One referral's traces, by its referral id").focus()
    await page.keyboard.type(referral_id)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"Referral {referral_id}", level=1)).to_be_visible()
    waterfall = page.get_by_role("table").first
    for service in ("intake", "risk", "scheduling"):
        await expect(waterfall.get_by_role("cell", name=service, exact=True).first).to_be_visible()
    first = waterfall.get_by_role("row").nth(1)
    await expect(first.get_by_role("cell").nth(1)).to_have_text("+0.0 ms")  # the trace starts with its first span
    # the services sent them to the console's OTLP receiver (`reroute up` points them there): no span files
    assert SpanStore.of(stack.up.data_dir).spans_of_referral(referral_id)
    assert not list((stack.up.data_dir / TRACES_DIR).glob("*.jsonl"))
    await accessible(page)

    await page.get_by_role("link", name="All traces").click()
    await expect(page.get_by_role("table", name="Recent").get_by_role("link", name=referral_id).first).to_be_visible()

    unknown = await page.goto(f"{stack.url}/traces/referral?referral_id=ref_0000000000000000")
    assert unknown is not None and unknown.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("No spans of ref_0000000000000000 here.")
    bad = await page.goto(f"{stack.url}/traces/referral?referral_id=<script>")
    assert bad is not None and bad.status == 400


async def test_without_the_operator_role_traces_are_refused_by_url_too(browser: Browser, stack: ConsoleStack) -> None:
    _, page = await new_person_logged_in(browser, stack, "scheduler", "risk_lead", "dsl")
    await expect(page.get_by_role("link", name="Traces")).to_have_count(0)
    for path in ("/traces", "/traces/referral?referral_id=ref_0000000000000000", f"/traces/{'a' * 32}"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()


async def test_a_scheduler_follows_the_link_on_a_referral_s_page_to_its_waterfall_and_no_further(
        browser: Browser, stack: ConsoleStack) -> None:
    referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
    await traced(stack, referral_id)
    _, page = await new_person_logged_in(browser, stack, "scheduler", path=f"/referrals/{referral_id}")
    await page.get_by_role("region", name="Trace").get_by_role(
        "link", name="Its trace across intake, risk and scheduling").click()
    await expect(page.get_by_role("heading", name=f"Trace of referral {referral_id}", level=1)).to_be_visible()
    assert page.url == f"{stack.url}/referrals/{referral_id}/trace"
    waterfall = page.get_by_role("table").first
    for service in TRACED:
        await expect(waterfall.get_by_role("cell", name=service, exact=True).first).to_be_visible()
    # the operators' ways on are not offered: every trace, a trace or a referral by id, where the spans are kept
    await expect(page.get_by_role("link", name="All traces")).to_have_count(0)
    await expect(page.get_by_role("link", name="Traces")).to_have_count(0)
    await expect(page.get_by_label("One referral's traces, by its referral id")).to_have_count(0)
    await expect(page.get_by_text(str(stack.up.data_dir))).to_have_count(0)
    await accessible(page)

    own = {s.trace_id for s in SpanStore.of(stack.up.data_dir).spans_of_referral(referral_id)}
    for path in ("/traces", f"/traces/referral?referral_id={referral_id}", *(f"/traces/{t}" for t in sorted(own))):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()

    await page.goto(f"{stack.url}/referrals/{referral_id}/trace")
    await page.get_by_role("link", name=f"Back to referral {referral_id}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {referral_id}")


async def test_without_a_role_that_may_open_referrals_a_referral_s_trace_is_refused_by_url_too(
        browser: Browser, stack: ConsoleStack) -> None:
    referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
    _, page = await new_person_logged_in(browser, stack, "risk_lead", "dsl")
    for path in (f"/referrals/{referral_id}/trace", "/referrals/ref_0000000000000000/trace"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()
        await expect(page.get_by_role("table")).to_have_count(0)
