"""`reroute keys reencrypt` and `reroute keys rematch`: intake re-encrypts what it stores under the first of its
encryption keys, and stores every person under the first of its matching keys, so older ones can go.

The CLI never opens a service's database: it asks intake for one batch at a time (`keys.reencrypt`,
`keys.rematch`), each reply saying what the batch did and which batch comes next, and shows the progress."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from apps.cli.client import ServiceClient
from apps.cli.options import DataDir, with_client
from apps.cli.output import cli_console
from shared.contracts.intake_rpc import (
    ENCRYPTED_TABLES,
    REENCRYPT,
    REMATCH,
    EncryptedTable,
    Reencrypted,
    ReencryptRequest,
    Rematched,
    RematchRequest,
)

keys_app = typer.Typer(help="Intake's encryption keys.", no_args_is_help=True)
console = cli_console()
_COUNTS = ("checked", "reencrypted", "encrypted", "current", "changed", "unreadable")
_WHAT: dict[EncryptedTable, str] = {"referral": "referral bodies", "equality_monitoring": "equality answers",
                                    "dead_letters": "dead letters",
                                    "console_credential": "authenticator secrets"}


@keys_app.command("reencrypt")
def reencrypt_cmd(
    batch: Annotated[int, typer.Option(min=1, max=2000, help="Rows per batch (one transaction each).")] = 200,
    data_dir: DataDir = None,
) -> None:
    """Re-encrypt everything intake keeps encrypted (referral bodies, equality answers, sealed dead letters) under
    the first key of REROUTE_INTAKE_ENCRYPTION_KEY. Run it once every intake replica has the new key in front;
    afterwards the older keys can be removed. Safe to interrupt and to run again."""
    totals = with_client(lambda client: _run(client, batch), data_dir)
    table = Table("stored", "checked", "re-encrypted", "plain, now encrypted", "under the first key already",
                  "written meanwhile", "unreadable")
    for name, counts in totals.items():
        table.add_row(_WHAT[name], *(str(counts[c]) for c in _COUNTS))
    console.print(table)
    unreadable = sum(counts["unreadable"] for counts in totals.values())
    if unreadable:
        console.print(f"[red]{unreadable} value(s) cannot be decrypted with any configured key[/red] (intake's log "
                      "names them): they are left as they were. Keep every key until you know why.")
        raise typer.Exit(1)
    console.print("Everything intake stores is under the first key. You can now remove the older keys from "
                  "REROUTE_INTAKE_ENCRYPTION_KEY and restart intake (every replica had the new key in front while "
                  "this ran? if unsure, run this again first: it should re-encrypt nothing).")


async def _run(client: ServiceClient, batch: int) -> dict[EncryptedTable, dict[str, int]]:
    totals = {name: dict.fromkeys(_COUNTS, 0) for name in ENCRYPTED_TABLES}
    request: ReencryptRequest | None = ReencryptRequest(limit=batch)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        tasks: dict[EncryptedTable, TaskID] = {}
        while request is not None:
            done: Reencrypted = await client.call(REENCRYPT, request, timeout=60)
            if done.table not in tasks:
                tasks[done.table] = progress.add_task(_WHAT[done.table], total=done.total)
            progress.update(tasks[done.table], advance=done.checked, total=max(done.total, done.checked))
            for count in _COUNTS:
                totals[done.table][count] += getattr(done, count)
            request = done.next
    return totals


_PEOPLE = ("checked", "rematched", "merged", "current", "forgotten", "changed", "unreadable")


@keys_app.command("rematch")
def rematch_cmd(
    batch: Annotated[int, typer.Option(min=1, max=2000, help="People per batch (one transaction each).")] = 200,
    data_dir: DataDir = None,
) -> None:
    """Store every young person intake recognises under the first key of REROUTE_INTAKE_MATCHING_KEY and the
    current way of comparing names (look-alike letters from other scripts are the same), recomputed from their
    latest referral; two records of one person are merged. Run it after upgrading, and after putting a new
    matching key in front of the old one; afterwards the old key can be removed. Safe to interrupt and to run
    again: until it has finished, people not yet moved are still recognised under the old key."""
    counts = with_client(lambda client: _rematch(client, batch), data_dir)
    table = Table("people checked", "moved to the current key", "merged (one person recorded twice)",
                  "current already", "no referral left (hash deleted)", "changed meanwhile", "unreadable")
    table.add_row(*(str(counts[c]) for c in _PEOPLE))
    console.print(table)
    if counts["unreadable"]:
        console.print(f"[red]{counts['unreadable']} person(s) cannot be re-matched[/red]: their latest referral "
                      "cannot be decrypted with the configured encryption keys (intake's log names them). Keep the "
                      "old matching key until you know why.")
        raise typer.Exit(1)
    if counts["changed"]:
        console.print("Some people changed while this ran: run it again to check them.")
        raise typer.Exit(1)
    console.print("Every person is stored under the first matching key. You can now remove the older keys from "
                  "REROUTE_INTAKE_MATCHING_KEY and restart intake.")


async def _rematch(client: ServiceClient, batch: int) -> dict[str, int]:
    counts = dict.fromkeys(_PEOPLE, 0)
    request: RematchRequest | None = RematchRequest(limit=batch)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        task: TaskID | None = None
        while request is not None:
            done: Rematched = await client.call(REMATCH, request, timeout=60)
            if task is None:
                task = progress.add_task("people", total=done.total)
            progress.update(task, advance=done.checked, total=max(done.total, done.checked))
            for count in _PEOPLE:
                counts[count] += getattr(done, count)
            request = done.next
    return counts
