"""The browser tests' shared parts: one Chromium and one `reroute up` with its console for the whole run (each test
makes people and referrals of its own; helpers in tests/support/console.py and console_pages.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.console import ConsoleStack, chromium_or_skip


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"] if os.geteuid() == 0 else [])  # root: CI, a container
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
async def stack(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ConsoleStack]:
    """After `browser`: without Chromium, no stack is started only to be skipped."""
    started = await ConsoleStack.launch(tmp_path_factory.mktemp("console"))
    try:
        yield started
    finally:
        started.stop()
        print(f"--- reroute up said:\n{started.up.output()}")
