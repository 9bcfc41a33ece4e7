"""The risk leads' pages in the browser: a referral risk has assessed, a decision taken on its page, and what risk's
own tables then say (tests/browser/test_risk_page.py, tests/support/console_pages.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from playwright.async_api import Locator, Page, expect
from sqlalchemy import select
from sqlmodel import col

from services.risk.tables import PendingOverrideRecord, RiskCase
from tests.support.console import ConsoleStack
from tests.support.waiting import wait_until

ORDINARY = ("peers_offending", "unstructured_time")
"""Indicators with no escalation: the rules compute low or medium, so any tier from high down may be asked for."""


@dataclass(frozen=True)
class RiskRecord:
    """What risk's own tables say of a referral: the tier in force and its lowerings, oldest first."""

    tier: str | None
    lowerings: list[tuple[str, str, str | None]]
    """(tier asked, status, decided by) of each."""


def risk_record(stack: ConsoleStack, referral_id: str) -> RiskRecord:
    engine = stack.up.engine("risk")
    try:
        with engine.connect() as conn:
            tier = conn.execute(select(col(RiskCase.tier)).where(col(RiskCase.referral_id) == referral_id)).scalar()
            rows = conn.execute(select(col(PendingOverrideRecord.tier), col(PendingOverrideRecord.status),
                                       col(PendingOverrideRecord.decided_by))
                                .where(col(PendingOverrideRecord.referral_id) == referral_id)
                                .order_by(col(PendingOverrideRecord.id))).all()
    finally:
        engine.dispose()
    return RiskRecord(tier, [(r[0], r[1], r[2]) for r in rows])


async def assessed_referral(stack: ConsoleStack, *indicators: str) -> str:
    """A new referral (ordinary indicators unless given), once risk has assessed it."""
    rid = await asyncio.to_thread(stack.refer, *(indicators or ORDINARY))
    await wait_until(lambda: risk_record(stack, rid).tier is not None, timeout=30,
                     what=f"risk assessing {rid}")
    return rid


async def open_case(page: Page, stack: ConsoleStack, referral_id: str) -> None:
    await page.goto(f"{stack.url}/risk/referral?referral_id={referral_id}")
    await expect(page.get_by_role("heading", name=f"Referral {referral_id}", level=1)).to_be_visible()


async def decide_tier(page: Page, stack: ConsoleStack, referral_id: str, tier: str, reason: str) -> Locator:
    """On the referral's page, record `tier` with `reason`; the notice that says what happened."""
    await open_case(page, stack, referral_id)
    await page.get_by_label("Tier", exact=True).select_option(tier)
    await page.get_by_label("Your reason").fill(reason)
    await page.get_by_role("button", name="Record this tier").click()
    notice = page.locator(".notice")
    await expect(notice).to_be_visible()
    return notice


async def tab_to(page: Page, target: Locator, *, presses: int = 60) -> None:
    """Press Tab until `target` has the focus (the keyboard alone reaches it), or fail saying so."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{presses} presses of Tab never reached {target}")
