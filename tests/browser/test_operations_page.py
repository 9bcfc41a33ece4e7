"""The operators' pages in Debian's Chromium, against a real `reroute up`: the overview shows each service ready, its
consumers and its figures, and they move on the open page as referrals go through, without a reload; a referral that
fails in risk for a real cause is dead-lettered, read with its reason (its body hidden until opened), replayed in
vain while the cause remains, and replayed once it is fixed, after which it is gone from the list and risk has
assessed it; a person without the `operator` role is refused every page and action, by URL too. The overview and
`reroute health` name the same services, ready or not, and the same consumers."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlmodel import col

from services.risk.tables import AssessmentRecord
from shared.deadletters import DeadLetterRow
from tests.support.console import ConsoleStack, accessible, csrf_token, new_person_logged_in
from tests.support.operations import RiskFailing, kept_dead_letter
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser]


def _risk_dead_letter(stack: ConsoleStack, referral_id: str) -> DeadLetterRow | None:
    engine = stack.up.engine("risk")
    try:
        with engine.connect() as conn:
            row = conn.execute(select(DeadLetterRow).where(col(DeadLetterRow.referral_id) == referral_id)).first()
            return DeadLetterRow.model_validate(row._mapping) if row else None
    finally:
        engine.dispose()


def _assessed(stack: ConsoleStack, referral_id: str) -> bool:
    engine = stack.up.engine("risk")
    try:
        with engine.connect() as conn:
            return conn.execute(select(col(AssessmentRecord.event_id))
                                .where(col(AssessmentRecord.referral_id) == referral_id)).first() is not None
    finally:
        engine.dispose()


async def test_the_overview_shows_each_service_and_its_figures_move_without_a_reload(
        browser: Browser, stack: ConsoleStack) -> None:
    _, page = await new_person_logged_in(browser, stack, "operator", path="/operations")
    services = page.get_by_role("table", name="Services")
    for service in ("intake", "risk", "scheduling"):
        await expect(services.get_by_role("row", name=service)).to_contain_text("Ready")
    consumers = page.get_by_role("table", name="Consumers")
    risk_row = consumers.get_by_role("row").filter(has_text="risk-recorded")
    await expect(risk_row).to_contain_text("INTAKE")
    await expect(page.get_by_role("heading", name="Where these figures come from")).to_be_visible()
    await expect(page.get_by_text("$JS.API.CONSUMER.INFO")).to_be_visible()
    before = await risk_row.locator("td").last.inner_text()
    await page.evaluate("window.sameDocument = 'since the page was opened'")

    await asyncio.to_thread(stack.refer, "peers_offending")

    await expect(risk_row.locator("td").last).not_to_have_text(before, timeout=30_000)
    assert await page.evaluate("window.sameDocument") == "since the page was opened", "the page was reloaded"
    await accessible(page)


def _cli_rows(table: str) -> list[list[str]]:
    """A rich table's rows, cell by cell (a cell wrapped onto more lines: its first line)."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    return [row for row in rows if row[0]]


async def _page_rows(page: Page, table: str) -> list[tuple[str, str]]:
    """(service, first cell after it) of each row of one of the overview's tables."""
    rows = page.get_by_role("table", name=table).locator("tbody tr")
    return [(await row.locator("th").inner_text(), await row.locator("td").first.inner_text()) for row in await rows.all()]


async def test_the_overview_and_reroute_health_name_the_same_services_readiness_and_consumers(
        browser: Browser, stack: ConsoleStack) -> None:
    """Issue 14: the CLI and the console give the same answers (both ask each service's `statistics`); compared on
    what does not move between two readings: the services, ready or not, and each one's consumers and streams."""
    health = await asyncio.to_thread(stack.reroute, "health")
    services, consumers = health.stdout.split("Consumers (JetStream consumer info)", 1)
    cli_ready = {row[0]: row[1].startswith("ready") for row in _cli_rows(services)}
    cli_consumers = sorted((row[0], row[1], row[2]) for row in _cli_rows(consumers))
    assert health.returncode == (0 if all(cli_ready.values()) else 1), health.stdout + health.stderr
    assert set(cli_ready) == {"intake", "risk", "scheduling"} and cli_consumers, health.stdout

    _, page = await new_person_logged_in(browser, stack, "operator", path="/operations")
    page_ready = {service: ready.startswith("Ready") for service, ready in await _page_rows(page, "Services")}
    page_consumers = []
    for service, cell in await _page_rows(page, "Consumers"):
        named = re.fullmatch(r"(\S+) \((\S+)\)", cell.strip())
        assert named, cell
        page_consumers.append((service, named[1], named[2]))

    assert page_ready == cli_ready, health.stdout
    assert sorted(page_consumers) == cli_consumers, health.stdout


async def test_an_operator_replays_a_dead_letter_once_its_cause_is_fixed_and_sees_it_gone(
        browser: Browser, stack: ConsoleStack) -> None:
    operator, page = await new_person_logged_in(browser, stack, "operator", path="/operations/dead-letters")
    with RiskFailing(stack) as fault:
        referral_id = await asyncio.to_thread(stack.refer, "peers_offending")
        await wait_until(lambda: _risk_dead_letter(stack, referral_id) is not None, timeout=90,
                         what=f"risk dead-lettering {referral_id} after its deliveries")
        kept = _risk_dead_letter(stack, referral_id)
        assert kept is not None

        await page.reload()
        await page.get_by_role("link", name=kept.id).click()
        await expect(page.get_by_role("heading", name=f"Dead letter {kept.id}", level=1)).to_be_visible()
        await expect(page.get_by_text("IntegrityError after 5 deliveries")).to_be_visible()
        await expect(page.get_by_text(referral_id)).to_be_visible()
        await expect(page.get_by_text("hidden: it may hold a young person's personal data")).to_be_visible()
        await accessible(page)

        await page.get_by_role("button", name=f"Replay {kept.id}").click()  # the fault is still there
        await expect(page.get_by_role("status")).to_contain_text(f"{kept.id}: failed again")
        assert not _assessed(stack, referral_id)

        fault.fix()
        await page.get_by_role("button", name=f"Replay {kept.id}").click()
        await expect(page.get_by_role("status")).to_contain_text(f"{kept.id}: replayed (")
        await expect(page.get_by_role("heading", name="Dead letters", level=1)).to_be_visible()
        await expect(page.get_by_role("link", name=kept.id)).to_have_count(0)  # gone from the open ones
    assert _assessed(stack, referral_id), "risk assessed the referral on replay"
    replayed = _risk_dead_letter(stack, referral_id)
    assert replayed is not None and replayed.status == "replayed" and replayed.resolved_by == operator

    await page.get_by_role("link", name="Show replayed and discarded ones too").click()
    await expect(page.get_by_role("row").filter(has_text=kept.id)).to_contain_text(f"replayed by {operator}")


async def test_an_operator_discards_a_dead_letter_with_a_reason_and_opening_its_body_is_asked_for(
        browser: Browser, stack: ConsoleStack) -> None:
    dead_letter_id = await asyncio.to_thread(kept_dead_letter, stack, body={"referral_id": "ref_x", "note": "private"})
    _, page = await new_person_logged_in(browser, stack, "operator",
                                                path=f"/operations/dead-letters/{dead_letter_id}")
    await expect(page.get_by_text("KeyError after 5 deliveries")).to_be_visible()
    await expect(page.get_by_text("private")).to_have_count(0)
    await page.get_by_role("button", name="Open the message body").click()
    await expect(page.locator("pre.body")).to_contain_text('"note": "private"')

    await page.get_by_role("button", name=f"Discard {dead_letter_id}").click()  # the reason is required
    await expect(page.get_by_role("heading", name=f"Dead letter {dead_letter_id}", level=1)).to_be_visible()
    await page.get_by_label("Why set it aside for good").fill("test junk, superseded")
    await page.get_by_role("button", name=f"Discard {dead_letter_id}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"{dead_letter_id}: discarded (test junk, superseded)")
    await expect(page.get_by_role("link", name=dead_letter_id)).to_have_count(0)

    missing = await page.goto(f"{stack.url}/operations/dead-letters/nonsense")
    assert missing is not None and missing.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("nonsense is not a dead letter id")


async def test_without_the_operator_role_every_page_and_action_is_refused_by_url_too(
        browser: Browser, stack: ConsoleStack) -> None:
    dead_letter_id = await asyncio.to_thread(kept_dead_letter, stack)
    scheduler, page = await new_person_logged_in(browser, stack, "scheduler", "dsl")
    await expect(page.get_by_role("link", name="Operations")).to_have_count(0)
    for path in ("/operations", "/operations/figures", "/operations/dead-letters",
                 f"/operations/dead-letters/{dead_letter_id}"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()
    token = await csrf_token(page)
    for action, form in (("replay", {}), ("discard", {"reason": "not mine to decide"}), ("body", {})):
        posted = await page.request.post(f"{stack.url}/operations/dead-letters/{dead_letter_id}/{action}",
                                         form={"csrf_token": token, **form}, max_redirects=0)
        assert posted.status == 403, action
        assert "private" not in await posted.text()
    engine = stack.up.engine("scheduling")
    try:
        with engine.connect() as conn:
            status = conn.execute(select(col(DeadLetterRow.status))
                                  .where(col(DeadLetterRow.id) == dead_letter_id)).scalar()
    finally:
        engine.dispose()
    assert status == "open", f"{scheduler} changed nothing"
