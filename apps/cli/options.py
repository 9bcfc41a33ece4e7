"""What every `reroute` command shares: the `--data-dir` option, resolved in one place, and a NATS client run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from apps.cli.client import ServiceClient, connect
from shared.settings import ServiceSettings

T = TypeVar("T")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default ./.reroute or REROUTE_DATA_DIR).")]


def settings_for(data_dir: Path | None) -> ServiceSettings:
    """The settings a command acts with: `--data-dir` when given, else REROUTE_DATA_DIR, else ./.reroute; the
    rest from the environment, as the services read it. The process environment is never changed."""
    return ServiceSettings(data_dir=data_dir) if data_dir is not None else ServiceSettings()


def with_client(fn: Callable[[ServiceClient], Awaitable[T]], data_dir: Path | None) -> T:
    """Connect as the operator, run `fn` with the client, and disconnect."""
    async def main() -> T:
        async with connect(settings_for(data_dir)) as client:
            return await fn(client)

    return asyncio.run(main())
