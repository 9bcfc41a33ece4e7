"""`reroute keys reencrypt`: intake re-encrypts what it stores under the first of its keys, so older ones can go.

The CLI never opens a service's database: it asks intake for one batch at a time (`keys.reencrypt`), each
reply saying what the batch did and which batch comes next, and shows the progress."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from apps.cli.client import ServiceClient
from apps.cli.options import DataDir, with_client
from shared.contracts.intake_rpc import ENCRYPTED_TABLES, REENCRYPT, EncryptedTable, Reencrypted, ReencryptRequest

keys_app = typer.Typer(help="Intake's encryption keys.", no_args_is_help=True)
console = Console()
_COUNTS = ("checked", "reencrypted", "encrypted", "current", "changed", "unreadable")
_WHAT: dict[EncryptedTable, str] = {"referral": "referral bodies", "equality_monitoring": "equality answers",
                                    "dead_letters": "dead letters"}


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
