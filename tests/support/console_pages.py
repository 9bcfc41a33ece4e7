"""How to reach each page of the console in the browser, as a person who may see it, for the accessibility test
(tests/browser/test_every_page.py): a page the app serves that is missing here fails that test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

from playwright.async_api import Browser, Page, expect

from apps.console.app import create_app, pages
from apps.console.client import ServicesClient
from apps.console.live import AlertFeed
from apps.console.settings import ConsoleSettings
from shared.span_store import SpanStore
from tests.support.console import ConsoleStack, log_in, new_person_logged_in
from tests.support.console_risk import assessed_referral, decide_tier, open_case
from tests.support.console_scheduling import rotl_mentor_with_a_session, waiting_at_caseload
from tests.support.operations import kept_dead_letter
from tests.support.waiting import wait_until

Reach = Callable[[Browser, ConsoleStack], Awaitable[Page]]
TRACED = ("intake", "risk", "scheduling")


async def traced(stack: ConsoleStack, referral_id: str) -> None:
    """Until the console's span store holds spans of the referral from each of the three services (each exports its
    spans up to 200 ms after they end, later on a loaded machine), so that a page opened now shows them all."""
    store = SpanStore.of(stack.up.data_dir)

    def services() -> set[str]:
        return {s.service for s in store.spans_of_referral(referral_id)}

    try:
        await wait_until(lambda: services() >= set(TRACED), timeout=60,
                         what=lambda: f"spans of {referral_id} from {TRACED} (only from {sorted(services())})")
    finally:
        store.close()


def page_routes() -> set[str]:
    """The console's page routes, read from the app itself."""
    return pages(create_app(ConsoleSettings(), cast(ServicesClient, None), AlertFeed()))


async def _login(browser: Browser, stack: ConsoleStack) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(stack.url + "/login")
    return page


async def _password(browser: Browser, stack: ConsoleStack) -> Page:
    person = stack.person("scheduler")
    page = await (await browser.new_context()).new_page()
    await log_in(page, stack, person, stack.one_time_password(person))
    await expect(page.get_by_role("heading", name="Choose your console password")).to_be_visible()
    return page


async def _second_factor(browser: Browser, stack: ConsoleStack) -> Page:
    """Where a safeguarding lead sets up their authenticator, after choosing their password."""
    person = stack.person("dsl")
    one_time = stack.one_time_password(person)
    page = await (await browser.new_context()).new_page()
    await log_in(page, stack, person, one_time)
    await page.get_by_label("Your current password").fill(one_time)
    await page.get_by_label("New password", exact=True).fill(f"{person} long and private")
    await page.get_by_label("New password again").fill(f"{person} long and private")
    await page.get_by_role("button", name="Save my password").click()
    await expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    return page


async def _home(browser: Browser, stack: ConsoleStack) -> Page:
    return (await new_person_logged_in(browser, stack, "dsl", "scheduler"))[1]


async def _alerts(browser: Browser, stack: ConsoleStack) -> Page:
    """With open alerts (one overdue) and an acknowledged one: two referrals, so that an overdue alert is still open
    after one is acknowledged, on a fresh stack as after other tests."""
    for _ in range(2):
        await asyncio.to_thread(stack.refer, "threat_to_life_warning", "intent_to_use_weapon")
    _, page = await new_person_logged_in(browser, stack, "dsl", path="/alerts")
    await page.locator("li.alert").first.get_by_role("button").click()
    await expect(page.locator("ul.done li").first).to_be_visible()
    await expect(page.locator("li.alert.overdue").first).to_be_visible()
    return page


async def _risk(browser: Browser, stack: ConsoleStack) -> Page:
    """With a lowering waiting for a countersignature and reviews due in the year."""
    rid = await assessed_referral(stack)
    _, asker = await new_person_logged_in(browser, stack, "risk_lead")
    await decide_tier(asker, stack, rid, "very_high", "Seen with older associates")
    await decide_tier(asker, stack, rid, "high", "Moved school")
    _, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk?within=365")
    await expect(page.get_by_role("link", name=rid).first).to_be_visible()
    return page


async def _risk_referral(browser: Browser, stack: ConsoleStack) -> Page:
    """A second lead's view of a case with a lowering waiting: the forms to countersign, refuse and decide."""
    rid = await assessed_referral(stack)
    _, asker = await new_person_logged_in(browser, stack, "risk_lead")
    await decide_tier(asker, stack, rid, "very_high", "Seen with older associates")
    await decide_tier(asker, stack, rid, "high", "Moved school")
    _, page = await new_person_logged_in(browser, stack, "risk_lead")
    await open_case(page, stack, rid)
    await expect(page.get_by_role("button", name="Refuse the lowering")).to_be_visible()
    return page


async def _risk_audit(browser: Browser, stack: ConsoleStack) -> Page:
    await assessed_referral(stack)
    _, page = await new_person_logged_in(browser, stack, "risk_lead", path="/risk/audit?min_group=1")
    await expect(page.get_by_label("The audit report")).to_be_visible()
    return page


async def _operations(browser: Browser, stack: ConsoleStack) -> Page:
    _, page = await new_person_logged_in(browser, stack, "operator", path="/operations")
    await expect(page.get_by_role("table", name="Consumers").get_by_role("row")).not_to_have_count(1)
    return page


async def _dead_letters(browser: Browser, stack: ConsoleStack) -> Page:
    dead_letter_id = await asyncio.to_thread(kept_dead_letter, stack)
    _, page = await new_person_logged_in(browser, stack, "operator", path="/operations/dead-letters")
    await expect(page.get_by_role("link", name=dead_letter_id)).to_be_visible()
    return page


async def _dead_letter(browser: Browser, stack: ConsoleStack) -> Page:
    dead_letter_id = await asyncio.to_thread(kept_dead_letter, stack)
    _, page = await new_person_logged_in(browser, stack, "operator", path=f"/operations/dead-letters/{dead_letter_id}")
    await page.get_by_role("button", name="Open the message body").click()
    await expect(page.get_by_text("Shown to you at your request")).to_be_visible()
    return page


async def _identity(browser: Browser, stack: ConsoleStack) -> Page:
    """The form, reached from an alert (the identity itself is checked in tests/browser/test_identity_pages.py)."""
    rid = await asyncio.to_thread(stack.refer, "threat_to_life_warning")
    _, page = await new_person_logged_in(browser, stack, "dsl", path=f"/identity?referral_id={rid}")
    await expect(page.get_by_label("Why you need to know")).to_be_visible()
    return page


async def _access(browser: Browser, stack: ConsoleStack) -> Page:
    """With a look-up in the log."""
    rid = await asyncio.to_thread(stack.refer, "threat_to_life_warning")
    _, lead = await new_person_logged_in(browser, stack, "dsl", path=f"/identity?referral_id={rid}")
    await lead.get_by_label("Why you need to know").fill("Telling the referrer")
    await lead.get_by_role("button", name="Show who this is").click()
    await expect(lead.get_by_role("region", name=f"Referral {rid}")).to_be_visible()
    _, page = await new_person_logged_in(browser, stack, "dpo", path=f"/access?referral_id={rid}")
    await expect(page.get_by_role("row").filter(has_text=rid)).to_have_count(1)
    return page


async def _referral_traced(browser: Browser, stack: ConsoleStack) -> tuple[str, Page]:
    referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
    _, page = await new_person_logged_in(browser, stack, "operator", path=f"/traces/referral?referral_id={referral_id}")
    for service in ("intake", "risk", "scheduling"):  # each writes its spans within 200 ms of ending them
        await expect(page.get_by_role("cell", name=service, exact=True).first).to_be_visible()
    return referral_id, page


async def _traces(browser: Browser, stack: ConsoleStack) -> Page:
    referral_id, page = await _referral_traced(browser, stack)
    await page.goto(stack.url + "/traces")
    await expect(page.get_by_role("link", name=referral_id).first).to_be_visible()
    return page


async def _referral_traces(browser: Browser, stack: ConsoleStack) -> Page:
    return (await _referral_traced(browser, stack))[1]


async def _one_trace(browser: Browser, stack: ConsoleStack) -> Page:
    _, page = await _referral_traced(browser, stack)
    await page.get_by_role("link", name="All traces").click()
    await page.get_by_role("table", name="Recent").get_by_role("row").nth(1).get_by_role("link").first.click()
    await expect(page.get_by_role("heading", name="Trace ")).to_be_visible()
    return page


async def _referral_trace(browser: Browser, stack: ConsoleStack) -> Page:
    """A scheduler's view of a referral's traces, by the link on the referral's page."""
    referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
    await traced(stack, referral_id)
    page = await _scheduler_on(browser, stack, f"/referrals/{referral_id}")
    await page.get_by_role("link", name="Its trace across intake, risk and scheduling").click()
    for service in TRACED:
        await expect(page.get_by_role("cell", name=service, exact=True).first).to_be_visible()
    return page


async def _scheduler_on(browser: Browser, stack: ConsoleStack, path: str) -> Page:
    return (await new_person_logged_in(browser, stack, "scheduler", path=path))[1]


async def _waitlist(browser: Browser, stack: ConsoleStack) -> Page:
    """With a waiting case."""
    await asyncio.to_thread(waiting_at_caseload, stack)
    return await _scheduler_on(browser, stack, "/waitlist")


async def _recommend(browser: Browser, stack: ConsoleStack) -> Page:
    """With options and excluded mentors: a booked case, whose own place counts as free (its mentor is an option),
    beside the one waiting for that place."""
    waiting = await asyncio.to_thread(waiting_at_caseload, stack)
    page = await _scheduler_on(browser, stack, f"/referrals/{waiting.taken}/recommend")
    await expect(page.locator("li.option").filter(has_text=waiting.mentor_id)).to_be_visible()
    return page


async def _referral(browser: Browser, stack: ConsoleStack) -> Page:
    """A scheduled case: reasons, history, sessions with their actions."""
    _, referral_id = await asyncio.to_thread(rotl_mentor_with_a_session, stack)
    return await _scheduler_on(browser, stack, f"/referrals/{referral_id}")


async def _week(browser: Browser, stack: ConsoleStack, path: str) -> Page:
    """The week of a rotl mentor's first session (licence on each day, the session's actions)."""
    mentor_id, referral_id = await asyncio.to_thread(rotl_mentor_with_a_session, stack)
    page = await _scheduler_on(browser, stack, f"/referrals/{referral_id}")
    monday = (await page.get_by_role("link", name=f"{mentor_id}'s calendar").get_attribute("href") or "").split("=")[1]
    await page.goto(f"{stack.url}{path.format(mentor_id=mentor_id)}?week={monday}")
    await expect(page.locator("#week").get_by_role("row").filter(has_text=referral_id).first).to_be_visible()
    return page


PAGES: dict[str, Reach] = {
    "/login": _login,
    "/password": _password,
    "/second-factor": _second_factor,
    "/": _home,
    "/alerts": _alerts,
    "/risk": _risk,
    "/risk/referral": _risk_referral,
    "/risk/audit": _risk_audit,
    "/identity": _identity,
    "/access": _access,
    "/waitlist": _waitlist,
    "/referrals": lambda browser, stack: _scheduler_on(browser, stack, "/referrals"),
    "/referrals/{referral_id}": _referral,
    "/referrals/{referral_id}/recommend": _recommend,
    "/referrals/{referral_id}/trace": _referral_trace,
    "/calendar": lambda browser, stack: _scheduler_on(browser, stack, "/calendar"),
    "/calendar/mentors/{mentor_id}": lambda browser, stack: _week(browser, stack, "/calendar/mentors/{mentor_id}"),
    "/calendar/boroughs/{borough}": lambda browser, stack: _week(browser, stack, "/calendar/boroughs/Lewisham"),
    "/operations": _operations,
    "/operations/dead-letters": _dead_letters,
    "/operations/dead-letters/{dead_letter_id}": _dead_letter,
    "/traces": _traces,
    "/traces/referral": _referral_traces,
    "/traces/{trace_id}": _one_trace,
}
