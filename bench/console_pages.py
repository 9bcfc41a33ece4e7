"""`make bench-console`: how fast the web console serves its main pages (issue 14: "fast on a modest laptop").

    .venv/bin/python -m bench.console_pages                   # 500 mentors, 300 referrals, 20 requests a page
    .venv/bin/python -m bench.console_pages --requests 50

Starts `reroute up` with its console on a fresh data dir, as the console's tests do (tests/support/console.py),
registers bench/workload.py's London registry (mentors, venues with rooms, leave) and pushes referrals through it
with `reroute submit`'s own code, so that calendars, the waitlist, alerts and traces have content (and keeps one dead
letter as scheduling's consumer keeps one, as the console's tests do, so that list is not empty). Then people with the
roles each page needs (scheduler, risk lead, safeguarding lead, operator) log in over HTTP as a browser would: the
log-in form's CSRF token, their one-time password changed for their own, an authenticator set up where the role
needs a second factor, and a fresh log-in with password (and code). Each page is requested once untimed (a warm-up
that must answer 200), then --requests times one after another: the time to the whole HTML body (p50, p95, max),
the body's size, and the CPU time per request of the console and of each service meanwhile (from /proc: what a page
waits on shows as the service that worked). The console's resident set is read at the end.

Prints a table (Markdown, as docs/performance.md records it); exits non-zero only when a page failed, never on a
time. Run on demand, not in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pyotp

from apps.cli.client import CliError, NoAnswer, ServiceClient, connect
from apps.cli.referral_files import ReferralRow
from apps.cli.submit import Outcome, submit
from apps.devstack.processes import CONSOLE, SERVICES
from bench.peak_rss import children, command, mebibytes, status
from bench.stack import cpu_seconds
from bench.workload import AGENCY, Registry, referrals, registry
from services.scheduling.slots import LONDON
from shared.contracts import scheduling_rpc as sched
from shared.contracts.intake_rpc import SECOND_FACTOR_ROLES
from shared.contracts.rpc import Endpoint, Rep, Req
from shared.settings import ServiceSettings
from tests.support.console import ConsoleStack
from tests.support.console_pages import traced
from tests.support.operations import kept_dead_letter

ROLES = ("scheduler", "risk_lead", "dsl", "operator")
ATTEMPTS = 10
"""Submissions of the same referrals before giving up (`reroute submit`'s polls wait 5 s for each answer)."""
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Content:
    """What the pages are opened on: cases of the registry just filled."""

    scheduled: str  # a referral placed with a mentor
    waiting: str  # a referral on the waitlist
    risky: str  # a referral assessed very high (alerts, escalations)
    mentor_id: str  # the mentor with the most new cases
    borough: str  # the borough with the most placed referrals
    week: date  # the week of most first sessions


@dataclass(frozen=True)
class Page:
    name: str
    role: str
    path: Callable[[Content], str]


PAGES = (
    Page("waitlist", "scheduler", lambda c: "/waitlist"),
    Page("a referral", "scheduler", lambda c: f"/referrals/{c.scheduled}"),
    Page("recommend", "scheduler", lambda c: f"/referrals/{c.waiting}/recommend"),
    Page("a mentor's week", "scheduler", lambda c: f"/calendar/mentors/{c.mentor_id}?week={c.week}"),
    Page("a borough's week", "scheduler", lambda c: f"/calendar/boroughs/{c.borough}?week={c.week}"),
    Page("risk reviews", "risk_lead", lambda c: "/risk?within=365"),
    Page("a risk case", "risk_lead", lambda c: f"/risk/referral?referral_id={c.risky}"),
    Page("alerts", "dsl", lambda c: "/alerts"),
    Page("operations overview", "operator", lambda c: "/operations"),
    Page("dead letters", "operator", lambda c: "/operations/dead-letters"),
    Page("traces", "operator", lambda c: "/traces"),
    Page("a referral's trace", "operator", lambda c: f"/traces/referral?referral_id={c.scheduled}"),
)


@dataclass(frozen=True)
class Row:
    """One page's figures."""

    page: Page
    path: str
    ms: list[float]  # each timed request, to the whole body
    body_bytes: int
    console_cpu_ms: float  # per request
    services_cpu_ms: dict[str, float]  # per request, each service

    def cells(self) -> list[str]:
        ordered = sorted(self.ms)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank
        return [self.page.name, self.page.role, f"{statistics.median(ordered):.1f}", f"{p95:.1f}", f"{ordered[-1]:.1f}",
                f"{self.body_bytes / 1024:.1f}", f"{self.console_cpu_ms:.1f}",
                *(f"{self.services_cpu_ms[s]:.1f}" for s in SERVICES)]


HEADER = ["page", "as", "p50 ms", "p95 ms", "max ms", "body KiB", "console CPU ms/req",
          *(f"{s} CPU ms/req" for s in SERVICES)]


def table(rows: list[Row]) -> str:
    lines = [HEADER, ["---"] * 2 + ["---:"] * (len(HEADER) - 2), *(r.cells() for r in rows)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def processes(up_pid: int) -> dict[str, int]:
    """The console's and each service's pid among the children of `reroute up`."""
    found = {}
    for pid in children(up_pid):
        for name in (CONSOLE, *SERVICES):
            if f" -m apps.{name}" in command(pid) or f" -m services.{name}" in command(pid):
                found[name] = pid
    missing = {CONSOLE, *SERVICES} - set(found)
    if missing:
        raise RuntimeError(f"reroute up (pid {up_pid}) runs no {', '.join(sorted(missing))}")
    return found


# --- content -------------------------------------------------------------------------------------------------------


async def fill(stack: ConsoleStack, reg: Registry, bodies: list[bytes]) -> Content:
    """The registry registered and every referral submitted, through the CLI's own calls as the stack's first admin;
    what the pages are opened on, from the outcomes."""
    stack.up.register_agency(AGENCY)
    settings = ServiceSettings(data_dir=stack.up.data_dir, NATS_URL=None, namespace="")  # type: ignore[call-arg]
    async with connect(settings) as client:
        for problems in ((await _imported(client, sched.VENUES_IMPORT, sched.VenuesImportRequest.model_validate(
                              {"venues": reg.venues}))).errors,
                         (await _imported(client, sched.MENTORS_IMPORT, sched.MentorsImportRequest.model_validate(
                              {"mentors": reg.mentors}))).errors):
            if problems:
                raise RuntimeError(f"the registry was refused: {problems[:3]}")
        for leave in reg.leave:
            await client.call(sched.LEAVE, sched.LeaveRequest.model_validate(leave), timeout=30)
        rows = [ReferralRow(i + 1, body) for i, body in enumerate(bodies)]
        for attempt in range(1, ATTEMPTS + 1):
            try:
                outcomes = await submit(client, rows, AGENCY, timeout=600)
                break
            except CliError as exc:  # a status asked while scheduling works through the flood: sent again, each
                if attempt == ATTEMPTS:  # comes back a duplicate with where it is now
                    raise
                print(f"  {exc} Asking again ({attempt} of {ATTEMPTS - 1}).")
    return content(outcomes, bodies)


async def _imported(client: ServiceClient, endpoint: Endpoint[Req, Rep], request: Req) -> Rep:
    """An import, asked again when no answer came: the agency just registered reloads the NATS server, which can
    lose a request sent meanwhile (seen once in CI: no answer in 120 s), and an import done twice changes nothing."""
    for attempt in range(1, ATTEMPTS):
        try:
            return await client.call(endpoint, request, timeout=30)
        except NoAnswer as exc:
            print(f"  {exc} Asking again ({attempt} of {ATTEMPTS - 1}).")
    return await client.call(endpoint, request, timeout=30)


def content(outcomes: list[Outcome], bodies: list[bytes]) -> Content:
    unfinished = [o for o in outcomes if o.rejected or o.status not in {"scheduled", "waitlisted"}]
    if unfinished:
        raise RuntimeError(f"{len(unfinished)} of {len(outcomes)} referrals not scheduled or waitlisted, e.g. "
                           f"{unfinished[0]}")
    placed = [o for o in outcomes if o.status == "scheduled" and o.mentor_id and o.first_session]
    waiting = [o for o in outcomes if o.status == "waitlisted"]
    risky = [o for o in outcomes if o.tier == "very_high"] or outcomes
    if not placed or not waiting:
        raise RuntimeError(f"{len(placed)} placed and {len(waiting)} waiting: the pages need one of each "
                           "(more referrals, or another --seed)")
    boroughs = {o.referral_id: json.loads(bodies[o.row - 1])["young_person"]["borough"] for o in placed}
    weeks = Counter(_monday(o) for o in placed)
    return Content(scheduled=str(placed[0].referral_id), waiting=str(waiting[0].referral_id),
                   risky=str(risky[0].referral_id), mentor_id=Counter(str(o.mentor_id) for o in placed).most_common(1)[0][0],
                   borough=Counter(boroughs.values()).most_common(1)[0][0], week=weeks.most_common(1)[0][0])


def _monday(o: Outcome) -> date:
    assert o.first_session is not None
    day = o.first_session.astimezone(LONDON).date()
    return day - timedelta(days=day.weekday())


# --- people --------------------------------------------------------------------------------------------------------


def _csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    if page.status_code != 200 or found is None:
        raise RuntimeError(f"{page.request.url.path} answered {page.status_code} without a form: {page.text[:200]}")
    return found[1]


def _went(answer: httpx.Response, where: str) -> None:
    if answer.status_code != 303 or not (answer.headers.get("location") or "").startswith(where):
        raise RuntimeError(f"{answer.request.method} {answer.request.url.path} answered {answer.status_code} "
                           f"(to {answer.headers.get('location')}), not 303 to {where}: {answer.text[:300]}")


async def log_in(http: httpx.AsyncClient, stack: ConsoleStack, person_id: str, password: str) -> None:
    """Log in on the log-in form, with a code from the person's authenticator where their role needs one."""
    http.cookies.clear()
    form = await http.get("/login")
    code = stack.next_code(person_id) if person_id in stack.authenticators else ""
    _went(await http.post("/login", data={"csrf_token": _csrf(form), "person_id": person_id, "password": password,
                                          "code": code, "next": "/"}), "/")


async def person_logged_in(http: httpx.AsyncClient, stack: ConsoleStack, role: str) -> str:
    """A new person with `role`: their first log-in (the one-time password changed, an authenticator set up where the
    role needs one), then a log-in as on any later day, in `http`'s cookies. Their id."""
    person_id = await asyncio.to_thread(stack.person, role)
    one_time = await asyncio.to_thread(stack.one_time_password, person_id)
    own = f"{person_id} long and private"
    form = await http.get("/login")
    _went(await http.post("/login", data={"csrf_token": _csrf(form), "person_id": person_id, "password": one_time,
                                          "next": "/"}), "/password")
    form = await http.get("/password")
    second = role in SECOND_FACTOR_ROLES
    _went(await http.post("/password", data={"csrf_token": _csrf(form), "current": one_time, "new": own,
                                             "repeated": own}), "/second-factor" if second else "/")
    if second:
        form = await http.get("/second-factor")
        found = re.search(r'<code id="secret">([^<]+)</code>', form.text)
        if found is None:
            raise RuntimeError(f"no authenticator key on /second-factor: {form.text[:300]}")
        secret = "".join(found[1].split())
        _went(await http.post("/second-factor", data={"csrf_token": _csrf(form), "code": pyotp.TOTP(secret).now()}),
              "/")
        stack.authenticators[person_id] = secret
    await log_in(http, stack, person_id, own)
    return person_id


# --- timing --------------------------------------------------------------------------------------------------------


async def measure(http: httpx.AsyncClient, page: Page, path: str, pids: dict[str, int], n: int) -> Row:
    """One untimed request (it must answer 200), then `n` timed, one after another."""
    warm = await http.get(path)
    if warm.status_code != 200:
        raise RuntimeError(f"{page.name} ({path}) answered {warm.status_code}: {warm.text[:300]}")
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    times, size = [], 0
    for _ in range(n):
        start = time.perf_counter()
        answer = await http.get(path)  # returns once the whole body is read
        times.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{page.name} ({path}) answered {answer.status_code}: {answer.text[:300]}")
        size = len(answer.content)
    cpu = {name: (cpu_seconds(pid) - before[name]) * 1000 / n for name, pid in pids.items()}
    return Row(page, path, times, size, cpu.pop(CONSOLE), cpu)


async def run(args: argparse.Namespace, root: Path) -> tuple[list[Row], list[str], str]:
    reg = registry(args.mentors, args.seed)
    bodies = referrals(args.referrals, args.seed)
    stack = await ConsoleStack.launch(root)
    try:
        started = time.perf_counter()
        print(f"reroute up with its console at {stack.url}; registering {len(reg.mentors)} mentors, "
              f"{len(reg.venues)} venues, {len(reg.leave)} on leave; submitting {len(bodies)} referrals")
        shown = await fill(stack, reg, bodies)
        await asyncio.to_thread(kept_dead_letter, stack)
        await traced(stack, shown.scheduled)
        print(f"  filled in {time.perf_counter() - started:.0f} s; pages opened on {shown}")
        pids = processes(stack.up.proc.pid)
        rows, errors = [], []
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as first:
            clients = {ROLES[0]: first}
            try:
                for role in ROLES[1:]:
                    clients[role] = httpx.AsyncClient(base_url=stack.url, timeout=60)
                for role, http in clients.items():
                    await person_logged_in(http, stack, role)
                print(f"  logged in as {', '.join(ROLES)}; {args.requests} requests a page")
                for page in PAGES:
                    path = page.path(shown)
                    try:
                        rows.append(await measure(clients[page.role], page, path, pids, args.requests))
                        print(f"  {page.name}: p50 {statistics.median(rows[-1].ms):.1f} ms")
                    except (RuntimeError, httpx.HTTPError) as exc:
                        errors.append(f"{page.name}: {exc}")
                        print(f"  {page.name}: FAILED {exc}")
            finally:
                for role in ROLES[1:]:
                    if role in clients:
                        await clients[role].aclose()
        fields = status(pids[CONSOLE])
        return rows, errors, (f"console RSS at the end {mebibytes(fields['VmRSS']):.0f} MiB (peak "
                              f"{mebibytes(fields['VmHWM']):.0f} MiB)")
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="timed requests of each page (default 20)")
    parser.add_argument("--mentors", type=int, default=500, help="mentors in the registry (default 500)")
    parser.add_argument("--referrals", type=int, default=300, help="referrals pushed through first (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.mentors < 1 or args.referrals < 1:
        parser.error("--requests, --mentors and --referrals must be 1 or more")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it happens
    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
    print(f"{args.mentors} mentors, {args.referrals} referrals, {args.requests} requests a page; {database}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} (/proc/loadavg: {_loadavg()})")
    with tempfile.TemporaryDirectory(prefix="reroute-bench-console-") as tmp:
        rows, errors, rss = asyncio.run(run(args, Path(tmp)))
    print(f"load at the end {os.getloadavg()[0]:.2f} (/proc/loadavg: {_loadavg()})\n")
    print(table(rows))
    print(f"\n{rss}")
    if errors:
        print("\n" + "\n".join(f"error: {e}" for e in errors), file=sys.stderr)
        raise SystemExit(1)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
