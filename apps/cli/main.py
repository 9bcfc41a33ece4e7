"""`reroute`: the command-line client for schedulers and operators. It talks to the services over NATS only."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import shutil
import sys
from datetime import date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.tree import Tree

from apps.cli.agencies import agencies_app
from apps.cli.alerts import alerts_app, find
from apps.cli.backup import backup_app
from apps.cli.client import CliError, ServiceClient, connect, write_private
from apps.cli.db import db_app
from apps.cli.deadletters import deadletter_app
from apps.cli.demo import (
    DEMO_AGENCY,
    demo_agency,
    demo_people,
    explain,
    mentor_names,
    named,
    print_demo_agency,
    print_demo_logins,
    safeguarding_alerts,
)
from apps.cli.health import health_cmd
from apps.cli.keys import keys_app
from apps.cli.options import DataDir, MentorId, PersonId, ReferralId, SessionId, settings_for, with_client
from apps.cli.output import cli_console
from apps.cli.people import people_app
from apps.cli.referral_files import csv_column, read_records, read_referrals
from apps.cli.streams import streams_app
from apps.cli.submit import Outcome, count, submit
from apps.cli.up import LocalStack
from shared.contracts import intake_rpc, risk_rpc
from shared.contracts import scheduling_rpc as sched
from shared.contracts.codes import Tier
from shared.contracts.deadletters import Held, HeldRequest
from shared.contracts.intake_rpc import IntakeStatus
from shared.contracts.risk import RiskAssessed
from shared.contracts.risk_rpc import Assessment, AssessmentRequest
from shared.contracts.rpc import (
    ERASE_REFERRALS,
    ERASE_SPANS,
    EXPORT_REFERRALS,
    HELD,
    Empty,
    ErrorCode,
    ReferralIds,
    ServiceError,
    readable,
    unless_not_found,
)
from shared.contracts.rules import RulesError, load_rules
from shared.contracts.scheduling import CaseStatus
from shared.settings import ConfigurationError, keep_files_private
from shared.span_store import SpanStore
from shared.subjects import AGENCY_ID
from shared.telemetry import TRACES_DIR, StoredSpan, otlp_traces_endpoint, spans_of_referral

app = typer.Typer(help="reroute: referrals in, explainable risk, mentors booked.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
mentors_app = typer.Typer(help="Mentor registry.", no_args_is_help=True)
rules_app = typer.Typer(help="Risk rules.", no_args_is_help=True)
app.add_typer(mentors_app, name="mentors")


def _print_version(asked: bool) -> None:
    if asked:
        console.print(f"reroute {metadata.version('reroute')}")
        raise typer.Exit()


@app.callback()
def _everywhere(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print reroute's version and exit.")] = False,
) -> None:
    """reroute: referrals in, explainable risk, mentors booked."""


def _command() -> str:
    """How to type `reroute` here: the bare name when it is on PATH, else the path of the one running."""
    return "reroute" if shutil.which("reroute") else str(Path(sys.argv[0]).resolve())
app.add_typer(rules_app, name="rules")
app.add_typer(agencies_app, name="agencies")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(streams_app, name="streams")
app.command("health")(health_cmd)
app.add_typer(db_app, name="db")
app.add_typer(backup_app, name="backup")
app.add_typer(keys_app, name="keys")
app.add_typer(people_app, name="people")
app.add_typer(alerts_app, name="alerts")
console = cli_console()
T = TypeVar("T")
Rep = TypeVar("Rep")
# C0 and C1 controls (ESC starts a terminal's escape sequences and hyperlinks) and the bidirectional-text controls
# that make text read in another order than it is stored
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(value: object) -> str:
    """A value from outside the CLI (a service's reply, an event, a file, an argument) ready for rich: its markup
    escaped, so a name cannot restyle the output, plant a link or stop the command, and control and bidi characters
    shown as U+FFFD, so it cannot drive the terminal."""
    return escape(_UNPRINTABLE.sub("\ufffd", str(value)))


@app.command()
def up(
    data_dir: DataDir = None,
    demo: Annotated[bool, typer.Option(help="Import the sample mentors and submit the sample referrals.")] = False,
    examples: Annotated[Path, typer.Option(help="Where the sample files are (mentors.yaml, referrals.json).")] = Path(
        "examples"),
) -> None:
    """Start NATS (unless NATS_URL is set) and the three services; run until Ctrl-C. With --demo: load the sample,
    show each referral's outcome and explain it from what the services said (tier and reasons, safeguarding alerts,
    bookings and deadlines, who waits and what would place them)."""
    settings = settings_for(data_dir)

    async def main() -> None:
        stack = LocalStack(settings, console)
        try:
            await stack.start()
            if demo:
                async with connect(settings) as client, safeguarding_alerts(settings, DEMO_AGENCY) as alerts:
                    agency = await demo_agency(client, settings.data_dir)
                    if agency.issued:
                        await stack.sync_users()
                    print_demo_agency(console, agency)  # every run: the README's examples read these files
                    await _import_mentors(client, examples / "mentors.yaml")
                    outcomes = await _submit(client, examples / "referrals.json", DEMO_AGENCY, timeout=30)
                    names = await mentor_names(client)
                    _print_outcomes(outcomes, names)
                    await explain(client, outcomes, alerts, names=names, console=console, command=_command())
                    if stack.console_url:
                        people = await demo_people(client)
                        await stack.sync_users()  # their users in force before "running": a reload refuses clients
                        print_demo_logins(console, stack.console_url, people)
            console.print(f"[bold green]reroute is running[/bold green] (data in {safe(settings.data_dir)}). "
                          + ("Try the commands above" if demo else f"Try `{safe(_command())} --help`")
                          + " in another terminal" + ("" if _command() == "reroute" else " (or `source "
                          ".venv/bin/activate` first, so that `reroute` alone works)") + ". Ctrl-C stops everything.")
            await stack.watch()
        finally:
            try:
                await stack.disconnect()
            finally:  # whatever closing the connection raised (a second Ctrl-C), the processes are stopped
                stack.stop()

    asyncio.run(main())


@mentors_app.command("import")
def mentors_import(file: Annotated[Path, typer.Argument(metavar="FILE", help="Mentors as a YAML or JSON list.")],
                   data_dir: DataDir = None) -> None:
    """Create or update mentors from a YAML or JSON list (re-importing never duplicates)."""
    with_client(lambda c: _import_mentors(c, file), data_dir)


async def _import_mentors(client: ServiceClient, file: Path) -> None:
    mentors = read_records(file, "mentors")
    result = await client.call(sched.MENTORS_IMPORT, sched.MentorsImportRequest(mentors=mentors), timeout=30)
    _refuse_import(file, "mentor", result.errors)
    console.print(f"Imported {result.imported} mentors from {safe(file)} ({result.created} new, {result.updated} "
                  "updated).")
    if result.without_check:
        console.print(f"[yellow]{len(result.without_check)} mentor(s) take no case until an enhanced check is recorded "
                      f"(none recorded, or expired): {safe(', '.join(result.without_check))}.[/yellow]")
    if result.cases_moved:
        console.print(f"[yellow]{result.cases_moved} young people moved from mentors who can no longer keep "
                      "them (expired check or suspended licence).[/yellow]")


def _refuse_import(file: Path, what: str, errors: list[sched.ImportProblem]) -> None:
    """Print every problem and stop, when there are any (nothing was imported)."""
    for err in errors:
        console.print(f"[red]{what} #{err.index + 1} ({safe(err.id or 'no id')}): {safe(err.field)}: "
                      f"{safe(err.message)}[/red]")
    if errors:
        raise CliError(f"{file}: nothing imported; fix the {len(errors)} problem(s) above")


@mentors_app.command("list")
def mentors_list(
    problems: Annotated[bool, typer.Option("--problems", help="Only mentors with something to fix.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Every registered mentor (with --problems: missing or expiring checks, licence limits)."""
    result = with_client(lambda c: c.call(sched.MENTORS, Empty()), data_dir)
    table = Table("id", "name", "kind", "boroughs", "languages", "caseload", "problems")
    for m in result.mentors:
        if problems and not m.problems:
            continue
        table.add_row(safe(m.id), safe(m.name), safe(m.kind), safe(", ".join(m.boroughs)),
                      safe(", ".join(m.languages)), str(m.max_caseload), safe("; ".join(m.problems) or "-"))
    console.print(table)


@mentors_app.command("leave")
def mentors_leave(
    mentor_id: MentorId,
    first: Annotated[str, typer.Option("--from", help="First day of leave, YYYY-MM-DD (Europe/London).")],
    last: Annotated[str, typer.Option("--to", help="Last day of leave, YYYY-MM-DD (inclusive).")],
    data_dir: DataDir = None,
) -> None:
    """Record a mentor's leave; the sessions it touches move to another time that week, or are cancelled."""
    try:
        days = (date.fromisoformat(first), date.fromisoformat(last))
    except ValueError:
        raise CliError("--from and --to are dates like 2026-12-21") from None
    asked = sched.LeaveRequest(mentor_id=mentor_id, first_day=days[0], last_day=days[1])
    r = with_client(lambda c: c.call(sched.LEAVE, asked), data_dir)
    console.print(f"Leave recorded for {safe(mentor_id)}: {r.moved} sessions moved, {r.cancelled} cancelled, "
                  f"across {r.cases} young people.")


venues_app = typer.Typer(help="Venues where sessions are held.", no_args_is_help=True)
app.add_typer(venues_app, name="venues")


@venues_app.command("import")
def venues_import(file: Annotated[Path, typer.Argument(metavar="FILE", help="Venues as a YAML or JSON list.")],
                  data_dir: DataDir = None) -> None:
    """Create or update venues from YAML or JSON: id, name, borough, area, staffed, rooms."""
    venues = read_records(file, "venues")

    result = with_client(lambda c: c.call(sched.VENUES_IMPORT, sched.VenuesImportRequest(venues=venues), timeout=30),
                         data_dir)
    _refuse_import(file, "venue", result.errors)
    console.print(f"Imported {result.imported} venues ({result.created} new, {result.updated} updated).")


@app.command("submit")
def submit_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Referrals as a JSON list, NDJSON or CSV.")],
    agency: Annotated[str, typer.Option(help="Your agency id: lower-case letters, digits, - and _.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for outcomes.")] = 30,
    update: Annotated[bool, typer.Option("--update", help="Send as updates of referrals already submitted.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Submit referrals from a JSON list, NDJSON or CSV file and show each one's outcome.

    Bad rows are reported and skipped; re-running after an interruption re-sends nothing new (repeats are
    reported as duplicates). CSV columns: see README.md, "CLI"."""
    if not AGENCY_ID.match(agency):
        raise CliError(f"agency id '{agency}' is not valid: use lower-case letters, digits, - and _")
    outcomes = with_client(lambda c: _submit(c, file, agency, timeout=timeout, update=update), data_dir)
    _print_outcomes(outcomes)
    tally = count(outcomes)
    if tally["rejected"] or tally["unanswered"]:
        raise CliError(f"{tally['rejected']} row(s) rejected or not sent, {tally['unanswered']} without an answer "
                       f"from intake within {timeout:g} s: fix the rows above and submit the file again (rows "
                       "already accepted come back as duplicates, nothing is sent twice)")


async def _submit(client: ServiceClient, file: Path, agency: str, *, timeout: float,
                  update: bool = False) -> list[Outcome]:
    await _refuse_unregistered(client, agency)
    rows = read_referrals(file)
    readable = sum(1 for r in rows if r.body is not None)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        sent = progress.add_task("published", total=readable)
        answered = progress.add_task("answered by intake", total=readable)
        done = progress.add_task("scheduled, waitlisted or rejected", total=len(rows),
                                 completed=len(rows) - readable)

        def on_progress(kind: str, outcome: Outcome | None) -> None:
            if kind == "published":
                progress.advance(sent)
            elif kind == "answered":
                progress.advance(answered)
                if outcome is not None and outcome.rejected:
                    progress.advance(done)
            else:
                progress.advance(done)

        outcomes = await submit(client, rows, agency, timeout=timeout, on_progress=on_progress, update=update)
    if file.suffix.lower() == ".csv":  # intake names fields of the JSON body; a spreadsheet user knows columns
        for o in outcomes:
            o.rejected = [{**e, "field": csv_column(e.get("field") or "")} for e in o.rejected]
    return outcomes


async def _refuse_unregistered(client: ServiceClient, agency: str) -> None:
    """Referrals only for a registered, active agency: a mistyped --agency would file them under an agency nobody
    registered (and make its references look shared with another agency's)."""
    agencies = (await client.call(intake_rpc.LIST_AGENCIES, Empty(), timeout=15)).agencies
    found = next((a for a in agencies if a.agency_id == agency), None)
    if found is None:
        raise CliError(f"no agency '{agency}' is registered, so nothing was sent: `reroute agencies list` shows the "
                       f"registered ones; `reroute agencies add {agency} --name NAME` registers it")
    if found.status != "active":
        raise CliError(f"the agency '{agency}' is revoked, so nothing was sent: `reroute agencies rotate {agency}` makes "
                       "it active again with a new key")


def _print_outcomes(outcomes: list[Outcome], mentors: dict[str, str] | None = None) -> None:
    table = Table("#", "agency ref", "referral", "tier", "outcome", "mentor", "first session", title="Referral outcomes")
    for column in table.columns[:3]:
        column.no_wrap = True
    problems: list[str] = []
    for o in outcomes:
        ref = safe(o.agency_referral_id or "?")
        if o.rejected:
            what = "rejected" if o.sent else "not sent: row unreadable"
            table.add_row(str(o.row), ref, "-", "-", f"[red]{what}[/red] ({len(o.rejected)} problems, below)", "-", "-")
            problems += [f"row {o.row} {ref}: {safe(e['field'] or 'body')}: {safe(e['message'])}" for e in o.rejected]
            continue
        if o.referral_id is None:
            table.add_row(str(o.row), ref, "-", "-", "[yellow]no answer from intake yet[/yellow]", "-", "-")
            continue
        outcome = safe(o.status or "in progress")
        if o.status == "waitlisted":
            outcome = f"[yellow]waitlisted[/yellow]: {safe(o.reason)}"
        elif o.status == "scheduled" and o.deadline_met is False:
            outcome = "scheduled [yellow](after the tier's deadline)[/yellow]"
        if o.duplicate:
            outcome += " (duplicate: submitted before)"
        first = _local(o.first_session) if o.first_session else "-"
        table.add_row(str(o.row), ref, safe(o.referral_id), safe(o.tier or "…"), outcome, named(o.mentor_id, mentors or {}),
                      first)
    console.print(table)
    for line in problems:
        console.print(f"  [red]✗[/red] {line}")
    console.print(", ".join(f"{v} {k}" for k, v in count(outcomes).items()))


@app.command()
def status(
    reference: Annotated[str, typer.Argument(
        metavar="REFERRAL", help="Our referral id, or the agency's own reference (ours wins when both match).")],
    agency: Annotated[str | None, typer.Option(
        "--agency", help="Take REFERRAL as this agency's own reference (needed when several agencies use it).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Where one referral stands: received, assessed, scheduled or waitlisted (or withdrawn by its agency)."""

    async def find(c: ServiceClient) -> IntakeStatus:
        if agency is not None:
            return await c.call(intake_rpc.STATUS, intake_rpc.StatusRequest(agency_id=agency, agency_referral_id=reference))
        ours = await unless_not_found(c.call(intake_rpc.STATUS, intake_rpc.StatusRequest(referral_id=reference)))
        if ours is not None:
            return ours
        try:
            return await c.call(intake_rpc.STATUS, intake_rpc.StatusRequest(agency_referral_id=reference))
        except ServiceError as exc:
            if exc.code == ErrorCode.NOT_FOUND and reference.startswith("ref_"):  # our ids' shape: say it as ours
                raise CliError(f"no referral {reference} at intake") from None
            if exc.code == ErrorCode.REFUSED:  # several agencies use the reference
                raise CliError(f"{exc.message} with --agency ID: `reroute status {reference} --agency ID` "
                               "(`reroute agencies list` shows the ids)") from None
            raise

    async def fetch(c: ServiceClient) -> tuple[IntakeStatus, Assessment | None, sched.SchedulingStatus | None,
                                               list[Held]]:
        intake = await find(c)
        referral_id = intake.referral_id
        asked = HeldRequest(referral_ids=[referral_id])
        held = [await c.call(HELD, asked, service=s) for s in ("risk", "scheduling")]
        return (intake,
                await unless_not_found(c.call(risk_rpc.ASSESSMENT, AssessmentRequest(referral_id=referral_id))),
                await unless_not_found(c.call(sched.STATUS, sched.ReferralRequest(referral_id=referral_id))), held)

    intake, risk, scheduling, held = with_client(fetch, data_dir)
    referral_id = intake.referral_id
    console.print(f"[bold]{safe(referral_id)}[/bold] from {safe(intake.agency_id)} (their ref "
                  f"{safe(intake.agency_referral_id)}), received {_local(intake.received_at)}")
    if intake.withdrawn_at is not None:
        console.print(f"[yellow]Withdrawn by {safe(intake.agency_id)}[/yellow] {_local(intake.withdrawn_at)}: "
                      f"{safe(intake.withdrawal_reason or '')}")
    if risk is not None:
        a = risk.assessment
        console.print(f"Risk: [bold]{safe(a.tier)}[/bold] (likelihood {safe(a.likelihood.tier)}, harm "
                      f"{safe(a.harm.tier)}, wellbeing {safe(a.wellbeing.tier)}); rules {safe(a.rules_version)}")
        if a.escalations:
            console.print(f"[red]Safeguarding escalations: {safe(', '.join(a.escalations))}[/red]")
    else:
        console.print("Risk: not assessed yet")
    if scheduling is not None and scheduling.status == CaseStatus.SCHEDULED and scheduling.sessions:
        console.print(f"Scheduled with {safe(scheduling.mentor_id)}: {len(scheduling.sessions)} sessions, first "
                      f"{_local(scheduling.sessions[0].start)}"
                      + ("" if scheduling.deadline_met else " (after the tier's deadline)"))
        if scheduling.reason:  # why it last moved or who assigned it: for schedulers, the agency is told less
            console.print(f"Last change: {safe(scheduling.reason)}")
    elif scheduling is not None and scheduling.status == CaseStatus.WAITLISTED:
        console.print(f"[yellow]Waitlisted[/yellow]: {safe(scheduling.reason)}")
    elif scheduling is not None and scheduling.status in (CaseStatus.SUSPENDED, CaseStatus.CLOSED):
        console.print(f"{scheduling.status.value.capitalize()}: {safe(scheduling.reason or 'no reason recorded')}")
    else:
        console.print("Scheduling: waiting for the assessment")
    if scheduling is not None and scheduling.agency_reason and scheduling.status != CaseStatus.SCHEDULED:
        console.print(f"The agency is told: {safe(scheduling.agency_reason)}")
    for answer in held:
        for message in answer.held.get(referral_id, []):
            console.print(f"[red]Held for review: {safe(answer.service)} set a message about it aside "
                          f"({safe(message.id)}): {safe(message.reason)}[/red]\n  Fix the cause, then `reroute "
                          f"deadletter replay {safe(message.id)}`; the agency sees \"held for review by the service\".")


@app.command()
def assessment(referral_id: ReferralId, data_dir: DataDir = None) -> None:
    """The risk assessment of a referral, with every reason."""
    result = with_client(lambda c: unless_not_found(c.call(risk_rpc.ASSESSMENT,
                                                             AssessmentRequest(referral_id=referral_id))), data_dir)
    if result is None:
        raise CliError(f"no assessment for {referral_id} (yet)")
    a = result.assessment
    console.print(f"[bold]{safe(referral_id)}[/bold]: overall tier [bold]{safe(a.tier)}[/bold] (rules "
                  f"{safe(a.rules_version)})")
    for axis, ax in (("likelihood", a.likelihood), ("harm", a.harm), ("wellbeing", a.wellbeing)):
        floor = f", floor {safe(ax.floor)} from an escalation" if ax.floor else ""
        console.print(f"\n[bold]{axis}[/bold]: {safe(ax.tier)} (score {ax.score:g}{floor})")
        for r in ax.reasons:
            console.print(f"  {r.points:+g}  {safe(r.rule_id)}: {safe(r.explanation)}")
        if ax.could_lower:
            console.print(f"  What could lower this: {safe(', '.join(ax.could_lower))}")
    if a.escalations:
        console.print(f"\n[red]Escalations: {safe(', '.join(a.escalations))}[/red]")
    if a.needs:
        console.print("\nNeeds: " + safe(", ".join(f"{n.name} ({n.score})" for n in a.needs if n.score)))
        console.print("Focus: " + safe(", ".join(a.focus)))
    if a.review_due:
        console.print(f"Next review due {_local(a.review_due)}")
    table = Table("#", "when", "computed", "tier", "cause", "by", "why", title="History")
    for h in result.history:
        who = (h.by or "") + (f" (countersigned {h.countersigned_by})" if h.countersigned_by else "")
        table.add_row(str(h.number), _local(h.at), safe(h.computed_tier), safe(h.tier), safe(h.cause), safe(who),
                      safe(h.reason or h.summary))
    console.print(table)
    if result.pending is not None:
        _show_pending(result.pending, a.tier)


def _show_pending(p: risk_rpc.PendingOverride, in_force: Tier) -> None:
    console.print(f"[yellow]Pending:[/yellow] lower to {safe(p.tier)}, asked by {safe(p.by)} at "
                  f"{_local(p.requested_at)} ({safe(p.reason)}); waiting for a second risk lead's countersignature "
                  f"until {_local(p.expires_at)}. Tier {safe(in_force)} stays in force until then.")


@app.command()
def override(
    referral_id: ReferralId,
    tier: Annotated[str, typer.Option(help="The tier you decide: low, medium, high or very_high.")],
    reason: Annotated[str, typer.Option(help="Why (needed to raise or lower the tier).")] = "",
    by: Annotated[str, typer.Option(help="Your name, on a server without users only (otherwise the services "
                                         "record who you are signed in as).")] = "",
    data_dir: DataDir = None,
) -> None:
    """Confirm or override a referral's tier. Lowering it only asks: a second risk lead must countersign it
    (`reroute countersign`), and until then the tier in force stays."""
    if tier not in set(Tier):
        raise CliError(f"--tier '{tier}' is not one of {', '.join(Tier)}")
    asked = risk_rpc.OverrideRequest(referral_id=referral_id, tier=Tier(tier), reason=reason, by=by)
    reviewed = with_client(lambda c: c.call(risk_rpc.OVERRIDE, asked), data_dir)
    if reviewed.pending is not None:
        _say_pending(reviewed.pending, reviewed.assessment.tier)
        return
    _say_in_force(referral_id, reviewed.assessment)


@app.command()
def countersign(
    referral_id: ReferralId,
    tier: Annotated[str, typer.Option(help="The tier the lowering asks for (low, medium, high or very_high), as "
                                           "`reroute assessment` shows it: only the lowering waiting with that tier is "
                                           "decided.")],
    refuse: Annotated[bool, typer.Option("--refuse", help="Refuse it instead (or withdraw your own).")] = False,
    reason: Annotated[str, typer.Option(help="Why you refuse it (needed with --refuse).")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to confirm the lowering shown (needed without a "
                                                    "terminal).")] = False,
    by: Annotated[str, typer.Option(help="Your name, on a server without users only.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Countersign (or --refuse) the lowering of a referral's tier that another risk lead asked for. The lowering
    waiting is shown first and only that one is decided: risk refuses if it was withdrawn or asked again meanwhile."""
    if tier not in set(Tier):
        raise CliError(f"--tier '{tier}' is not one of {', '.join(Tier)}")
    if refuse and not reason.strip():
        raise CliError("say why you refuse it: --reason TEXT")
    found = with_client(lambda c: c.call(risk_rpc.ASSESSMENT, AssessmentRequest(referral_id=referral_id)), data_dir)
    p, doing = found.pending, "refused" if refuse else "signed"
    if p is None:
        raise CliError(f"no lowering of {referral_id}'s tier is waiting for a countersignature: nothing {doing}")
    _show_pending(p, found.assessment.tier)
    if p.tier != tier:
        raise CliError(f"the lowering waiting (shown above) asks for {p.tier}, not {tier}: nothing {doing}. Read it, "
                       f"then name its tier to decide on it")
    if not yes:
        _confirm("Refuse this lowering?" if refuse else "Countersign this lowering?", doing=doing)
    seen = risk_rpc.SeenLowering(tier=p.tier, requested_at=p.requested_at,  # what was shown, nothing newer
                                 assessment_number=found.assessment.number)
    if refuse:
        refused = risk_rpc.RefuseOverrideRequest(referral_id=referral_id, reason=reason, lowering=seen, by=by)
        kept = with_client(lambda c: c.call(risk_rpc.REFUSE_OVERRIDE, refused), data_dir).assessment
        console.print(f"Refused: {safe(referral_id)} stays at tier {safe(kept.tier)}.")
        return
    signed = risk_rpc.CountersignRequest(referral_id=referral_id, lowering=seen, by=by)
    _say_in_force(referral_id, with_client(lambda c: c.call(risk_rpc.COUNTERSIGN, signed), data_dir).assessment)


def _confirm(question: str, *, doing: str) -> None:
    """Ask the person at the terminal; without one, say to pass --yes. A "no" is a cancel: said, and exit 1, as
    `reroute person erase`'s prompt exits."""
    if not sys.stdin.isatty():
        raise CliError(f"nothing {doing}: no terminal to confirm the lowering shown above; once you have read it, "
                       "pass --yes")
    if not typer.confirm(question):
        console.print(f"Nothing {doing}.")
        raise typer.Exit(1)


def _say_pending(pending: risk_rpc.PendingOverride, in_force: Tier) -> None:
    console.print(f"Lowering {safe(pending.referral_id)} to {safe(pending.tier)} (asked by {safe(pending.by)}) waits for "
                  f"a second risk lead: `reroute countersign {safe(pending.referral_id)} --tier {safe(pending.tier)}` "
                  f"(or `--refuse`) before {_local(pending.expires_at)}. Until then tier {safe(in_force)} stays in "
                  "force.")


def _say_in_force(referral_id: str, a: RiskAssessed) -> None:
    change = a.change.summary if a.change else "first assessment"
    console.print(f"{safe(referral_id)}: tier {safe(a.tier)} ({safe(change)}); computed tier {safe(a.computed_tier)}. "
                  "Published to scheduling.")


reviews_app = typer.Typer(help="Scheduled reviews of tiers.", no_args_is_help=True)
app.add_typer(reviews_app, name="reviews")


@reviews_app.command("due")
def reviews_due(
    within: Annotated[int, typer.Option(help="Days ahead to look.")] = 14, data_dir: DataDir = None
) -> None:
    """Referrals whose tier must be reviewed soon (very_high every 4 weeks, high 6, medium and low 12)."""
    result = with_client(lambda c: c.call(risk_rpc.REVIEWS_DUE, risk_rpc.ReviewsRequest(within_days=within)),
                         data_dir)
    if not result.reviews:
        console.print(f"No reviews due in the next {within} days.")
        return
    table = Table("referral", "agency", "tier", "due", title=f"Reviews due within {within} days")
    for r in result.reviews:
        due = _local(r.due) + (" [red](overdue)[/red]" if r.overdue else "")
        table.add_row(safe(r.referral_id), safe(r.agency_id), safe(r.tier), due)
    console.print(table)


@reviews_app.command("waiting")
def reviews_waiting(data_dir: DataDir = None) -> None:
    """Lowerings of a tier waiting for a second risk lead's countersignature (`reroute countersign`)."""
    result = with_client(lambda c: c.call(risk_rpc.PENDING_OVERRIDES, Empty()), data_dir)
    if not result.lowerings:
        console.print("No lowering of a tier is waiting for a countersignature.")
        return
    table = Table("referral", "lower to", "asked by", "why", "lapses unsigned",
                  title="Lowerings waiting for a second risk lead")
    for p in result.lowerings:
        table.add_row(safe(p.referral_id), safe(p.tier), safe(p.by), safe(p.reason), _local(p.expires_at))
    console.print(table)


@app.command("audit")
def audit_cmd(
    min_group: Annotated[int, typer.Option(help="Smallest group compared.")] = 10, data_dir: DataDir = None
) -> None:
    """Fairness audit: tiers and overrides overall and by equality-monitoring group, flagging disproportion."""
    result = with_client(lambda c: c.call(intake_rpc.AUDIT, intake_rpc.AuditRequest(min_group_size=min_group),
                                          timeout=60), data_dir)
    for line in result.lines:
        console.print(safe(line), soft_wrap=True)


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(metavar="FILE", help="A risk rules YAML file.")]) -> None:
    """Validate a rules file exactly as the risk service does when it starts (no service needed)."""
    try:
        rules = load_rules(file)
    except RulesError as exc:
        console.print(str(exc), markup=False, soft_wrap=True)
        raise SystemExit(1) from None
    console.print(f"{file}: rules {rules.id} version {rules.version} are sound ({len(rules.indicator_meanings())} "
                  f"indicators, {len(rules.protective_meanings())} protective factors)", markup=False, soft_wrap=True)


@rules_app.command("rescore")
def rules_rescore(
    dry_run: Annotated[bool, typer.Option("--dry-run/--apply", help="Only report (default), or publish.")] = True,
    rules: Annotated[Path | None, typer.Option(help="Preview a candidate rules file instead of the loaded one.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Re-score every referral with the rules the risk service has loaded, and say what changes and why."""
    asked = risk_rpc.RescoreRequest(dry_run=dry_run)
    if rules is not None:
        try:
            asked = risk_rpc.RescoreRequest(dry_run=dry_run, rules_yaml=rules.read_text(encoding="utf-8"),
                                            rules_name=rules.name)
        except OSError as exc:
            raise CliError(f"cannot read {rules}: {exc.strerror}") from None
    result = with_client(lambda c: c.call(risk_rpc.RESCORE, asked, timeout=120), data_dir)
    for line in result.lines:
        console.print(safe(line), soft_wrap=True)
    if not dry_run:
        console.print(f"Published {result.republished} new assessments (rules {safe(result.rules_version)}).")


@rules_app.command("list")
def rules_list(data_dir: DataDir = None) -> None:
    """Every indicator and protective-factor code, with its meaning."""
    result = with_client(lambda c: c.call(risk_rpc.RULES, Empty()), data_dir)
    console.print(f"Rules {safe(result.id)} version {safe(result.version)}")
    for title, codes in (("Indicators", result.indicators), ("Protective factors", result.protective_factors)):
        table = Table("code", "meaning", title=title)
        for code, meaning in sorted(codes.items()):
            table.add_row(safe(code), safe(meaning))
        console.print(table)


@app.command()
def calendar(
    mentor_id: MentorId,
    weeks: Annotated[int, typer.Option(help="How many weeks to show.")] = 4,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default today).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    feed: Annotated[bool, typer.Option("--feed", help="Issue a new calendar-feed link (the old one stops).")] = False,
    revoke_feed: Annotated[bool, typer.Option("--revoke-feed", help="Revoke the mentor's feed link.")] = False,
    show_venues: Annotated[bool, typer.Option("--show-venues", help=(
        "With --feed: the mentor opts in to seeing the venue of sessions at the organisation's staffed premises "
        "(LOCATION); never any other place."))] = False,
    names: Annotated[bool, typer.Option("--names", help="Show mentees' first names (each look-up is logged).")] = False,
    data_dir: DataDir = None,
) -> None:
    """A mentor's booked sessions and venues, week by week (case references only; a rotl mentor's route too);
    --feed gives an iCalendar link."""
    if feed or revoke_feed:
        if show_venues and not feed:
            raise CliError("--show-venues goes with --feed: it is chosen when a link is issued")
        asked_feed = sched.FeedRequest(mentor_id=mentor_id, revoke=revoke_feed, show_venues=show_venues)
        r = with_client(lambda c: c.call(sched.CALENDAR_FEED, asked_feed), data_dir)
        if revoke_feed:
            console.print(f"Revoked {r.revoked} feed link(s) of {safe(mentor_id)}.")
        else:
            shows = "case references and the staffed venues" if show_venues else "case references only"
            console.print(f"Calendar feed for {safe(mentor_id)} (share it only with them; it shows {shows}):")
            console.print(f"  iCalendar: {safe(r.ics_url)}\n  JSON:      {safe(r.json_url)}", soft_wrap=True)
        return
    try:
        first_day = date.fromisoformat(start) if start else None
    except ValueError:
        raise CliError(f"--start '{start}' is not a date in YYYY-MM-DD form") from None
    asked = sched.CalendarRequest(mentor_id=mentor_id, days=weeks * 7, start=first_day,
                                  names_for=getpass.getuser() if names else None)
    result = with_client(lambda c: c.call(sched.CALENDAR, asked), data_dir)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    m = result.mentor
    console.print(f"[bold]{safe(m.name)}[/bold] ({safe(m.id)}, {safe(m.kind)}): {len(result.sessions)} sessions, "
                  f"{_local(result.starts)[:10]} to {_local(result.ends)[:10]}")
    week_start = result.starts.date()
    week_start -= timedelta(days=week_start.weekday())
    by_week: dict[date, list[sched.CalendarSession]] = {}
    for s in result.sessions:
        day = s.start.date()
        by_week.setdefault(day - timedelta(days=day.weekday()), []).append(s)
    for w in range(weeks + 1):
        monday = week_start + timedelta(weeks=w)
        sessions = by_week.get(monday, [])
        if not sessions:
            continue
        rotl = m.kind == "rotl"
        table = Table("day", "time", "case", "status", "venue", *(["mentor's route"] if rotl else []), "session",
                      title=f"Week of {monday:%a %d %b %Y}", title_justify="left")
        for s in sessions:
            case = f"{s.first_name} ({s.case})" if s.first_name else s.case
            route = [safe(" → ".join(s.mentor_route or []))] if rotl else []
            table.add_row(f"{s.start:%a %d %b}", f"{s.start:%H:%M}–{s.end:%H:%M}", safe(case), safe(s.status),
                          safe(s.venue or ""), *route, safe(s.session_id))
        console.print(table)
    console.print(f"`{_command()} session confirm|cancel|attended|missed SESSION` records what happened to one.")


@app.command()
def recommend(referral_id: ReferralId, data_dir: DataDir = None) -> None:
    """The top three mentor + first-slot options with their scores, and why every other mentor is excluded."""
    r = with_client(lambda c: c.call(sched.RECOMMEND, sched.ReferralRequest(referral_id=referral_id)), data_dir)
    current = f"; now with {safe(r.current_mentor)}" if r.current_mentor else ""
    console.print(f"[bold]{safe(referral_id)}[/bold] ({safe(r.tier)} tier{current})")
    table = Table("#", "mentor", "first session", "deadline", "venue and route", "score", "why", title="Options")
    for i, o in enumerate(r.options, 1):
        why = ", ".join(f"{k.replace('_', ' ')} {v:+.1f}" for k, v in o.breakdown.items())
        table.add_row(str(i), safe(o.mentor_id), _local(o.first_start), "met" if o.deadline_met else "missed",
                      safe(f"{o.venue}\n{' → '.join(o.route)}"), f"{o.score:.1f}", safe(why))
    console.print(table if r.options else "[yellow]No mentor can take this referral now.[/yellow]")
    for e in r.excluded:
        console.print(f"  {safe(e.mentor_id)}: {safe(e.reason)}", soft_wrap=True)


@app.command()
def assign(
    referral_id: ReferralId,
    mentor_id: MentorId,
    reason: Annotated[str, typer.Option(help="Why this mentor (recorded).")],
    by: Annotated[str, typer.Option(help="Your name (recorded).")],
    start: Annotated[str | None, typer.Option(help="First session, YYYY-MM-DDTHH:MM (Europe/London).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Assign a mentor you chose; refused, with the constraint named, if it breaks one."""
    first = None
    if start:
        try:
            first = datetime.fromisoformat(start)
        except ValueError:
            raise CliError(f"--start '{start}' is not a date and time like 2026-12-01T16:00") from None
        if first.tzinfo is None:
            first = first.replace(tzinfo=_london())
    asked = sched.AssignRequest(referral_id=referral_id, mentor_id=mentor_id, reason=reason, by=by, start=first)
    r = with_client(lambda c: c.call(sched.ASSIGN, asked), data_dir)
    console.print(f"{safe(referral_id)} assigned to {safe(r.mentor_id)}: {r.sessions} sessions, first "
                  f"{_local(r.first)}.")


@app.command("plan")
def plan_cmd(data_dir: DataDir = None) -> None:
    """Run the re-optimisation round now: place as many waiting young people as the rules allow (exact optimisation),
    never moving a session someone has confirmed, nor a young person from a mentor a scheduler chose (`reroute
    assign`) while that mentor may still take them, nor any other young person from their mentor unless that places
    someone or their mentor can no longer keep them."""
    with console.status("Optimising…"):
        r = with_client(lambda c: c.call(sched.REOPTIMISE, Empty(), timeout=300), data_dir)
    why = (f" ({r.moved_to_make_room} to make room for another young person, {r.moved_mentor_cannot_keep} whose "
           "mentor can no longer keep them)") if r.moved else ""
    console.print(f"Re-optimisation round: {r.considered} referrals considered, {r.pinned} more left as they are (a "
                  "confirmed session, or a mentor a scheduler chose); "
                  f"{r.placed} of {r.waitlisted_before} waiting placed, {r.moved} moved to another mentor"
                  f"{why} (solved in {r.solve_seconds} s).")


@app.command()
def waitlist(data_dir: DataDir = None) -> None:
    """Who is waiting for a mentor, for how long, why, and what capacity would place them."""
    r = with_client(lambda c: c.call(sched.WAITLIST, Empty()), data_dir)
    if not r.waiting:
        console.print("Nobody is waiting.")
        return
    table = Table("referral", "tier", "waiting", "why", "would place them", title="Waitlist")
    for w in r.waiting:
        table.add_row(safe(w.referral_id), safe(w.tier), f"{w.days} days", safe(w.reason or "-"), safe(w.would_place))
    console.print(table)


@app.command()
def session(
    action: Annotated[str, typer.Argument(metavar="ACTION", help="confirm, cancel, attended or missed")],
    session_id: SessionId,
    reason: Annotated[str, typer.Option(help="Why (for a cancellation). The referring agency is told it as "
                                             "written: no names, nothing of the mentor's circumstances.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Confirm or cancel a session, or record it attended or missed."""
    if action not in get_args(sched.SessionAction):
        raise CliError(f"'{action}' is not one of {', '.join(get_args(sched.SessionAction))}")
    asked = sched.SessionRequest.model_validate({"session_id": session_id, "action": action, "reason": reason})
    result = with_client(lambda c: c.call(sched.SESSION, asked), data_dir)
    console.print(f"{safe(session_id)} is now {safe(result.status)} (case {safe(result.referral_id)}).")
    if result.follow_up == "escalate":
        console.print("[red]Three missed sessions in a row with wellbeing high or above: disengagement escalation "
                      "raised to the safeguarding lead.[/red]")
    elif result.follow_up == "close":
        console.print("[yellow]Three missed sessions in a row: the case is closed and its sessions cancelled.[/yellow]")


person_app = typer.Typer(help="A young person's data across the services (subject access, erasure).",
                         no_args_is_help=True)
app.add_typer(person_app, name="person")
person_app.command("find")(find)


@person_app.command("access-log")
def person_access_log(
    by: Annotated[str, typer.Option("--by", help="Only look-ups by this person (their person id).")] = "",
    referral: Annotated[str, typer.Option("--referral", help="Only look-ups of this referral.")] = "",
    person: Annotated[str, typer.Option("--person", help="Only look-ups of this young person's referrals.")] = "",
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=1000)] = 200,
    data_dir: DataDir = None,
) -> None:
    """Who looked at which young person's personal data, when and why (intake's access log); for the data
    protection officer (role dpo)."""
    asked = intake_rpc.AccessLogRequest(asked_by=by, referral_id=referral, person_id=person, limit=limit)
    log = with_client(lambda c: c.call(intake_rpc.ACCESS_LOG, asked), data_dir)
    if not log.entries:
        console.print("No look-ups match.")
        return
    table = Table("when", "who", "what", "referral", "why", "found", title="Personal-data access log, newest first")
    for e in log.entries:
        table.add_row(_local(e.asked_at), safe(e.asked_by), safe(e.item), safe(e.referral_id or "none"),
                      safe(e.purpose), "yes" if e.answered else "no")
    console.print(table)
    if log.more:
        console.print(f"More match than the {limit} shown: narrow it with --by, --referral or --person.")


@person_app.command("export")
def person_export(
    person_id: PersonId,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON to this new file, readable only by you "
                                                           "(default: print it).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the file at --out if there is one (a symlink "
                                                        "there is replaced, never followed).")] = False,
    data_dir: DataDir = None,
) -> None:
    """Gather everything every service holds about one young person into one JSON document."""
    if out is not None and not force and os.path.lexists(out):  # before asking: every export is logged
        raise CliError(f"{out} exists: choose another file, or --force to replace it")

    async def gather(c: ServiceClient) -> dict[str, Any]:
        intake = (await c.call(intake_rpc.EXPORT_PERSON, intake_rpc.PersonRequest(person_id=person_id),
                               timeout=30)).data
        ids = [r.referral_id for r in intake.referrals]
        if not ids:
            raise CliError(f"no young person {person_id} at intake")
        doc: dict[str, Any] = {"person_id": person_id, "exported_at": datetime.now(_london()).isoformat(),
                               "intake": intake.model_dump(mode="json")}
        for service in EXPORT_REFERRALS.services:
            doc[service] = (await c.call(EXPORT_REFERRALS, ReferralIds(referral_ids=ids), service=service,
                                         timeout=30)).data
        return doc

    doc = with_client(gather, data_dir)
    text = json.dumps(doc, indent=2, default=str)
    if out is None:
        print(text)
    else:
        write_private(out, text, replace=force)
        console.print(f"Wrote {safe(out)} ({len(doc['intake']['referrals'])} referrals). It holds personal data: "
                      "keep it safe and delete it once the request is answered.")


SPANS_ERASE_SECONDS = 60
"""How long the console may take to erase a person's spans (it imports the span files beside its store first)."""


async def erase_spans(c: ServiceClient, ids: list[str], local: SpanStore) -> dict[str, int] | str:
    """Erase these referrals' spans: from the console's span store, wherever it runs, over NATS (`spans.erase`), and
    from a span store and span files in the CLI's own data dir (`reroute up`'s, which its console shares, or the
    services' span files where no console runs). What was erased, or why the spans were not."""
    gone, unanswered = 0, None
    try:
        gone = (await c.call(ERASE_SPANS, ReferralIds(referral_ids=ids), timeout=SPANS_ERASE_SECONDS)).erased["spans"]
    except ServiceError as exc:  # the console answered: it could not
        return f"not erased: {exc.message.rstrip('.')}; run this again"
    except CliError as exc:  # no console answered: none runs, or it is down
        unanswered = str(exc)
    if local.path.exists() or any(local.path.parent.glob("*.jsonl")):
        return {"referrals": len(ids), "spans": gone + await asyncio.to_thread(local.erase, ids)}
    if unanswered is not None:
        return (f"not erased: {unanswered.rstrip('.')}; the console's span store keeps them: run this again once "
                "the console runs")
    return {"referrals": len(ids), "spans": gone}


@person_app.command("erase")
def person_erase(
    person_id: PersonId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Erase one young person from all three services, irreversibly (anonymous counts are kept), and their referrals'
    spans from the console's span store (over NATS) and the span store and span files in the data dir."""
    if not yes:
        typer.confirm(f"Erase {person_id} from intake, risk and scheduling? This cannot be undone", abort=True)

    spans = SpanStore.of(settings_for(data_dir).data_dir)

    async def erase_all(c: ServiceClient) -> list[tuple[str, dict[str, int] | str]]:
        person = intake_rpc.PersonRequest(person_id=person_id)
        ids = (await c.call(intake_rpc.PERSON_REFERRALS, person)).referral_ids
        if not ids:
            raise CliError(f"no young person {person_id} at intake")
        results: list[tuple[str, dict[str, int] | str]] = []
        for service in ERASE_REFERRALS.services:  # intake last: it holds the link from person to referrals
            try:
                erased = await c.call(ERASE_REFERRALS, ReferralIds(referral_ids=ids), service=service)
                results.append((service, erased.erased))
            except (CliError, ServiceError) as exc:
                results.append((service, str(exc)))
        # the spans before intake (its link lets a second run find them) and again after (the erasure's own spans)
        first = await erase_spans(c, ids, spans)
        if all(isinstance(r, dict) for _, r in results) and isinstance(first, dict):
            results.append(("intake", (await c.call(intake_rpc.ERASE_PERSON, person)).erased))
            again = await erase_spans(c, ids, spans)
            results.append(("spans", {"referrals": len(ids), "spans": first["spans"] + again["spans"]}
                            if isinstance(again, dict) else again))
        else:
            results.append(("spans", first))
            results.append(("intake", "not erased yet: the link is kept until every service has confirmed; run again"))
        return results

    failed = False
    for service, result in with_client(erase_all, data_dir):
        if isinstance(result, dict):
            also = "".join(f", {n} {kind.replace('_', ' ')}" for kind, n in result.items() if kind != "referrals")
            console.print(f"  {safe(service)}: erased ({result.get('referrals', 0)} referrals{also})")
        else:
            failed = True
            console.print(f"  [red]{safe(service)}: {safe(result)}[/red]")
    if failed:
        raise SystemExit(1)


@app.command("close")
def close_cmd(
    referral_id: ReferralId,
    reason: Annotated[str, typer.Option(help="Why (recorded for schedulers; the agency is told only that the "
                                             "service closed it).")],
    by: Annotated[str, typer.Option(help="Your name (recorded for schedulers, never sent to the agency).")],
    data_dir: DataDir = None,
) -> None:
    """Close a referral: its future sessions are cancelled; it is purged after the retention period."""
    asked = sched.CloseRequest(referral_id=referral_id, reason=reason, by=by)
    with_client(lambda c: c.call(sched.CLOSE, asked), data_dir)
    console.print(f"{safe(referral_id)} closed; its remaining sessions are cancelled.")


@app.command()
def purge(
    days: Annotated[float | None, typer.Option(help="Purge referrals closed this many days ago (default: the "
                                                     "retention period, REROUTE_RETENTION_DAYS).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Erase closed referrals past the retention period from every service, keeping anonymous counts."""
    r = with_client(lambda c: c.call(intake_rpc.PURGE, intake_rpc.PurgeRequest(days=days), timeout=300), data_dir)
    console.print(f"Purged {r.purged} closed referrals.")


@app.command()
def trace(referral_id: ReferralId, data_dir: DataDir = None) -> None:
    """Every trace of one referral, in time order: its own (intake, risk and scheduling, and every later update and
    risk lead's decision) and the callers' traces linked to it, as span trees with durations."""
    settings = settings_for(data_dir)
    store = SpanStore.of(settings.data_dir)
    if store.path.exists():  # the console's store: indexed, with the span files imported into it
        store.import_files()
        spans = store.spans_of_referral(referral_id)
    else:
        spans = spans_of_referral(settings.data_dir, referral_id)
    if (otlp := otlp_traces_endpoint()) is not None:
        console.print(f"Spans are sent over OTLP to {safe(otlp)} (OTEL_EXPORTER_OTLP_*), not kept here: search "
                      f"your tracing UI (Jaeger, Tempo, ...) for the attribute referral.id={safe(referral_id)}.")
        if spans:
            console.print(f"Spans kept in {safe(settings.data_dir / TRACES_DIR)} by services run without OTLP:")
    elif not spans:
        raise CliError(f"no spans of {referral_id} in {settings.data_dir / TRACES_DIR}: check the referral id and "
                       "the data dir (services write spans there within OTEL_BSP_SCHEDULE_DELAY, 200 ms by default)")
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[StoredSpan]] = {}
    traces: dict[str, list[StoredSpan]] = {}
    for s in spans:  # in start order, so every trace and every branch is in time order
        if s.parent_id in ids:
            children.setdefault(s.parent_id, []).append(s)
        else:
            traces.setdefault(s.trace_id, []).append(s)
    t0 = spans[0].start_ns if spans else 0
    for trace_id, roots in traces.items():
        tree = Tree(f"[bold]trace {safe(trace_id)}[/bold]")
        for root in roots:
            _add(tree, root, children, t0)
        console.print(tree)


def _add(node: Tree, span: StoredSpan, children: dict[str | None, list[StoredSpan]], t0: int) -> None:
    outcome = safe(span.attributes.get("reroute.outcome", ""))
    linked = "".join(f" [dim]↔ trace {safe(link['trace_id'])}[/dim]" for link in span.links)
    label = (f"[cyan]{safe(span.service)}[/cyan] {safe(span.name)}  {span.duration_ms:.1f} ms "
             f"(+{(span.start_ns - t0) / 1e6:.0f} ms) {outcome}" + (" [red]ERROR[/red]" if span.status == "ERROR" else "")
             + linked)
    branch = node.add(label)
    for child in children.get(span.span_id, []):
        _add(branch, child, children, t0)


def _local(moment: str | datetime) -> str:
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return when.astimezone(_london()).strftime("%a %d %b %H:%M")


def _london() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/London")


def main() -> None:
    keep_files_private()  # what it writes (a data dir, logs, a person export) is for its user alone
    try:
        app()
    except (CliError, ConfigurationError, ServiceError) as exc:
        console.print(f"[red]error:[/red] {safe(exc)}")
        raise SystemExit(1) from None
    except ValidationError as exc:  # a request the contract refuses before it is sent
        console.print(f"[red]error:[/red] {safe(readable(exc))}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
