"""`reroute db upgrade`: migrate every service's database to this version's schema (alembic), the one step that
changes a schema (`reroute up` runs it; a deployment runs it once before the services, e.g. as a Job)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from apps.cli.options import DataDir, settings_for
from apps.cli.output import cli_console
from apps.devstack.processes import SERVICES
from shared.db import make_engine
from shared.migrations import current, head, upgrade_all
from shared.settings import ConfigurationError, ServiceSettings

db_app = typer.Typer(help="The services' database schemas (migrations).", no_args_is_help=True)
console = cli_console()
def _settings(data_dir: Path | None) -> ServiceSettings:
    try:
        return settings_for(data_dir)
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def upgrade_cmd(data_dir: DataDir = None) -> None:
    """Bring every service's database to head (a database made before migrations is adopted). Idempotent."""
    settings = _settings(data_dir)
    try:
        done = upgrade_all(settings)
    except SQLAlchemyError as exc:
        console.print(f"[red]Cannot upgrade: {type(exc).__name__}: {str(exc).splitlines()[0]}[/red]", markup=False)
        raise typer.Exit(1) from None
    table = Table("service", "was", "now", "")
    for d in done:
        note = "adopted from before migrations" if d.adopted else ("up to date" if d.before == d.after else "upgraded")
        table.add_row(d.service, d.before or "(none)", d.after, note)
    console.print(table)


@db_app.command("status")
def status_cmd(data_dir: DataDir = None) -> None:
    """Each service's schema revision against this version's head."""
    settings = _settings(data_dir)
    table = Table("service", "revision", "head", "")
    behind = False
    for service in SERVICES:
        engine = make_engine(service, settings)
        try:
            found, wanted = current(engine), head(service)
        finally:
            engine.dispose()
        behind |= found != wanted
        table.add_row(service, found or "(none)", wanted, "ok" if found == wanted else "run `reroute db upgrade`")
    console.print(table)
    if behind:
        raise typer.Exit(1)
