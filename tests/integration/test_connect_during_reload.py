"""A person's CLI is let in while `reroute up`'s nats-server reloads its users: the server refuses every user for a
moment during a reload (nats-server 2.15: `Authorization Violation`, logged as an authentication error, for a user
whose entry did not change), and `reroute up` reloads whenever people or agencies change (`reroute up --demo` adds
its demo people just before it says it is running), so `connect` tries a refused connection again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.cli.client import CliError, connect
from apps.cli.up import ReloadLog
from apps.devstack.local_nats import start_nats_server
from shared.contracts.intake_rpc import PersonCredentials
from shared.contracts.rpc import Role
from shared.nats_auth import (
    LocalCredentials,
    NatsAuthFile,
    PersonCredential,
    hash_password,
    person_inbox_prefix,
    person_nats_user,
)
from shared.settings import ServiceSettings
from tests.support.waiting import wait_until

PASSWORD = "pw-reload-admin"
RELOADS = 20
CLIENTS = 4


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    auth: NatsAuthFile
    log: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    auth = NatsAuthFile(tmp_path / "nats-auth.conf", LocalCredentials.load_or_create(tmp_path / "creds.json"))
    auth.write(agencies=[], people=[PersonCredential("admin", ("admin",), hash_password(PASSWORD))])
    proc, url = start_nats_server(tmp_path / "nats", config=auth.path, log_file=tmp_path / "nats.log")
    yield Server(proc, url, auth, tmp_path / "nats.log")
    proc.terminate()
    proc.wait(timeout=10)


async def reload_with(server: Server, people: list[PersonCredential]) -> None:
    """As `reroute up`'s sync does: the users written with these people, and the server reloaded, until it says so."""
    server.auth.write(agencies=[], people=people)
    log = ReloadLog(server.log)
    server.proc.send_signal(signal.SIGHUP)
    await wait_until(lambda: log.said() is True, timeout=10, every=0.02, what="the reload")


async def connected_again(connected: list[int], refused: list[str]) -> None:
    """Every client connects once more (or one is refused)."""
    before = list(connected)
    await wait_until(lambda: bool(refused) or all(a > b for a, b in zip(connected, before, strict=True)),
                     timeout=30, every=0.02, what="a connection of every client")


async def test_a_person_connecting_while_the_server_reloads_its_users_is_let_in(
        server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "admin.json"
    credentials.write_text(PersonCredentials(person_id="admin", roles=[Role.ADMIN], nats_user=person_nats_user("admin"),
                                             password=PASSWORD, inbox_prefix=person_inbox_prefix("admin"))
                           .model_dump_json())
    monkeypatch.setenv("REROUTE_CREDENTIALS", str(credentials))
    settings = ServiceSettings(data_dir=tmp_path, NATS_URL=server.url, namespace="")  # type: ignore[call-arg]
    admin = PersonCredential("admin", ("admin",), hash_password(PASSWORD))
    connected = [0] * CLIENTS
    refused: list[str] = []
    done = asyncio.Event()

    async def keep_connecting(client: int) -> None:
        while not done.is_set():
            try:
                async with connect(settings):
                    connected[client] += 1
            except CliError as exc:
                refused.append(str(exc))
                return

    clients = [asyncio.create_task(keep_connecting(n)) for n in range(CLIENTS)]
    try:
        for n in range(RELOADS):  # each time another person, as when people are added
            await reload_with(server, [admin, PersonCredential(f"p{n}", ("dsl",), hash_password("x"))])
            await connected_again(connected, refused)  # after this reload, before the next
            assert not refused, refused
    finally:
        done.set()
        await asyncio.gather(*clients)
    assert not refused, refused
