"""`reroute people`: the people who use reroute, each with their own identity, roles and credentials."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import nats
import nats.errors
import typer
from rich.table import Table

from apps.cli.client import connect, person_url, refuse_existing, write_credentials
from apps.cli.options import DataDir, StaffName, settings_for, with_client
from apps.cli.output import cli_console
from shared.contracts.intake_rpc import (
    ADD_PERSON,
    BOOTSTRAP_ADMIN,
    ISSUE_CONSOLE_PASSWORD,
    LIST_PEOPLE,
    REMOVE_PERSON,
    WHOAMI,
    PersonIdRequest,
    StaffAdded,
    StaffRequest,
    WhoAmIRequest,
)
from shared.contracts.rpc import Empty, Role

LET_IN_SECONDS = 15.0

people_app = typer.Typer(help="People who use reroute: their identities and roles.", no_args_is_help=True)
console = cli_console()

Out = Annotated[Path | None, typer.Option("--out", help="Where to write their credentials (default ./ID.credentials"
                                                       ".json; never over an existing file).")]


def _handed_out(added: StaffAdded, out: Path, data_dir: Path | None) -> None:
    write_credentials(out, added.credentials)
    member = added.member
    console.print(f"{member.person_id} may now act as {', '.join(member.roles)}. Their credentials are in {out} "
                  "(readable by you alone, and shown nowhere else: reroute keeps only a hash). Give the file to "
                  f"{member.person_id} by a secure channel; they set REROUTE_CREDENTIALS to its path.", markup=False,
                  soft_wrap=True)
    if asyncio.run(_let_in(person_url(settings_for(data_dir), added.credentials))):
        console.print("The NATS server lets them in now.", markup=False)
    else:
        console.print(f"The NATS server has not let them in within {LET_IN_SECONDS:g} s: it does once it reloads its "
                      "users from intake's registry (`reroute up` and the compose NATS do every few seconds; "
                      "deploy/nats-auth.md).", markup=False, soft_wrap=True)


async def _let_in(url: str) -> bool:
    """Whether the server lets the new person in within LET_IN_SECONDS (it reloads its users on its own time)."""
    deadline = time.monotonic() + LET_IN_SECONDS
    while True:
        try:
            await (await nats.connect(url.split(","), allow_reconnect=False, connect_timeout=2,
                                      error_cb=_quiet)).close()
            return True
        except (OSError, TimeoutError, nats.errors.Error):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)


async def _quiet(_: Exception) -> None:
    pass


@people_app.command("add")
def add(
    person_id: Annotated[str, typer.Argument(metavar="NAME", help="Lower-case letters, digits, - and _, e.g. sam-okafor.")],
    role: Annotated[list[Role], typer.Option("--role", help="What they may do (repeat for several roles).")],
    out: Out = None,
    data_dir: DataDir = None,
) -> None:
    """Give a person their own identity and roles, and write their credentials file."""
    path = out or Path(f"{person_id}.credentials.json")
    refuse_existing(path)
    asked = StaffRequest(person_id=person_id, roles=role)
    _handed_out(with_client(lambda c: c.call(ADD_PERSON, asked, timeout=15), data_dir), path, data_dir)


@people_app.command("remove")
def remove(person_id: StaffName, data_dir: DataDir = None) -> None:
    """Remove a person: their credentials stop working and their live connections are dropped within seconds."""
    asked = PersonIdRequest(person_id=person_id)
    member = with_client(lambda c: c.call(REMOVE_PERSON, asked, timeout=15), data_dir).member
    console.print(f"Removed {member.person_id}: the NATS server drops their connections as it reloads its users "
                  "(within seconds on `reroute up`'s server).", markup=False)


@people_app.command("list")
def list_people(data_dir: DataDir = None) -> None:
    """Every person, their roles and status (never credentials)."""
    people = with_client(lambda c: c.call(LIST_PEOPLE, Empty(), timeout=15), data_dir).people
    table = Table("person", "roles", "status", "added", "removed")
    for p in people:
        table.add_row(p.person_id, ", ".join(p.roles), p.status, _when(p.created_at), _when(p.removed_at))
    console.print(table)


@people_app.command("console-password")
def console_password(
    person_id: Annotated[str, typer.Argument(metavar="NAME", help="The person who is to log in to the web console.")],
    data_dir: DataDir = None,
) -> None:
    """Issue a one-time password for a person's web console log-in (replacing any they had, and lifting a lock-out
    after wrong passwords). Shown once; at their first log-in with it they choose their own."""
    asked = PersonIdRequest(person_id=person_id)
    issued = with_client(lambda c: c.call(ISSUE_CONSOLE_PASSWORD, asked, timeout=15), data_dir)
    console.print(f"One-time console password for {issued.person_id}: {issued.one_time_password}", markup=False,
                  soft_wrap=True)
    console.print("Give it to them by a secure channel; it is shown nowhere else (reroute keeps only a hash). At their "
                  "first log-in they choose their own password.", markup=False, soft_wrap=True)


@people_app.command("whoami")
def whoami(data_dir: DataDir = None) -> None:
    """Who the services take you to be, and your roles."""
    me = with_client(lambda c: c.call(WHOAMI, WhoAmIRequest(), timeout=15), data_dir)
    console.print(f"{me.person_id}: {', '.join(me.roles)}", markup=False)


@people_app.command("bootstrap")
def bootstrap(
    person_id: Annotated[str, typer.Argument(metavar="NAME", help="The first admin's id.")],
    out: Out = None,
    data_dir: DataDir = None,
) -> None:
    """Make the first admin of a deployment, as the installation's operator account (NATS_URL with the operator's
    user); refused once any admin exists. `reroute up` does this by itself for local use."""
    path = out or Path(f"{person_id}.credentials.json")
    refuse_existing(path)

    async def ask() -> StaffAdded:
        async with connect(settings_for(data_dir), as_operator=True) as client:
            return await client.call(BOOTSTRAP_ADMIN, StaffRequest(person_id=person_id, roles=[Role.ADMIN]),
                                     timeout=15)

    _handed_out(asyncio.run(ask()), path, data_dir)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%dT%H:%M}" if moment else "-"
