"""The operators' pages in Debian's Chromium, against a real `reroute up`: the overview shows each service ready, its
consumers and its figures, and they move on the open page as referrals go through, without a reload; a referral that
fails in risk for a real cause is dead-lettered, read with its reason (its body hidden until opened), replayed in
vain while the cause remains, and replayed once it is fixed, after which it is gone from the list and risk has
assessed it; a person without the `operator` role is refused every page and action, by URL too. The overview and
`reroute health` name the same services, ready or not, and the same consumers."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlmodel import col

from services.risk.tables import AssessmentRecord
from shared.deadletters import DeadLetterRow
from tests.support.cli import cli_rows
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


_READ_FIGURES = """figures => Object.fromEntries([...figures.querySelectorAll("table")].map((table) => [
    table.caption.innerText.trim(),
    [...table.tBodies[0].rows].map((row) => [row.cells[0].innerText.trim(), row.cells[1].innerText.trim()])]))"""


async def _page_figures(page: Page) -> dict[str, list[tuple[str, str]]]:
    """(service, the cell after it) of each row of each of the overview's tables, by caption, read in one evaluation:
    htmx swaps the figures every few seconds, and reads between which it swapped would mix two versions."""
    read: dict[str, list[list[str]]] = await page.locator("#figures").evaluate(_READ_FIGURES)
    return {caption: [(service, cell) for service, cell in rows] for caption, rows in read.items()}


def _cli_figures(health: subprocess.CompletedProcess[str]) -> tuple[dict[str, bool], list[tuple[str, str, str]]]:
    """Each service ready or not, and (service, consumer, stream) of each consumer, as `reroute health` printed them;
    its exit status says whether all were ready."""
    services, consumers = health.stdout.split("Consumers (JetStream consumer info)", 1)
    ready = {row[0]: row[1].startswith("ready") for row in cli_rows(services)}
    assert health.returncode == (0 if all(ready.values()) else 1), health.stdout + health.stderr
    return ready, sorted((row[0], row[1], row[2]) for row in cli_rows(consumers))


def _page_ready(figures: dict[str, list[tuple[str, str]]]) -> dict[str, bool]:
    return {service: cell.startswith("Ready") for service, cell in figures["Services"]}


async def test_the_overview_and_reroute_health_name_the_same_services_readiness_and_consumers(
        browser: Browser, stack: ConsoleStack) -> None:
    """Issue 14: the CLI and the console give the same answers (both ask each service's `statistics`): the same
    services and consumers (and streams) at any moment; readiness can change between two readings, so both are read
    again until they agree."""
    cli_ready, cli_consumers = _cli_figures(await asyncio.to_thread(stack.reroute, "health"))
    assert set(cli_ready) == {"intake", "risk", "scheduling"} and cli_consumers, cli_ready

    _, page = await new_person_logged_in(browser, stack, "operator", path="/operations")
    figures = await _page_figures(page)
    page_consumers = []
    for service, cell in figures["Consumers"]:
        named = re.fullmatch(r"(\S+) \((\S+)\)", cell)
        assert named, cell
        page_consumers.append((service, named[1], named[2]))
    assert sorted(service for service, _ in figures["Services"]) == sorted(cli_ready), figures
    assert sorted(page_consumers) == cli_consumers, figures

    last: list[tuple[dict[str, bool], dict[str, bool]]] = []

    async def readiness_agrees() -> bool:
        cli, _ = _cli_figures(await asyncio.to_thread(stack.reroute, "health"))
        last.append((cli, _page_ready(await _page_figures(page))))
        return cli == last[-1][1]

    await wait_until(readiness_agrees, timeout=60, every=1,
                     what=lambda: f"reroute health and the overview agreeing on readiness (last: {last[-1]})")


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
