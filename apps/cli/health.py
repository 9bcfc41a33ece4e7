"""`reroute health`: each service's readiness, throughput, consumers' backlog, outbox and open dead letters, from
its `statistics` request (the same figures the console's Operations overview shows, and its /metrics exports)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from apps.cli.client import ServiceClient
from apps.cli.options import DataDir, with_client
from apps.cli.output import cli_console
from shared.contracts.rpc import SERVICES, STATISTICS, Empty, ServiceError, ServiceStatistics

console = cli_console()


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def health_cmd(
    service: Annotated[str | None, typer.Option(help="Only this service (intake, risk or scheduling).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Each service: ready or not (and why), events published, its consumers' lag, its outbox and dead letters."""
    if service is not None and service not in SERVICES:
        raise typer.BadParameter(f"{service!r} is not a service: intake, risk or scheduling")
    names = [service] if service else list(SERVICES)

    async def gather(c: ServiceClient) -> list[tuple[str, ServiceStatistics | str]]:
        found: list[tuple[str, ServiceStatistics | str]] = []
        for name in names:
            try:
                found.append((name, await c.call(STATISTICS, Empty(), service=name, timeout=5)))
            except ServiceError as exc:
                found.append((name, exc.message))
        return found

    answers = with_client(gather, data_dir)
    services = Table("service", "ready", "published (last min / since start)", "outbox backlog", "parked",
                     "open dead letters", title="Services")
    consumers = Table("service", "consumer", "stream", "lag (not yet delivered)", "awaiting ack", "redelivered",
                      "processed (last min / since start)", title="Consumers (JetStream consumer info)")
    for name, s in answers:
        if isinstance(s, str):
            services.add_row(name, f"[red]no answer[/red]: {escape(s)}", "", "", "", "")
            continue
        ready = "ready" if s.health.ready else f"[red]not ready[/red]: {escape('; '.join(s.health.problems))}"
        services.add_row(name, ready, f"{s.published_last_minute} / {s.published}", _count(s.outbox_backlog),
                         _count(s.outbox_parked), _count(s.dead_letters_open))
        for c in s.consumers:
            consumers.add_row(name, c.durable, c.stream, _count(c.pending), _count(c.ack_pending),
                              _count(c.redelivered), f"{c.processed_last_minute} / {c.processed}")
    console.print(services)
    console.print(consumers)
    if any(isinstance(s, str) or not s.health.ready for _, s in answers):
        raise typer.Exit(1)
