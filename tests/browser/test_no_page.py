"""A mistyped console address, in Debian's Chromium against a real `reroute up`: a page in the console's layout (axe
clean), 404, with a link to log in for a visitor and the person's areas once they are logged in."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.support.console import ConsoleStack, accessible, new_person_logged_in

pytestmark = [pytest.mark.browser]


async def test_a_mistyped_address_is_a_page_with_a_way_on(browser: Browser, stack: ConsoleStack) -> None:
    page = await (await browser.new_context()).new_page()
    answered = await page.goto(stack.url + "/traces/referrals/ref_0123456789abcdef")
    assert answered is not None and answered.status == 404
    await expect(page.get_by_role("heading", name="Page not found", level=1)).to_be_visible()
    await accessible(page)
    await page.get_by_role("link", name="Log in to the console").click()
    await expect(page.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()

    _, page = await new_person_logged_in(browser, stack, "operator")
    answered = await page.goto(stack.url + "/risk/referrals/ref_0123456789abcdef")
    assert answered is not None and answered.status == 404
    await expect(page.get_by_role("heading", name="Page not found", level=1)).to_be_visible()
    await expect(page.get_by_role("navigation", name="Areas").get_by_role("link", name="Operations")).to_be_visible()
    await accessible(page)
    await page.get_by_role("link", name="Go to what you can do").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
