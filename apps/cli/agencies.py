"""`reroute agencies`: register agencies and manage their HTTP API keys (effective at once, no restart)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from apps.cli.options import AgencyId, DataDir, with_client
from apps.cli.output import cli_console
from shared.contracts.intake_rpc import (
    ADD_AGENCY,
    LIST_AGENCIES,
    REVOKE_AGENCY,
    ROTATE_AGENCY,
    AgencyKeys,
    AgencyRequest,
)
from shared.contracts.rpc import Empty
from shared.nats_auth import AGENCY_JS_API

agencies_app = typer.Typer(help="Agencies and their HTTP API keys.", no_args_is_help=True)
console = cli_console()


def _show_key(result: AgencyKeys, what: str) -> None:
    agency = result.agency
    console.print(f"{what} [bold]{agency.agency_id}[/bold] ({agency.name}). Its HTTP API key:\n")
    console.print(result.api_key, markup=False, soft_wrap=True)
    console.print("\n[yellow]This key cannot be shown again:[/yellow] store it now (a password manager, or the "
                  "agency's secret store) and send it to the agency by a secure channel. Requests authenticate with "
                  "`Authorization: Bearer <key>`. Lost it? `reroute agencies rotate` issues a new one.")
    nats = result.nats
    console.print(f"\nIts NATS credentials (also shown only now): user [bold]{nats.user}[/bold], password",
                  soft_wrap=True)
    console.print(nats.password, markup=False, soft_wrap=True)
    console.print(f"Connect with inbox prefix {nats.inbox_prefix}; it may publish on {' and '.join(nats.publish)} "
                  f"and read {' and '.join(nats.subscribe)}; it binds its durable consumers of its outcomes with the "
                  f"JetStream API prefix {AGENCY_JS_API} (README). The local server started by `reroute up` picks "
                  "the change up within seconds.", soft_wrap=True)


@agencies_app.command("add")
def add(
    agency_id: Annotated[str, typer.Argument(metavar="ID", help="Lower-case letters, digits, - and _, e.g. yot-southwark.")],
    name: Annotated[str, typer.Option(help="The agency's name, e.g. 'Southwark Youth Offending Team'.")],
    data_dir: DataDir = None,
) -> None:
    """Register an agency and print its API key, once."""
    asked = AgencyRequest(agency_id=agency_id, name=name)
    _show_key(with_client(lambda c: c.call(ADD_AGENCY, asked, timeout=15), data_dir), "Registered")


@agencies_app.command("rotate")
def rotate(agency_id: AgencyId, data_dir: DataDir = None) -> None:
    """Issue a new API key (printed once); the old key stops working at once."""
    asked = AgencyRequest(agency_id=agency_id)
    _show_key(with_client(lambda c: c.call(ROTATE_AGENCY, asked, timeout=15), data_dir), "New key for")


@agencies_app.command("revoke")
def revoke(agency_id: AgencyId, data_dir: DataDir = None) -> None:
    """Revoke the agency's API key at once (`rotate` issues a new one)."""
    asked = AgencyRequest(agency_id=agency_id)
    agency = with_client(lambda c: c.call(REVOKE_AGENCY, asked, timeout=15), data_dir).agency
    console.print(f"Revoked the API key of {agency.agency_id} ({agency.name}): its requests now get 401.")


@agencies_app.command("list")
def list_agencies(data_dir: DataDir = None) -> None:
    """Every registered agency and its key's status (never the keys)."""
    agencies = with_client(lambda c: c.call(LIST_AGENCIES, Empty(), timeout=15), data_dir).agencies
    if not agencies:
        console.print("No agencies registered yet: `reroute agencies add ID --name NAME`.")
        return
    table = Table("id", "name", "status", "registered", "key rotated", "revoked")
    for a in agencies:
        status = "[green]active[/green]" if a.status == "active" else "[red]revoked[/red]"
        table.add_row(a.agency_id, a.name, status, _when(a.created_at), _when(a.rotated_at), _when(a.revoked_at))
    console.print(table)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%dT%H:%M}" if moment else "-"
