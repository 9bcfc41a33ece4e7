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

# The positional arguments, named in usage lines as the README names them (upper case), each with its help.
ReferralId = Annotated[str, typer.Argument(
    metavar="REFERRAL_ID", help="Our referral id (ref_…), as `reroute submit` and `reroute status` show it.")]
MentorId = Annotated[str, typer.Argument(metavar="MENTOR_ID", help="The mentor's id, as `reroute mentors list` shows it.")]
SessionId = Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id, as `reroute calendar` shows it.")]
PersonId = Annotated[str, typer.Argument(
    metavar="PERSON_ID", help="The young person's id, as `reroute person find` shows it.")]
AgencyId = Annotated[str, typer.Argument(metavar="ID", help="The agency's id, as `reroute agencies list` shows it.")]
StaffName = Annotated[str, typer.Argument(metavar="NAME", help="The person's id, as `reroute people list` shows it.")]
