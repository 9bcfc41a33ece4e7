"""`reroute alerts`: the safeguarding alerts risk and scheduling raised, and `reroute alerts ack`, which records the
person signed in as having taken one up; `reroute person find`, which gives a young person's id from their name and
date of birth. Both are for designated safeguarding leads (and the find for admins too), and the services record who
asked from the person's own NATS subject."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from apps.cli.client import CliError, ServiceClient
from apps.cli.options import DataDir, with_client
from apps.cli.output import cli_console
from shared.contracts.intake_rpc import FIND_PERSON, FindPersonRequest, FoundPerson
from shared.contracts.rpc import ErrorCode, ServiceError
from shared.contracts.safeguarding_rpc import (
    ACKNOWLEDGE,
    ALERTS,
    Acknowledged,
    AcknowledgeRequest,
    AlertsRequest,
    SafeguardingAlertView,
    ordered,
)

alerts_app = typer.Typer(help="Safeguarding alerts: open ones first, most urgent first; acknowledge one by name.",
                         invoke_without_command=True)
console = cli_console()
LONDON = ZoneInfo("Europe/London")


def _safe(value: object) -> str:
    from apps.cli.main import safe  # one definition of what may reach the terminal

    return safe(value)


def _local(moment: datetime) -> str:
    return moment.astimezone(LONDON).strftime("%a %d %b %H:%M")


def _late(deadline: datetime, now: datetime) -> str:
    minutes = int((now - deadline).total_seconds() // 60)
    return f"{minutes // 1440} d {minutes % 1440 // 60} h" if minutes >= 1440 else f"{minutes // 60} h {minutes % 60} min"


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    days: Annotated[float, typer.Option("--days", help="Also list alerts acknowledged in the last DAYS days "
                                                       "(0: only those nobody has acknowledged).")] = 7,
    data_dir: DataDir = None,
) -> None:
    """Open safeguarding alerts from risk and scheduling with their actions and deadlines (overdue ones marked), and
    those acknowledged lately with who and when."""
    if ctx.invoked_subcommand is not None:
        return

    async def gather(c: ServiceClient) -> tuple[list[SafeguardingAlertView], list[str]]:
        found: list[SafeguardingAlertView] = []
        missing: list[str] = []
        for service in ALERTS.services:
            try:
                found += (await c.call(ALERTS, AlertsRequest(acknowledged_days=days), service=service)).alerts
            except CliError as exc:
                if "may not ask" in str(exc):
                    raise
                missing.append(f"{service}: {exc}")
            except ServiceError as exc:
                missing.append(str(exc))
        return ordered(found), missing

    listed, missing = with_client(gather, data_dir)
    now = datetime.now(UTC)
    for a in listed:  # one block per alert, never wrapped: ids are copied from here, and a screen reader reads it
        console.print(f"[bold]{_safe(a.rule_id)}[/bold]  referral {_safe(a.referral_id)} (agency "
                      f"{_safe(a.agency_id or '-')}), raised by {_safe(a.service)} {_local(a.raised_at)}",
                      soft_wrap=True)
        console.print(f"  alert id: {_safe(a.alert_id)}", soft_wrap=True)
        due = f"  deadline: {_local(a.deadline)}"
        if a.overdue:
            due += f"  [bold red]OVERDUE by {_late(a.deadline, now)}[/bold red]"
        console.print(due, soft_wrap=True)
        console.print(f"  actions: {_safe(', '.join(a.actions))}", soft_wrap=True)
        if a.acknowledged_at is None:
            console.print("  acknowledged: [red]not yet[/red]", soft_wrap=True)
        else:
            late = " (after the deadline)" if a.acknowledged_at > a.deadline else ""
            note = f": {_safe(a.note)}" if a.note else ""
            console.print(f"  acknowledged by {_safe(a.acknowledged_by)} at {_local(a.acknowledged_at)}{late}{note}",
                          soft_wrap=True)
    open_ = [a for a in listed if a.acknowledged_at is None]
    if open_:
        console.print(f"{len(open_)} not acknowledged ({sum(1 for a in open_ if a.overdue)} overdue). `reroute alerts "
                      "ack ALERT_ID [--note TEXT]` records that you have taken one up.", soft_wrap=True)
    else:
        console.print("No open safeguarding alerts." + (f" Listed: those acknowledged in the last {days:g} days."
                                                         if listed else ""), soft_wrap=True)
    for line in missing:
        console.print(f"[red]Not listed: {escape(line)}[/red]", soft_wrap=True)
    if missing:
        raise typer.Exit(1)


@alerts_app.command("ack")
def ack(
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="The alert's id, as `reroute alerts` shows it.")],
    note: Annotated[str, typer.Option("--note", help="What was done or arranged (recorded with it).")] = "",
    data_dir: DataDir = None,
) -> None:
    """Record that you have taken up a safeguarding alert (once: a second acknowledgement is refused, naming the
    first). The service that raised it records who you are signed in as."""
    request = AcknowledgeRequest(alert_id=alert_id, note=note)

    async def route(c: ServiceClient) -> Acknowledged:
        for service in ACKNOWLEDGE.services:  # the one that raised it answers; the other has never heard of it
            try:
                return await c.call(ACKNOWLEDGE, request, service=service)
            except ServiceError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
        raise CliError(f"no safeguarding alert {alert_id}: neither risk nor scheduling raised one with that id "
                       "(`reroute alerts` lists them)")

    a = with_client(route, data_dir).alert
    assert a.acknowledged_at is not None
    late = " [yellow](after its deadline)[/yellow]" if a.acknowledged_at > a.deadline else ""
    console.print(f"{_safe(a.alert_id)} ({_safe(a.rule_id)}, referral {_safe(a.referral_id)}) acknowledged by "
                  f"{_safe(a.acknowledged_by)} at {_local(a.acknowledged_at)}{late}; recorded by {_safe(a.service)}.",
                  soft_wrap=True)


def find(
    given: Annotated[str, typer.Option("--given", help="Given name, as a referral gave it.")],
    family: Annotated[str, typer.Option("--family", help="Family name.")],
    born: Annotated[str, typer.Option("--born", help="Date of birth, YYYY-MM-DD.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why you look them up (logged with your name).")],
    data_dir: DataDir = None,
) -> None:
    """A young person's id (for `person export` and `person erase`) and their referrals, by name and date of
    birth; for safeguarding leads and admins. Every look-up is logged with who asked and why, found or not."""
    try:
        birth = date.fromisoformat(born)
    except ValueError:
        raise CliError(f"--born '{born}' is not a date like 2010-05-17") from None
    if not purpose.strip():
        raise CliError("say why you look them up: --purpose TEXT (it is logged with your name)")
    asked = FindPersonRequest(given_name=given, family_name=family, date_of_birth=birth, purpose=purpose)

    async def look_up(c: ServiceClient) -> FoundPerson:
        try:
            return await c.call(FIND_PERSON, asked)
        except ServiceError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise CliError("No young person with that name and date of birth is known to intake (the look-up "
                               "is logged).") from None
            raise

    found = with_client(look_up, data_dir)
    console.print(f"Person id: [bold]{_safe(found.person_id)}[/bold] (`reroute person export {_safe(found.person_id)}`"
                  f", `reroute person erase {_safe(found.person_id)}`)", soft_wrap=True)
    table = Table("referral", "agency", "agency ref", "received", title="Referrals")
    for r in found.referrals:
        table.add_row(_safe(r.referral_id), _safe(r.agency_id), _safe(r.agency_referral_id), _local(r.received_at))
    console.print(table)
