"""`reroute streams provision`: create or update the JetStream streams, the one step that does (`reroute up` runs
it; a deployment runs it once before the services, like its migrations), as the `provisioner` NATS user."""

from __future__ import annotations

import asyncio
from typing import Annotated

import nats.errors
import typer
from rich.table import Table

from apps.cli.client import provisioner_url
from apps.cli.options import DataDir, settings_for
from apps.cli.output import cli_console
from shared.settings import ConfigurationError
from shared.streams import provision_at
from shared.subjects import Subjects

streams_app = typer.Typer(help="The JetStream streams reroute runs on.", no_args_is_help=True)
console = cli_console()


@streams_app.command("provision")
def provision_cmd(
    replicas: Annotated[int | None, typer.Option(
        min=1, max=5, help="Replicas per stream (default REROUTE_STREAM_REPLICAS, 1); never lowered.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create every stream, or bring an existing one to this version's settings (idempotent)."""
    try:
        settings = settings_for(data_dir)
        servers = [u.strip() for u in provisioner_url(settings).split(",") if u.strip()]
        done = asyncio.run(provision_at(servers, Subjects(settings.namespace),
                                        replicas=replicas or settings.stream_replicas))
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        console.print(f"[red]Cannot provision the streams: {type(exc).__name__}: {exc}[/red]", markup=False)
        raise typer.Exit(1) from None
    table = Table("stream", "action", "replicas")
    for p in done:
        table.add_row(p.stream, p.action, str(p.replicas))
    console.print(table)
