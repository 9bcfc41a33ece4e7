"""The schedulers' pages in Debian's Chromium, against a real `reroute up`: with the keyboard alone, a scheduler logs in,
finds a waitlisted case, reads why (as `reroute waitlist` says it) and its trace, assigns the mentor who fits every rule for a day
the online match does not look at, and the mentor's calendar shows the session; a scheduler is refused a mentor with
the constraint named and sees the case booked as soon as a case holding the mentor's place closes; a scheduler moves
a young person to another mentor, with the reason recorded in their name and the old sessions cancelled; sessions
confirmed from the week calendar, a borough's week, a rotl mentor's licence on each day, leave and what it moved, a
calendar feed issued and revoked; a person without the `scheduler` role is refused every page and every form, by URL
too."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect

from tests.support.cli import cli_rows
from tests.support.cluster import mentor, unique_language
from tests.support.console import (
    ConsoleStack,
    accessible,
    csrf_token,
    new_person_logged_in,
    new_person_logged_in_by_keyboard,
    press_enter_on,
    said,
    tab_to,
    type_date_and_time,
    type_into,
)
from tests.support.console_pages import TRACED, traced
from tests.support.console_scheduling import (
    import_mentors,
    refer,
    rotl_mentor_with_a_session,
    scheduled_with_another_who_fits,
    waiting_at_caseload,
)
from tests.support.local_up import REROUTE, up_env

pytestmark = [pytest.mark.browser]


def status_of(stack: ConsoleStack, referral_id: str) -> str:
    """`reroute status` as the CLI says it (the same contract the page reads)."""
    done = stack.reroute("status", referral_id)
    assert done.returncode == 0, said(done)
    return " ".join(done.stdout.split())


LONDON = ZoneInfo("Europe/London")
AWAY_DAYS = 31
"""Longer than the online match looks ahead for a first session (28 days)."""


@dataclass(frozen=True)
class WaitingForAMentorAway:
    """`referral_id` waits: `mentor_id` is the one mentor who fits it (borough, language, caseload, tier, vetting,
    venue: every hard rule) but is away for the next `AWAY_DAYS` days, so has no free slot in the 28 days the online
    match looks at; `first` is a wall-clock time in London after they are back, when they and the young person are
    free (the mentor every day 08:00-20:00, the young person any time)."""

    referral_id: str
    mentor_id: str
    first: datetime


def waiting_for_a_mentor_away(stack: ConsoleStack) -> WaitingForAMentorAway:
    language = unique_language()
    mentor_id = f"m-away-{uuid.uuid4().hex[:6]}"
    today = datetime.now(LONDON).date()
    away = [{"date": (today + timedelta(days=n)).isoformat(), "windows": []} for n in range(AWAY_DAYS)]
    import_mentors(stack, mentor(mentor_id, language=language, date_overrides=away))
    first = datetime.combine(today + timedelta(days=AWAY_DAYS + 4), time(16, 0))
    return WaitingForAMentorAway(refer(stack, language, "waitlisted"), mentor_id, first)


def waitlist_reason_said_by_cli(stack: ConsoleStack, referral_id: str) -> str:
    """Why the case waits, as `reroute waitlist` prints it (its table's "why" column; wide enough not to wrap)."""
    done = subprocess.run([str(REROUTE), "waitlist", "--data-dir", str(stack.up.data_dir)], env=up_env(COLUMNS="1000"),
                          cwd=stack.home, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, said(done)
    rows = [row for row in cli_rows(done.stdout) if row[0] == referral_id]
    assert len(rows) == 1, done.stdout
    return " ".join(rows[0][3].split())  # referral │ tier │ waiting │ why │ would place them


async def test_a_scheduler_finds_a_waitlisted_case_reads_why_assigns_a_mentor_and_the_calendar_shows_it_by_keyboard(
        browser: Browser, stack: ConsoleStack) -> None:
    """The issue's scenario, with the keyboard alone (the console's address opened once, then Tab, typing and Enter).

    A real state in which a waitlisted case can be placed by hand with a mentor who fits every hard rule: the online
    match (and `recommend`, and an assign without a start) looks for a first session in the next 28 days only; the
    one mentor who fits is away longer, so the case waits ("has no free slot in the next 28 days"). A scheduler may
    still book it with them for a day after they are back: an assign with a start re-checks every hard rule at that
    time, and the 28 days are not one of them. The tier's deadline is missed, which the page says."""
    w = await asyncio.to_thread(waiting_for_a_mentor_away, stack)
    person, page = await new_person_logged_in_by_keyboard(browser, stack, "scheduler")

    await press_enter_on(page, page.get_by_role("navigation", name="Areas").get_by_role("link", name="Waitlist"))
    row = page.locator("#waitlist tbody tr").filter(has_text=w.referral_id)
    # why: its one mentor has no slot the match looks at (other mentors on this stack share no language, or work
    # elsewhere); the console says it as the CLI does, both reading the waitlist contract
    why = row.locator("td").nth(2)
    await expect(why).to_contain_text(re.compile(r"^no mentor fits: .*\b1 has no free slot in the next 28 days"))
    await expect(why).to_have_text(await asyncio.to_thread(waitlist_reason_said_by_cli, stack, w.referral_id))
    await expect(row).not_to_contain_text("Jordan")  # ids only: no child's name in a list
    await accessible(page)

    await press_enter_on(page, row.get_by_role("link", name=w.referral_id))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {w.referral_id}")
    await expect(page.get_by_role("heading", name="Scheduling: waitlisted")).to_be_visible()
    await expect(page.locator("dd").filter(has_text="has no free slot in the next 28 days")).to_be_visible()
    risk = page.locator("section").filter(has=page.get_by_role("heading", name=re.compile(r"^Risk: tier")))
    await expect(risk.get_by_role("heading", name="Needs and focus")).to_be_visible()
    await expect(risk).to_contain_text("Peers & lifestyle: significant")  # peers who offend, unstructured time
    await expect(risk).to_contain_text("Focus: N04")
    await expect(risk).not_to_contain_text("Safeguarding escalations")  # none for these indicators
    await accessible(page)

    # its trace, by the link on its page (the waterfall of this referral only: the traces' lists are operators')
    await traced(stack, w.referral_id)
    trace = page.get_by_role("region", name="Trace")
    await press_enter_on(page, trace.get_by_role("link", name="Its trace across intake, risk and scheduling"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Trace of referral {w.referral_id}")
    for service in TRACED:
        await expect(page.get_by_role("table").first.get_by_role("cell", name=service, exact=True).first).to_be_visible()
    await accessible(page)
    await press_enter_on(page, page.get_by_role("link", name=f"Back to referral {w.referral_id}"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {w.referral_id}")

    await press_enter_on(page, page.get_by_role("link", name="Who could take it, and assign a mentor"))
    await expect(page.get_by_text("No mentor can take this referral now.")).to_be_visible()
    await expect(page.get_by_role("row").filter(has_text=w.mentor_id)).to_contain_text(
        "no free slot in the next 28 days")
    await accessible(page)

    reason = f"The only mentor who fits; back from leave on {w.first:%d %B}, the young person can wait for them"
    await type_into(page, page.get_by_label("Mentor id"), w.mentor_id)
    await type_date_and_time(page, page.get_by_label(re.compile("^First session")), w.first)
    await type_into(page, page.get_by_label("Why this mentor"), reason)
    await press_enter_on(page, page.get_by_role("button", name="Assign this mentor"))

    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {w.referral_id}")
    await expect(page.get_by_role("status")).to_contain_text(f"{w.referral_id} assigned to {w.mentor_id} by {person}")
    await expect(page.get_by_role("heading", name="Scheduling: scheduled")).to_be_visible()
    await expect(page.locator("dd").filter(has_text=f"assigned by {person}: {reason}")).to_be_visible()
    first_row = page.locator("#sessions tbody tr").first
    await expect(first_row).to_contain_text(f"{w.first:%H:%M}")
    session_id = (await first_row.locator("code").inner_text()).strip()
    assert f"Scheduled with {w.mentor_id}" in await asyncio.to_thread(status_of, stack, w.referral_id)
    await accessible(page)

    await press_enter_on(page, page.get_by_role("link", name=f"{w.mentor_id}'s calendar"))
    week = page.get_by_role("table").filter(has_text="sessions, week of")
    booked = week.get_by_role("row").filter(has_text=session_id)
    await expect(booked).to_contain_text(w.referral_id)
    await expect(booked).to_contain_text("booked")
    await expect(booked).to_contain_text(f"{w.first:%a %d %b}")
    await expect(booked).to_contain_text(f"{w.first:%H:%M}–{w.first + timedelta(hours=1):%H:%M}")
    await accessible(page)


async def test_a_scheduler_is_refused_a_mentor_with_the_rule_named_and_sees_the_case_booked_when_a_place_frees(
        browser: Browser, stack: ConsoleStack) -> None:
    w = await asyncio.to_thread(waiting_at_caseload, stack)
    _, page = await new_person_logged_in(browser, stack, "scheduler")

    await press_enter_on(page, page.get_by_role("navigation", name="Areas").get_by_role("link", name="Waitlist"))
    row = page.locator("#waitlist tbody tr").filter(has_text=w.referral_id)
    # why: its own mentor is full (the counts of other mentors depend on what earlier tests registered on this stack)
    await expect(row).to_contain_text(re.compile(r"no mentor fits: .*\b1 at caseload"))
    await expect(row).to_contain_text(f"one more place with {w.mentor_id}")  # what would place it
    await expect(row).not_to_contain_text("Jordan")  # ids only: no child's name in a list
    await accessible(page)

    await press_enter_on(page, row.get_by_role("link", name=w.referral_id))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {w.referral_id}")
    await expect(page.get_by_role("heading", name="Scheduling: waitlisted")).to_be_visible()
    await expect(page.locator("dd").filter(has_text="at caseload")).to_be_visible()
    await expect(page.get_by_role("heading", name="Likelihood: low")).to_be_visible()
    await expect(page.get_by_role("table", name="History of assessments")).to_contain_text("first")
    await accessible(page)

    await press_enter_on(page, page.get_by_role("link", name="Who could take it, and assign a mentor"))
    await expect(page.get_by_role("row").filter(has_text=w.far_mentor_id)).to_contain_text("does not cover Hackney")
    await accessible(page)

    # a mentor who breaks a rule: refused, the constraint named, nothing booked
    await tab_to(page, page.get_by_label("Mentor id"))
    await page.keyboard.type(w.far_mentor_id)
    await tab_to(page, page.get_by_label("Why this mentor"))
    await page.keyboard.type("Knows the family")
    await press_enter_on(page, page.get_by_role("button", name="Assign this mentor"))
    await expect(page.get_by_role("alert")).to_contain_text(
        f"Not assigned: {w.far_mentor_id} cannot take this case: does not cover Hackney")
    await accessible(page)
    assert "Waitlisted" in await asyncio.to_thread(status_of, stack, w.referral_id)

    # the case holding the mentor's one place closes: the waiting case is booked with them, nobody assigning it
    closed = await asyncio.to_thread(stack.reroute, "close", w.taken, "--reason", "moved out of London", "--by", "admin")
    assert closed.returncode == 0, said(closed)
    await press_enter_on(page, page.get_by_role("link", name="Back to the referral"))
    await expect(page.get_by_role("heading", name="Scheduling: scheduled")).to_be_visible()
    session_id = (await page.locator("#sessions tbody tr code").first.inner_text()).strip()
    assert f"Scheduled with {w.mentor_id}" in await asyncio.to_thread(status_of, stack, w.referral_id)

    await press_enter_on(page, page.get_by_role("link", name=f"{w.mentor_id}'s calendar"))
    week = page.get_by_role("table").filter(has_text="sessions, week of")
    booked = week.get_by_role("row").filter(has_text=session_id)
    await expect(booked).to_contain_text(w.referral_id)
    await expect(booked).to_contain_text("booked")
    await accessible(page)
    await press_enter_on(page, page.get_by_role("navigation", name="Areas").get_by_role("link", name="Waitlist"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Waitlist")
    await expect(page.get_by_role("main")).not_to_contain_text(w.referral_id)


async def test_a_scheduler_moves_a_young_person_to_another_mentor_with_a_reason_and_the_old_sessions_are_cancelled(
        browser: Browser, stack: ConsoleStack) -> None:
    booked, other, referral_id = await asyncio.to_thread(scheduled_with_another_who_fits, stack)
    person, page = await new_person_logged_in(browser, stack, "scheduler", path=f"/referrals/{referral_id}")
    await expect(page.get_by_role("link", name=f"{booked}'s calendar")).to_be_visible()

    await press_enter_on(page, page.get_by_role("link", name="Who could take it, and assign a mentor"))
    await expect(page.get_by_text(f"now with Mentor {booked} ({booked})")).to_be_visible()
    option = page.get_by_role("article").filter(has=page.get_by_role("heading", name=re.compile(re.escape(other))))
    await tab_to(page, option.get_by_label(f"Why {other}"))
    await page.keyboard.type("Knows the family from the youth club")
    await press_enter_on(page, option.get_by_role("button", name=f"Assign {other}"))

    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {referral_id}")
    await expect(page.get_by_role("status")).to_contain_text(f"{referral_id} assigned to {other} by {person}")
    await expect(page.get_by_role("link", name=f"{other}'s calendar")).to_be_visible()
    await expect(page.locator("dd").filter(has_text=f"assigned by {person}: Knows the family from the youth club")
                 ).to_be_visible()
    history = page.locator("#history tbody tr")
    await expect(history.filter(has_text=booked).first).to_contain_text("cancelled")
    await expect(history.filter(has_text=booked).filter(has_not_text="cancelled")).to_have_count(0)
    await expect(history.filter(has_text=other).first).to_contain_text("booked")
    await accessible(page)
    assert f"Scheduled with {other}" in await asyncio.to_thread(status_of, stack, referral_id)
    first = (await page.locator("#sessions tbody tr code").first.inner_text()).strip()

    await press_enter_on(page, page.get_by_role("link", name=f"{other}'s calendar"))  # the session, on their week
    moved = page.get_by_role("table").filter(has_text="sessions, week of").get_by_role("row").filter(has_text=first)
    await expect(moved).to_contain_text(referral_id)
    await expect(moved).to_contain_text("booked")


async def test_a_week_calendar_records_sessions_shows_a_licence_moves_sessions_for_leave_and_issues_a_feed(
        browser: Browser, stack: ConsoleStack) -> None:
    rotl, rid = await asyncio.to_thread(rotl_mentor_with_a_session, stack)
    _, page = await new_person_logged_in(browser, stack, "scheduler", path=f"/referrals/{rid}")
    first_day = (await page.locator("#sessions tbody tr td").first.inner_text()).strip()
    await page.get_by_role("link", name=f"{rotl}'s calendar").click()

    week = page.locator("#week")
    await expect(week).to_contain_text("licence: from 10:00, back by 17:00")  # the licence drawn on each day
    row = week.get_by_role("row").filter(has_text=rid).first
    await row.get_by_label("What happened to session").select_option("confirm")
    await row.get_by_role("button", name="Record").click()
    await expect(page.get_by_role("status")).to_contain_text(f"(referral {rid}) is now confirmed")
    await expect(week.get_by_role("row").filter(has_text="confirmed").first).to_contain_text(rid)
    await accessible(page)

    monday = page.url.split("week=")[1]
    await page.goto(f"{stack.url}/calendar/boroughs/Lewisham?week={monday}")
    await expect(page.locator("#week").get_by_role("row").filter(has_text=rid).first).to_contain_text(rotl)
    rooms = page.get_by_role("table", name=re.compile("Rooms taken at each venue in Lewisham"))
    await expect(rooms.get_by_role("row").filter(has_text="Lewisham office (office-lewisham): 50 rooms")
                 ).to_contain_text(re.compile(r"\b[1-9]\d* of 50 rooms at \d\d:\d\d"))  # no venue registered there
    await page.get_by_role("link", name="Next week").click()
    await expect(page.get_by_role("heading", level=1)).not_to_contain_text(date.fromisoformat(monday).strftime("%d %b"))

    await page.goto(f"{stack.url}/calendar/mentors/{rotl}?week={monday}")
    await page.get_by_role("button", name="Issue a new feed link").click()  # refused, saying why
    await expect(page.get_by_role("status")).to_contain_text(
        f"Feed of {rotl} not issued: mentors on temporary licence get no calendar feed")
    staff = f"m-staff-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(import_mentors, stack, mentor(staff, language=unique_language()))
    await page.goto(f"{stack.url}/calendar/mentors/{staff}")
    await page.get_by_role("button", name="Issue a new feed link").click()
    await expect(page.get_by_role("status")).to_contain_text(f"New calendar feed for {staff}")
    await expect(page.get_by_role("status")).to_contain_text("/v1/calendars/")
    await page.get_by_role("button", name="Revoke the feed link").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Revoked 1 feed link of {staff}")

    await page.goto(f"{stack.url}/calendar/mentors/{rotl}?week={monday}")

    day = date.fromisoformat(monday)
    sessions_day = next(d for d in (day.fromordinal(day.toordinal() + i) for i in range(7))
                        if d.strftime("%a %d %b") == first_day[:10])
    await page.get_by_label("First day of leave").fill(sessions_day.isoformat())
    await page.get_by_label("Last day of leave").fill(sessions_day.isoformat())
    await page.get_by_role("button", name=f"Record leave for {rotl}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Leave recorded for Mentor {rotl} ({rotl})")
    await expect(page.get_by_role("status")).to_contain_text("across 1 young person")
    await expect(page.get_by_role("table")).to_contain_text(rid)
    await accessible(page)
    await page.get_by_role("link", name=f"Mentor {rotl}'s week").click()
    await expect(page.locator("#week th").filter(has_text=first_day[:10])).to_contain_text(
        "on leave")  # the leave drawn on its day
    await page.goto(f"{stack.url}/referrals/{rid}")
    lifecycle = page.get_by_role("table", name="Every session and what became of it")
    await expect(lifecycle).to_contain_text(rotl)
    await expect(lifecycle).to_contain_text(re.compile("confirmed|cancelled"))  # as the leave left it


async def test_bad_addresses_say_what_is_wrong(browser: Browser, stack: ConsoleStack) -> None:
    _, page = await new_person_logged_in(browser, stack, "scheduler")
    for path, words in (("/referrals/not-a-referral", "That is not a referral id"),
                        ("/referrals/ref_0000000000000000", "No referral ref_0000000000000000"),
                        ("/referrals?q=NO-SUCH-REF", "No referral found for “NO-SUCH-REF”"),
                        ("/calendar/mentors/nobody-at-all", "No calendar for nobody-at-all: no mentor"),
                        ("/calendar/boroughs/Atlantis", "“Atlantis” is not a London borough")):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 404, path
        await expect(page.get_by_role("alert")).to_contain_text(words)
    await accessible(page)


async def test_without_the_scheduler_role_every_page_and_form_is_refused_by_url_too(browser: Browser,
                                                                                  stack: ConsoleStack) -> None:
    w = await asyncio.to_thread(waiting_at_caseload, stack)
    lead, page = await new_person_logged_in(browser, stack, "dsl", "risk_lead")
    for name in ("Waitlist", "Referrals", "Calendar"):
        await expect(page.get_by_role("link", name=name)).to_have_count(0)
    for path in ("/waitlist", "/referrals", f"/referrals/{w.referral_id}", f"/referrals/{w.referral_id}/recommend",
                 "/calendar", f"/calendar/mentors/{w.mentor_id}", "/calendar/boroughs/Hackney"):
        response = await page.goto(stack.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("heading", name="This page is not for your roles")).to_be_visible()
    await accessible(page)
    token = await csrf_token(page)
    for path, form in ((f"/referrals/{w.referral_id}/assign", {"mentor_id": w.mentor_id, "reason": "not mine"}),
                       (f"/calendar/mentors/{w.mentor_id}/leave", {"first_day": "2030-01-01", "last_day": "2030-01-02"}),
                       (f"/calendar/mentors/{w.mentor_id}/feed", {"do": "issue"}),
                       ("/calendar/sessions/ses_0000000000000000", {"action": "cancel"})):
        posted = await page.request.post(stack.url + path, form={"csrf_token": token, **form}, max_redirects=0)
        assert posted.status == 403, path
    assert "Waitlisted" in await asyncio.to_thread(status_of, stack, w.referral_id), f"{lead} assigned nobody"
