"""`reroute up --demo` explains itself: each sample referral's tier with its strongest reasons, the safeguarding
alerts it raised (actions and deadlines), its booking (and why a deadline was missed) or what would place it, mentors'
names beside their ids, and the next commands to try.

Every word about a referral comes from what the services answered or published about it (risk's assessment, the
`safeguarding.alert` events, scheduling's status, waitlist and mentor list), never from the sample files, so it stays
true whatever the sample holds. Each part is shown only when the CLI's person may ask for it (`Endpoint.roles`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import nats.errors
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from apps.cli.client import ServiceClient, connect, write_private
from apps.cli.submit import Outcome
from shared.contracts import intake_rpc, risk_rpc
from shared.contracts import scheduling_rpc as sched
from shared.contracts.risk import Reason, RiskAssessed, SafeguardingAlert
from shared.contracts.rpc import Empty, Endpoint, ErrorCode, Role, ServiceError
from shared.contracts.scheduling import CaseStatus
from shared.settings import ServiceSettings

LONDON = ZoneInfo("Europe/London")
TOP_REASONS = 3
ALERTS_WAIT_SECONDS = 10.0  # risk publishes an alert before its assessment, so it is normally here already
Rep = TypeVar("Rep", bound=BaseModel)


def _safe(value: object) -> str:
    from apps.cli.main import safe  # one definition of what may reach the terminal

    return safe(value)


def _when(moment: datetime) -> str:
    return moment.astimezone(LONDON).strftime("%a %d %b %H:%M")


class AlertFeed:
    """The safeguarding alerts raised about one agency's referrals, as they arrive."""

    def __init__(self) -> None:
        self.by_referral: dict[str, list[SafeguardingAlert]] = {}
        self.unreadable: str | None = None  # why the alerts could not be read, when they could not
        self._ids: set[str] = set()
        self._arrived = asyncio.Event()

    async def take(self, msg: Msg) -> None:
        try:
            alert = SafeguardingAlert.model_validate_json(msg.data)
        except ValidationError:
            return  # not one of ours to explain; `reroute deadletter` is where broken events are dealt with
        if alert.event_id not in self._ids:
            self._ids.add(alert.event_id)
            self.by_referral.setdefault(alert.referral_id, []).append(alert)
            self._arrived.set()

    async def until_raised(self, expected: dict[str, set[str]], *, timeout: float) -> None:
        """Wait until each referral's expected escalations (rule ids) have arrived as alerts, or the time is up."""
        deadline = time.monotonic() + timeout
        while self.unreadable is None and time.monotonic() < deadline:
            if all(rules <= {a.rule_id for a in self.by_referral.get(r, [])} for r, rules in expected.items()):
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return


@asynccontextmanager
async def safeguarding_alerts(settings: ServiceSettings, agency: str) -> AsyncIterator[AlertFeed]:
    """Read the agency's `safeguarding.alert` events while the demo submits, from the stream that keeps them, so a
    re-run (whose referrals come back as duplicates and raise nothing new) still finds those their first submission
    raised. As the installation's operator account, as `reroute up` itself runs: a person's NATS user reads only the
    replies to their own requests. An alert holds ids, rule, actions and a deadline: nothing about the person."""
    feed = AlertFeed()
    async with connect(settings, as_operator=True) as operator:
        sub = None
        try:
            sub = await operator.nc.jetstream().subscribe(operator.subjects.alert(agency), ordered_consumer=True,
                                                          stream=operator.subjects.safeguarding_stream, cb=feed.take)
        except (nats.errors.Error, TimeoutError) as exc:  # NATS_URL's user may not read the stream
            feed.unreadable = f"{type(exc).__name__}: {exc}".rstrip(": ")
        try:
            yield feed
        finally:
            if sub is not None:
                await sub.unsubscribe()


def may(client: ServiceClient, endpoint: Endpoint[Any, Any]) -> bool:
    """Whether the CLI's person may ask it (with no person, on a server without users, anything may be asked)."""
    return client.person is None or bool(set(client.person.roles) & endpoint.roles)


def _is_dsl(client: ServiceClient) -> bool:
    """Safeguarding alerts go to the designated safeguarding lead."""
    return client.person is None or Role.DSL in client.person.roles


async def _found(client: ServiceClient, endpoint: Endpoint[Any, Rep], request: BaseModel) -> Rep | None:
    """The reply; None when the person may not ask it or the service has no such thing (yet)."""
    if not may(client, endpoint):
        return None
    try:
        return await client.call(endpoint, request)
    except ServiceError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return None
        raise


async def mentor_names(client: ServiceClient) -> dict[str, str]:
    """Each registered mentor's name by id (empty when the person may not list mentors)."""
    listed = await _found(client, sched.MENTORS, Empty())
    return {m.id: m.name for m in listed.mentors} if listed else {}


def named(mentor_id: str | None, names: dict[str, str]) -> str:
    """A mentor as a person knows them: the name beside the id (escaped)."""
    if not mentor_id:
        return "-"
    return f"{_safe(names[mentor_id])} ({_safe(mentor_id)})" if mentor_id in names else _safe(mentor_id)


def with_names(text: str, names: dict[str, str]) -> str:
    """`text` (escaped) with each mentor id in it shown with its name beside it."""
    if not names:
        return _safe(text)
    ids = re.compile("|".join(rf"(?<![\w-]){re.escape(i)}(?![\w-])" for i in sorted(names, key=len, reverse=True)))
    shown, at = [], 0
    for m in ids.finditer(text):
        shown += [_safe(text[at:m.start()]), named(m.group(), names)]
        at = m.end()
    return "".join([*shown, _safe(text[at:])])


@dataclass
class Case:
    """What the services said about one accepted referral."""

    outcome: Outcome
    referral_id: str
    received_at: datetime | None = None
    assessment: RiskAssessed | None = None
    status: sched.SchedulingStatus | None = None
    waiting: sched.WaitingReferral | None = None
    alerts: list[SafeguardingAlert] = field(default_factory=list)


async def _gather(client: ServiceClient, outcomes: list[Outcome]) -> list[Case]:
    cases = []
    for o in outcomes:
        if o.referral_id is None:
            continue
        asked = sched.ReferralRequest(referral_id=o.referral_id)
        intake = await _found(client, intake_rpc.STATUS, intake_rpc.StatusRequest(referral_id=o.referral_id))
        risk = await _found(client, risk_rpc.ASSESSMENT, risk_rpc.AssessmentRequest(referral_id=o.referral_id))
        cases.append(Case(o, o.referral_id, intake.received_at if intake else None,
                          risk.assessment if risk else None, await _found(client, sched.STATUS, asked)))
    waitlist = await _found(client, sched.WAITLIST, Empty())
    waiting = {w.referral_id: w for w in waitlist.waiting} if waitlist else {}
    for case in cases:
        case.waiting = waiting.get(case.referral_id)
    return cases


def top_reasons(a: RiskAssessed) -> list[Reason]:
    """The strongest reasons: those of the axes that set the tier first, most points first (harm ranks its rules
    rather than adding points, so its reasons come in the order risk gave them)."""
    axes = [("likelihood", a.likelihood), ("harm", a.harm), ("wellbeing", a.wellbeing)]
    deciding = [name for name, ax in axes if ax.tier == a.tier]
    ranked: list[Reason] = []
    for name, ax in sorted(axes, key=lambda pair: pair[0] not in deciding):
        ranked += sorted((r for r in ax.reasons if r.points >= 0), key=lambda r: -r.points)
    return ranked[:TOP_REASONS]


def _tier_line(case: Case) -> str:
    o, a = case.outcome, case.assessment
    head = f"[bold]{_safe(case.referral_id)}[/bold] ({_safe(o.agency_referral_id or '?')})"
    if a is None:
        return f"{head}: not assessed yet"
    axes = {"likelihood": a.likelihood, "harm": a.harm, "wellbeing": a.wellbeing}
    deciding = [n for n, ax in axes.items() if ax.tier == a.tier]
    others = [f"{n} {_safe(ax.tier)}" for n, ax in axes.items() if ax.tier != a.tier]
    why = ("on all three axes" if len(deciding) == len(axes) else f"from {' and '.join(deciding)}" if deciding
           else "set by a practitioner")
    line = f"{head}: tier [bold]{_safe(a.tier)}[/bold], {why}" + (f" ({', '.join(others)})" if others else "")
    if a.override is not None:
        line += f"; a practitioner's decision ({_safe(a.override.kind)}): {_safe(a.override.reason)}"
    return line


def _alert_lines(case: Case, *, feed: AlertFeed, dsl: bool) -> list[str]:
    a = case.assessment
    if a is None or not a.escalations:
        return []
    said = {r.rule_id: r.explanation for r in a.reasons if r.axis == "escalation"}
    lines = []
    alerts = {alert.rule_id: alert for alert in case.alerts}
    for rule in [*a.escalations, *(r for r in alerts if r not in a.escalations)]:
        lines.append(f"  [red]⚠ safeguarding {_safe(rule)}[/red]" + (f": {_safe(said[rule])}" if rule in said else ""))
        alert = alerts.get(rule)
        if not dsl:
            lines.append("      its actions and deadline are for the safeguarding lead (role dsl)")
        elif alert is not None:
            actions = ", ".join(_safe(x.replace("_", " ")) for x in alert.actions)
            lines.append(f"      [red]actions: {actions}; by {_when(alert.deadline)}[/red]")
        else:
            lines.append(f"      [yellow]its alert was not read ({_safe(feed.unreadable or 'not on the stream')})"
                         "[/yellow]")
    return lines


def _days(first: datetime, last: datetime) -> str | None:
    """The weekdays from `first` to `last` (Europe/London), named while they are fewer than a week."""
    start, end = first.astimezone(LONDON).date(), last.astimezone(LONDON).date()
    span = (end - start).days
    if span < 0 or span >= 6:
        return None
    names = [f"{start + timedelta(days=i):%A}" for i in range(span + 1)]
    return names[0] if span == 0 else " and ".join(names) if span == 1 else f"{names[0]} to {names[-1]}"


def _booking_lines(case: Case, names: dict[str, str]) -> list[str]:
    s = case.status
    if s is None:
        return ["  scheduling has not placed it yet"]
    if s.status == CaseStatus.WAITLISTED:
        lines = [f"  [yellow]⏸ waits for a mentor[/yellow]: {with_names(s.reason or 'no reason given', names)}"]
        if case.waiting is not None:
            lines.append(f"      would place them: {with_names(case.waiting.would_place, names)}")
        return lines
    if s.status != CaseStatus.SCHEDULED or not s.sessions:
        return [f"  {_safe(s.status)}: {with_names(s.reason or 'no reason given', names)}"]
    first = s.sessions[0].start
    booked = f"with {named(s.mentor_id, names)}: {len(s.sessions)} sessions, first {_when(first)}"
    due = f"due by {_when(s.first_session_due)}" if s.first_session_due else "the tier's deadline"
    if s.deadline_met is not False:
        return [f"  [green]✓ booked[/green] {booked}, in time ({due})"]
    lines = [f"  [yellow]! booked after the deadline[/yellow] {booked}"]
    received = f" (received {_when(case.received_at)})" if case.received_at else ""
    if s.reason:  # moved, assigned or placed by a round since: that is why it is where it is
        lines.append(f"      first session {due}{received}; since then: {with_names(s.reason, names)}")
        return lines
    days = _days(case.received_at, s.first_session_due) if case.received_at and s.first_session_due else None
    lines.append(f"      first session {due}{received}. " + (f"{days}: " if days else "")
                 + f"no suitable mentor had a free slot the young person could make before then; the earliest, "
                 f"{_when(first)}, is booked")
    return lines


def _next_commands(cases: list[Case], names: dict[str, str], client: ServiceClient, command: str) -> Table:
    def first(wanted: Iterable[Case]) -> Case | None:
        return next(iter(wanted), None)

    scheduled = [c for c in cases if c.status and c.status.status == CaseStatus.SCHEDULED and c.status.mentor_id]
    waiting = first(c for c in cases if c.status and c.status.status == CaseStatus.WAITLISTED)
    escalated = first(sorted((c for c in cases if c.assessment and c.assessment.escalations),
                             key=lambda c: -len(c.assessment.escalations if c.assessment else [])))
    any_case = first(cases)
    tried: list[tuple[Endpoint[Any, Any] | None, str, str]] = []
    if explained := escalated or any_case:
        rid = _safe(explained.referral_id)
        tried += [(risk_rpc.ASSESSMENT, f"assessment {rid}", "every reason behind its tier, and its history"),
                  (sched.STATUS, f"status {rid}", "where it stands in each service")]
    if scheduled:
        mentor = scheduled[0].status.mentor_id if scheduled[0].status else None
        week = f"the sessions of {named(mentor, names)}, week by week"
        tried.append((sched.CALENDAR, f"calendar {_safe(mentor)}", week))
    if waiting is not None:
        tried += [(sched.RECOMMEND, f"recommend {_safe(waiting.referral_id)}",
                   "who could take them, and why every other mentor cannot"),
                  (sched.WAITLIST, "waitlist", "who waits, since when, and what would place them")]
    if explained:
        tried.append((None, f"trace {_safe(explained.referral_id)}", "its path through the three services, timed"))
    grid = Table.grid(padding=(0, 2))
    for endpoint, words, why in tried:
        if endpoint is None or may(client, endpoint):
            grid.add_row(f"  [cyan]{_safe(command)} {words}[/cyan]", why)
    return grid


async def explain(client: ServiceClient, outcomes: list[Outcome], feed: AlertFeed, *, names: dict[str, str],
                  console: Console, command: str) -> None:
    """Print why each accepted referral went where it did, and what to try next."""
    cases = await _gather(client, outcomes)
    expected = {c.referral_id: set(c.assessment.escalations) for c in cases if c.assessment and c.assessment.escalations}
    await feed.until_raised(expected, timeout=ALERTS_WAIT_SECONDS)
    for case in cases:
        case.alerts = list(feed.by_referral.get(case.referral_id, []))
    if not cases:
        console.print("No referral was accepted, so there is nothing to explain.")
        return
    console.print("\n[bold]Why each referral went where it did[/bold] (risk's assessment, the safeguarding alerts "
                  "and scheduling's answers)")
    dsl = _is_dsl(client)
    for case in cases:
        console.print(_tier_line(case), soft_wrap=True)
        if case.assessment is not None:
            for r in top_reasons(case.assessment):
                console.print(f"  · {_safe(r.axis)}: {_safe(r.explanation)}", soft_wrap=True)
        for line in [*_alert_lines(case, feed=feed, dsl=dsl), *_booking_lines(case, names)]:
            console.print(line, soft_wrap=True)
    console.print("\n[bold]Next[/bold], in another terminal:")
    console.print(_next_commands(cases, names, client, command))


DEMO_AGENCY = "demo"
"""The agency the sample is submitted as; `reroute up --demo` registers it (never outside --demo)."""
DEMO_AGENCY_KEY_FILE = "demo-agency.key"
DEMO_AGENCY_NATS_FILE = "demo-agency.nats-password"


@dataclass
class DemoAgency:
    """Where the demo agency's secrets are kept, and whether this start issued them."""

    key_file: Path
    nats_file: Path
    nats_user: str
    inbox_prefix: str
    issued: bool


async def demo_agency(client: ServiceClient, data_dir: Path) -> DemoAgency:
    """Register the demo agency (or issue it a new key when it was revoked or its files are gone) and keep its HTTP API
    key and NATS password in files only their user can read, in the data dir, for a developer trying the agencies'
    HTTP API and NATS by hand. Never printed: unlike the demo people's one-time passwords they stay valid."""

    key_file, nats_file = data_dir / DEMO_AGENCY_KEY_FILE, data_dir / DEMO_AGENCY_NATS_FILE
    listed = await client.call(intake_rpc.LIST_AGENCIES, Empty(), timeout=15)
    known = next((a for a in listed.agencies if a.agency_id == DEMO_AGENCY), None)
    if known is not None and known.status == "active" and _written_since(key_file, nats_file, known):
        return DemoAgency(key_file, nats_file, f"agency-{DEMO_AGENCY}", f"_INBOX_AGENCY.{DEMO_AGENCY}", issued=False)
    if known is None:
        keys = await client.call(intake_rpc.ADD_AGENCY, intake_rpc.AgencyRequest(
            agency_id=DEMO_AGENCY, name="Demo agency (the sample data of reroute up --demo)"), timeout=15)
    else:
        keys = await client.call(intake_rpc.ROTATE_AGENCY, intake_rpc.AgencyRequest(agency_id=DEMO_AGENCY),
                                 timeout=15)
    write_private(key_file, keys.api_key + "\n", replace=True)
    write_private(nats_file, keys.nats.password + "\n", replace=True)
    return DemoAgency(key_file, nats_file, keys.nats.user, keys.nats.inbox_prefix, issued=True)


def _written_since(key_file: Path, nats_file: Path, agency: intake_rpc.Agency) -> bool:
    """Both files are there and hold the agency's current key: written after it was last keyed (a `reroute agencies
    rotate demo` since leaves them stale)."""
    keyed = (agency.rotated_at or agency.created_at).timestamp()
    try:
        return min(key_file.stat().st_mtime, nats_file.stat().st_mtime) >= keyed
    except OSError:
        return False


def print_demo_agency(console: Console, agency: DemoAgency) -> None:
    done = "registered, with a new key" if agency.issued else "registered"
    console.print(f"Demo agency {DEMO_AGENCY} ({done}): its HTTP API key is in {agency.key_file} and its NATS password "
                  f"in {agency.nats_file} (user {agency.nats_user}, inbox prefix {agency.inbox_prefix}), for the "
                  "README's curl and NATS examples.", markup=False, soft_wrap=True)


DEMO_PEOPLE = (("dsl-demo", Role.DSL), ("scheduler-demo", Role.SCHEDULER), ("risk-demo", Role.RISK_LEAD),
               ("operator-demo", Role.OPERATOR), ("dpo-demo", Role.DPO))
"""The people `reroute up --demo` makes for trying the web console, one per role (never outside --demo)."""


async def demo_people(client: ServiceClient) -> list[tuple[str, Role, str]]:
    """Each demo person (made when missing) with a fresh one-time console password: (person id, role, password)."""
    made = []
    for person_id, role in DEMO_PEOPLE:
        try:
            await client.call(intake_rpc.ADD_PERSON, intake_rpc.StaffRequest(person_id=person_id, roles=[role]),
                              timeout=15)
        except ServiceError as exc:
            if exc.code != ErrorCode.REFUSED:  # refused: they exist from an earlier demo
                raise
        issued = await client.call(intake_rpc.ISSUE_CONSOLE_PASSWORD,
                                   intake_rpc.PersonIdRequest(person_id=person_id), timeout=15)
        made.append((person_id, role, issued.one_time_password))
    return made


def print_demo_logins(console: Console, url: str, people: list[tuple[str, Role, str]]) -> None:
    console.print(f"Web console: {url}. Demo log-ins, one per role (one-time passwords: at the first log-in each "
                  "chooses their own, and dsl-demo and dpo-demo set up an authenticator app):", markup=False, soft_wrap=True)
    for person_id, role, password in people:
        console.print(f"  {person_id:<15} {role:<10} {password}", markup=False, soft_wrap=True)
