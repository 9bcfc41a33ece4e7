"""Logging in to the console with a second factor, in Debian's Chromium against a real `reroute up`: a safeguarding
lead (and a data protection officer) sets up an authenticator app at their first log-in (nothing else opens until
they have), then logs in with its
code; without one, or with one already used, they are refused in words that do not say which part was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.console import ConsoleStack, csrf_token, log_in, new_person_logged_in

pytestmark = [pytest.mark.browser]
PASSWORD = "{} long and private"  # what new_person_logged_in chooses


async def test_a_safeguarding_lead_logs_in_with_a_code_from_their_app_and_each_code_once(
        browser: Browser, stack: ConsoleStack) -> None:
    lead, first = await new_person_logged_in(browser, stack, "dsl")  # sets the authenticator up on the way
    await first.get_by_role("button", name="Log out").click()
    await expect(first.get_by_text("You have logged out.")).to_be_visible()

    page = await (await browser.new_context()).new_page()
    await log_in(page, stack, lead, PASSWORD.format(lead))
    await expect(page.get_by_role("alert")).to_contain_text("wrong person id, password or authenticator code")

    code = stack.next_code(lead)
    await log_in(page, stack, lead, PASSWORD.format(lead), code=code, path="/alerts")
    await expect(page.get_by_role("heading", name="Safeguarding alerts", level=1)).to_be_visible()

    again = await (await browser.new_context()).new_page()
    await log_in(again, stack, lead, PASSWORD.format(lead), code=code)
    await expect(again.get_by_role("alert")).to_contain_text("wrong person id, password or authenticator code")


async def _held_at_set_up(browser: Browser, stack: ConsoleStack, role: str, paths: tuple[str, ...]) -> Page:
    """A new person with `role` at their first log-in, password chosen: every one of `paths` shows the set-up page."""
    person = stack.person(role)
    one_time = stack.one_time_password(person)
    page = await (await browser.new_context()).new_page()
    await log_in(page, stack, person, one_time)
    await page.get_by_label("Your current password").fill(one_time)
    await page.get_by_label("New password", exact=True).fill(PASSWORD.format(person))
    await page.get_by_label("New password again").fill(PASSWORD.format(person))
    await page.get_by_role("button", name="Save my password").click()
    await expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    for path in paths:
        await page.goto(stack.url + path)
        await expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    return page


async def test_until_the_authenticator_is_set_up_nothing_else_opens(browser: Browser, stack: ConsoleStack) -> None:
    # the data protection officer sees who looked at which child: the access log is held back the same way
    await (await _held_at_set_up(browser, stack, "dpo", ("/", "/access"))).context.close()
    page = await _held_at_set_up(browser, stack, "dsl", ("/", "/alerts", "/alerts/list"))
    secret = "".join((await page.locator("#secret").inner_text()).split())
    now, totp = datetime.now(UTC), pyotp.TOTP(secret)
    valid = {totp.at(now + timedelta(seconds=s)) for s in (-60, -30, 0, 30, 60)}
    await page.get_by_label("Code from the app").fill(next(c * 6 for c in "0123456" if c * 6 not in valid))
    await page.get_by_role("button", name="Put it in use").click()
    await expect(page.get_by_role("alert")).to_contain_text("Not set up: that is not the code the app shows now")
    posted = await page.request.post(f"{stack.url}/alerts/alert:none:E01:1/ack", form={
        "csrf_token": await csrf_token(page)}, max_redirects=0)
    assert posted.status == 303 and posted.headers["location"] == "/second-factor"


async def test_the_log_in_page_links_the_consoles_icon_and_its_policy_lets_the_browser_load_it(
        browser: Browser, stack: ConsoleStack) -> None:
    """A page that links no icon makes a browser ask for /favicon.ico (a whole 404 page); the one linked loads under
    the page's own Content Security Policy (img-src 'self': a data: icon would not). Headless Chromium fetches no
    icon by itself, so the page loads it as an image."""
    page = await (await browser.new_context()).new_page()
    await page.goto(stack.url + "/login")
    icon = await page.locator('link[rel="icon"]').get_attribute("href", timeout=5000)
    assert icon == "/static/favicon.png"
    width = await page.evaluate("""href => new Promise(done => {
        const image = new Image(); image.onload = () => done(image.naturalWidth); image.onerror = () => done(0);
        image.src = href; })""", icon)
    assert width == 16


async def test_a_log_in_form_whose_page_expired_says_so_and_the_next_try_logs_in(
        browser: Browser, stack: ConsoleStack) -> None:
    """The log-in page's entry is kept nowhere but in its cookie and its form: when it has gone (the page left longer
    than the idle time, or shown before the console restarted), the form is shown again with a fresh one."""
    person = stack.person("scheduler")
    page = await (await browser.new_context()).new_page()
    await page.goto(stack.url + "/login")
    await page.context.clear_cookies()
    await page.get_by_label("Person id").fill(person)
    await page.get_by_label("Console password").fill(stack.one_time_password(person))
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Your log-in page expired; please try again.")
    await expect(page.get_by_label("Person id")).to_have_value(person)

    await log_in(page, stack, person, stack.one_time_password(person))
    await expect(page.get_by_role("heading", name="Choose your console password")).to_be_visible()
