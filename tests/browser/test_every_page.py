"""axe-core on every page of the console, with nothing serious or critical: each page route the app serves must be
listed in tests/support/console_pages.py with the way to reach it, so a page added without an accessibility check fails
here. The routes themselves are read from the app (`routes_of`), not from that list."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.support.console import ConsoleStack, accessible
from tests.support.console_pages import PAGES, page_routes

pytestmark = [pytest.mark.browser]


def test_every_page_route_has_an_accessibility_check() -> None:
    unchecked = page_routes() - set(PAGES)
    assert not unchecked, (f"pages no test checks with axe-core: {sorted(unchecked)}; add each to "
                           "tests/support/console_pages.py with how to reach it")
    assert not set(PAGES) - page_routes(), "tests/support/console_pages.py lists routes the console no longer has"


@pytest.mark.parametrize("route", sorted(PAGES))
async def test_the_page_passes_axe(route: str, browser: Browser, stack: ConsoleStack) -> None:
    page = await PAGES[route](browser, stack)
    await accessible(page)
