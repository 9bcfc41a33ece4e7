"""`reroute deadletter`: the messages a service set aside, gathered from the services that keep them.

Each service keeps its own dead letters (intake's encrypted); this asks each over NATS and validates every
reply into its contract, so an operator sees one list, replays a fixed one once, or discards it with a reason.
"""

from __future__ import annotations

import getpass
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from apps.cli.client import ServiceClient
from apps.cli.options import DataDir, with_client
from apps.cli.output import cli_console
from apps.devstack.processes import SERVICES
from shared.contracts.deadletters import (
    DeadLetterDiscardRequest,
    DeadLetterList,
    DeadLetterListRequest,
    DeadLetterReplayRequest,
    DeadLetterResults,
    DeadLetterShowRequest,
)
from shared.contracts.rpc import DEAD_LETTER, DEAD_LETTERS, DISCARD, REPLAY, ErrorCode, ServiceError
from shared.deadletters import is_parked_id, keepers

deadletter_app = typer.Typer(help="Messages a service could not process: list, show, replay once fixed, discard.",
                             no_args_is_help=True)
console = cli_console()
T = TypeVar("T")
By = Annotated[str, typer.Option("--by", help="Who is acting (recorded with the dead letter).")]


def _services(dead_letter_id: str) -> list[str]:
    """The service that keeps it; for a parked outbox event (`outbox-…`), every service, asked in turn."""
    found = keepers(dead_letter_id, SERVICES)
    if not found:
        raise typer.BadParameter(f"{dead_letter_id!r} is not a dead letter id (they look like risk-1a2b3c4d5e, or "
                                 "outbox-1a2b3c4d5e for an event a service parked)")
    return found


async def _first_found(services: list[str], ask: Callable[[str], Awaitable[T]]) -> T:
    """The answer of the first of these services that has it (a parked event's id does not name its service)."""
    for service in services[:-1]:
        try:
            return await ask(service)
        except ServiceError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
    return await ask(services[-1])


@deadletter_app.command("list")
def list_cmd(
    service: Annotated[str | None, typer.Option(help="Only this service's (intake, risk or scheduling).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Also those already replayed or discarded.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Dead letters, newest first, and the open ones counted by service and reason."""
    names = [service] if service else list(SERVICES)

    async def gather(c: ServiceClient) -> list[DeadLetterList]:
        asked = DeadLetterListRequest(include_resolved=everything)
        return [await c.call(DEAD_LETTERS, asked, service=n, timeout=10) for n in names]

    lists = with_client(gather, data_dir)
    table = Table("id", "subject", "reason", "failed at", "tries", "status", title="Dead letters")
    for found in lists:
        for d in found.dead_letters:
            table.add_row(d.id, escape(d.subject), escape(d.reason[:90]), f"{d.failed_at:%Y-%m-%d %H:%M}",
                          str(d.deliveries), d.status + (f" by {escape(d.resolved_by)}" if d.resolved_by else ""))
    if not any(f.dead_letters for f in lists):
        console.print("No dead letters" + ("." if everything else " open. (`--all` shows resolved ones too.)"))
        return
    console.print(table)
    for found in lists:
        for reason, n in sorted(found.open_by_reason.items(), key=lambda kv: -kv[1]):
            console.print(f"{found.service}: {n} open: {escape(reason)}")
    console.print("Next: `reroute deadletter show ID` to read one; fix the cause, then `reroute deadletter replay ID`.")


@deadletter_app.command("show")
def show_cmd(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id, as `reroute deadletter list` shows it.")],
    body: Annotated[bool, typer.Option("--body", help="Print the message body too (logged: it may hold personal "
                                                      "data).")] = False,
    by: By = "",
    data_dir: DataDir = None,
) -> None:
    """One dead letter: why it failed, where it came from, its headers (and body with --body)."""
    services = _services(dead_letter_id)
    asked = DeadLetterShowRequest(id=dead_letter_id, body=body, asked_by=by or getpass.getuser())
    detail = with_client(lambda c: _first_found(
        services, lambda s: c.call(DEAD_LETTER, asked, service=s, timeout=10)), data_dir)
    d = detail.dead_letter
    console.print(f"[bold]{d.id}[/bold] ({d.status}) failed in {d.service} ({d.consumer}) at "
                  f"{d.failed_at:%Y-%m-%d %H:%M:%S} after {d.deliveries} deliveries")
    console.print(f"subject:  {escape(d.subject)}")
    console.print(f"reason:   {escape(d.reason)}")
    if d.referral_id:
        console.print(f"referral: {d.referral_id}")
    if d.resolved_at:
        console.print(f"resolved: {d.status} by {escape(d.resolved_by or '?')} at {d.resolved_at:%Y-%m-%d %H:%M}: "
                      f"{escape(d.note or '')}")
    for name, value in sorted(detail.headers.items()):
        console.print(f"  {escape(name)}: {escape(value)}", soft_wrap=True)
    if detail.body is not None:
        console.print(detail.body, markup=False, soft_wrap=True)
    else:
        console.print(f"body: {detail.body_bytes} bytes (--body to print it)")


@deadletter_app.command("replay")
def replay_cmd(
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Dead letters whose cause is fixed.")],
    by: By = "",
    data_dir: DataDir = None,
) -> None:
    """Run each through its service once more; each runs at most once, and its events are published once."""
    by_service: dict[str, list[str]] = defaultdict(list)
    parked = [i for i in ids if is_parked_id(i)]
    for i in ids:
        if i not in parked:
            by_service[_services(i)[0]].append(i)

    async def replay(c: ServiceClient) -> list[DeadLetterResults]:
        asked_by = by or getpass.getuser()
        done = [await c.call(REPLAY, DeadLetterReplayRequest(ids=group, asked_by=asked_by), service=s, timeout=60)
                for s, group in by_service.items()]
        for i in parked:  # whichever service parked it puts it back; the others have no such event
            answers = [await c.call(REPLAY, DeadLetterReplayRequest(ids=[i], asked_by=asked_by), service=s,
                                    timeout=60) for s in SERVICES]
            found = [a for a in answers if a.results[0].outcome != "not found"]
            done.append(found[0] if found else answers[0])
        return done

    failed = False
    for results in with_client(replay, data_dir):
        for r in results.results:
            ok = r.outcome == "replayed"
            failed |= not ok
            colour = "green" if ok else "red"
            console.print(f"[{colour}]{r.id}: {r.outcome}[/{colour}]" + (f": {escape(r.detail)}" if r.detail else ""))
    if failed:
        raise typer.Exit(1)


@deadletter_app.command("discard")
def discard_cmd(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id, as `reroute deadletter list` shows it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is set aside for good (recorded).")],
    by: By = "",
    data_dir: DataDir = None,
) -> None:
    """Set one aside for good, with the reason and who decided."""
    asked = DeadLetterDiscardRequest(id=dead_letter_id, reason=reason, asked_by=by or getpass.getuser())

    async def discard(c: ServiceClient) -> DeadLetterResults:
        answers = [await c.call(DISCARD, asked, service=s, timeout=10) for s in _services(dead_letter_id)]
        return next((a for a in answers if a.results[0].outcome != "not found"), answers[0])

    r = with_client(discard, data_dir).results[0]
    if r.outcome != "discarded":
        console.print(f"[red]{r.id}: {r.outcome}[/red]" + (f" ({escape(r.detail)})" if r.detail else ""))
        raise typer.Exit(1)
    console.print(f"{r.id}: discarded ({escape(r.detail)})")
