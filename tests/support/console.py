"""The web console as people use it: a real `reroute up` (NATS with users, the three services, the console), people
made with `reroute people add` and given one-time console passwords, and Debian's Chromium driven by Playwright.

Without Chromium the browser tests are skipped, saying so; REROUTE_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from apps.console.settings import URL_FILE
from shared.contracts.intake_rpc import SECOND_FACTOR_ROLES
from tests.support.cluster import referral
from tests.support.local_up import REROUTE, LocalUp, up_env

CHROMIUM = os.environ.get("REROUTE_CHROMIUM", "/usr/bin/chromium")


def chromium_or_skip() -> str:
    """Debian's Chromium (REROUTE_CHROMIUM to use another); a named skip without it, or a failure under
    REROUTE_REQUIRE_BROWSER=1."""
    found = shutil.which(CHROMIUM)
    if found is None:
        why = (f"no Chromium at {CHROMIUM}: install Debian's (`apt-get install chromium`, DEVELOPERS.md) to run the "
               "console's browser tests")
        if os.environ.get("REROUTE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"REROUTE_REQUIRE_BROWSER=1, but {why}", pytrace=False)
        pytest.skip(why)
    return found


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


@dataclass
class ConsoleStack:
    """`reroute up` with its console, and the CLI as its first admin."""

    up: LocalUp
    url: str
    home: Path
    authenticators: dict[str, str] = field(default_factory=dict)
    """The authenticator secret of each person who set one up (the app on their phone)."""

    def next_code(self, person_id: str) -> str:
        """A code their app shows within the next 30 s: one no log-in has used yet (each is accepted once)."""
        return pyotp.TOTP(self.authenticators[person_id]).at(datetime.now(UTC) + timedelta(seconds=30))

    @classmethod
    async def launch(cls, root: Path) -> ConsoleStack:
        # every test logs in from 127.0.0.1: the per-address limit is the unit tests' (the per-person lock-out is
        # tested here)
        up = LocalUp.launch(root / "data", REROUTE_CONSOLE_LOGIN_ATTEMPTS="1000")
        await up.until_running()
        up.register_agency("demo")  # the agency `refer` submits as
        home = root / "home"
        home.mkdir()
        return cls(up, (up.data_dir / URL_FILE).read_text().strip(), home)

    def stop(self) -> None:
        self.up.stop()
        self.up.drop_schemas()

    def reroute(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(REROUTE), *args, "--data-dir", str(self.up.data_dir)], env=up_env(), cwd=self.home,
                              capture_output=True, text=True, timeout=90, check=False)

    def person(self, *roles: str) -> str:
        """A new person with these roles (a unique id)."""
        person_id = f"p-{uuid.uuid4().hex[:8]}"
        done = self.reroute("people", "add", person_id, *(f"--role={r}" for r in roles), "--out",
                            str(self.home / f"{person_id}.json"))
        assert done.returncode == 0, said(done)
        return person_id

    def one_time_password(self, person_id: str) -> str:
        done = self.reroute("people", "console-password", person_id)
        found = re.search(rf"One-time console password for {re.escape(person_id)}: (\S+)", done.stdout)
        assert done.returncode == 0 and found, said(done)
        return found[1]

    def refer(self, *indicators: str) -> str:
        """A referral from the agency `demo` with these indicators; its referral id once it is accepted."""
        arid = f"CONSOLE-{uuid.uuid4().hex[:8]}"
        path = self.home / f"{arid}.json"
        path.write_text(json.dumps([referral(arid, language="en", indicators=list(indicators))]))
        done = self.reroute("submit", str(path), "--agency", "demo", "--timeout", "30")
        found = re.search(rf"{re.escape(arid)}\s*│\s*(ref_[0-9a-f]+)", done.stdout)
        assert found, said(done)
        return found[1]


async def log_in(page: Page, stack: ConsoleStack, person_id: str, password: str, *, path: str = "/",
                 code: str = "") -> None:
    """Log in on the log-in page."""
    await page.goto(stack.url + path)
    await page.get_by_label("Person id").fill(person_id)
    await page.get_by_label("Console password").fill(password)
    await page.get_by_label("Authenticator code").fill(code)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()


async def new_person_logged_in(browser: Browser, stack: ConsoleStack, *roles: str, path: str = "/"
                               ) -> tuple[str, Page]:
    """A new person with these roles, logged in with their own password (chosen after the one-time one), on `path`."""
    person_id = stack.person(*roles)
    one_time = stack.one_time_password(person_id)
    page = await (await browser.new_context()).new_page()
    await log_in(page, stack, person_id, one_time, path=path)
    await expect(page.get_by_role("heading", name="Choose your console password")).to_be_visible()
    await page.get_by_label("Your current password").fill(one_time)
    await page.get_by_label("New password", exact=True).fill(f"{person_id} long and private")
    await page.get_by_label("New password again").fill(f"{person_id} long and private")
    await page.get_by_role("button", name="Save my password").click()
    await expect(page.get_by_text("Your password is changed.")).to_be_visible()
    if SECOND_FACTOR_ROLES & set(roles):
        await set_up_authenticator(page, stack, person_id)
    if path != "/":
        await page.goto(stack.url + path)
    return person_id, page


async def tab_to(page: Page, target: Locator, *, limit: int = 120) -> None:
    """Press Tab until `target` has the focus (as a person without a mouse does)."""
    element = await target.element_handle()
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(el) => document.activeElement === el", element):
            return
    raise AssertionError(f"{target} never had the focus after {limit} presses of Tab")


async def press_enter_on(page: Page, target: Locator) -> None:
    """Tab to a link or a form's button and press Enter on it, then wait for the page it leads to: waiting for a load
    state after Enter returns at once on the page still open, whose links (the Areas on every page) the next `tab_to`
    would find."""
    await tab_to(page, target)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")


async def type_into(page: Page, field: Locator, text: str) -> None:
    """Tab to a field and type into it, key by key."""
    await tab_to(page, field)
    await page.keyboard.type(text)


_FIELD_ORDER = """() => new Intl.DateTimeFormat(navigator.language, {year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit"}).formatToParts(0).map((part) => part.type).filter((type) => type !== "literal")"""
"""The parts of a date and time in the order the browser's own language writes them (with `dayPeriod` if its clock
has 12 hours)."""


def _keys(part: str, moment: datetime, *, twelve_hours: bool) -> str:
    if part == "dayPeriod":
        return "A" if moment.hour < 12 else "P"
    return moment.strftime({"year": "%Y", "month": "%m", "day": "%d", "minute": "%M",
                            "hour": "%I" if twelve_hours else "%H"}[part])


async def type_date_and_time(page: Page, field: Locator, moment: datetime) -> None:
    """Type a wall-clock date and time into a datetime-local field from the keyboard, part by part in the order
    Chromium lays the field out: that of its own language, which the machine's LANGUAGE or LANG set (month first and
    AM/PM in en-US, day first in en-GB), not the page's `lang` nor a context's `locale` (so the page's context must
    set none: `navigator.language` is then Chromium's language). Each part moves on by itself once full, except the
    year (Tab). The field's value is checked, so a layout read wrongly fails here, saying so."""
    order: list[str] = await page.evaluate(_FIELD_ORDER)
    await tab_to(page, field)
    for part in order:
        await page.keyboard.type(_keys(part, moment, twelve_hours="dayPeriod" in order))
        if part == "year":
            await page.keyboard.press("Tab")
    await expect(field).to_have_value(moment.strftime("%Y-%m-%dT%H:%M"))


async def new_person_logged_in_by_keyboard(browser: Browser, stack: ConsoleStack, *roles: str) -> tuple[str, Page]:
    """`new_person_logged_in` with the keyboard alone: the console's address opened once, then Tab, typing and Enter
    through the log-in and the one-time password's change (roles without a second factor: setting one up reads a
    key off the page, which a keyboard test would only mimic)."""
    assert not SECOND_FACTOR_ROLES & set(roles), "these roles set up an authenticator: use new_person_logged_in"
    person_id = stack.person(*roles)
    one_time = stack.one_time_password(person_id)
    page = await (await browser.new_context()).new_page()  # no `locale`: type_date_and_time reads Chromium's own
    await page.goto(stack.url + "/")
    await expect(page.get_by_role("heading", name="Log in to the reroute console")).to_be_visible()
    await type_into(page, page.get_by_label("Person id"), person_id)
    await type_into(page, page.get_by_label("Console password"), one_time)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")  # submits the form, as in any browser
    await expect(page.get_by_role("heading", name="Choose your console password")).to_be_visible()
    await type_into(page, page.get_by_label("Your current password"), one_time)
    await type_into(page, page.get_by_label("New password", exact=True), f"{person_id} long and private")
    await type_into(page, page.get_by_label("New password again"), f"{person_id} long and private")
    await press_enter_on(page, page.get_by_role("button", name="Save my password"))
    await expect(page.get_by_text("Your password is changed.")).to_be_visible()
    return person_id, page


async def set_up_authenticator(page: Page, stack: ConsoleStack, person_id: str) -> None:
    """On the page that asks for it: type the key shown into the 'app', and its code back."""
    await expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    secret = "".join((await page.locator("#secret").inner_text()).split())
    await page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Put it in use").click()
    await expect(page.get_by_text("Your authenticator is set up")).to_be_visible()
    stack.authenticators[person_id] = secret


async def csrf_token(page: Page) -> str:
    """The session's CSRF token, as the page's own forms carry it."""
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


async def accessible(page: Page) -> None:
    """axe-core finds nothing serious or critical on the page as it is now (each problem named, with where)."""
    from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]  # ships no py.typed

    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in {"serious", "critical"}]
    assert not bad, f"{page.url}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad)
