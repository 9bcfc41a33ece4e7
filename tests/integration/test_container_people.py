"""The compose deployment's NATS process (`python -m apps.container.nats`) lets people in as `reroute up`'s server
does: each person's user from intake's registry, kept across a restart of the server, and a removed person's live
connection dropped when it reloads. Its own nats-server with TLS; no containers needed."""

from __future__ import annotations

import asyncio
import secrets
import signal
import ssl
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors
import pytest

from apps.container import certs
from apps.container.nats import NatsContainerSettings, ServerConfig
from apps.devstack.local_nats import free_port, nats_server_binary, port_open
from shared.nats_auth import PersonCredential, hash_password, person_inbox_prefix
from shared.subjects import Subjects
from tests.support.waiting import wait_until

PASSWORD = "pw-sam-" + secrets.token_urlsafe(8)


async def test_people_are_let_in_kept_across_a_restart_and_dropped_when_removed(tmp_path: Path) -> None:
    certs.make(tmp_path, names=["nats"], now=datetime.now(UTC))
    settings = NatsContainerSettings(  # type: ignore[call-arg]
        **{f"{u}_password": secrets.token_urlsafe(24) for u in ("intake", "risk", "scheduling", "operator", "health",
                                                                    "console", "notifier")},
        provisioner_password_hash=hash_password(secrets.token_urlsafe(24)),
        port=free_port(), monitor_port=free_port(), data_dir=tmp_path / "data", tls_cert=tmp_path / "server.crt",
        tls_key=tmp_path / "server.key", tls_ca=tmp_path / "ca.crt")
    settings.data_dir.mkdir()
    sam = PersonCredential("sam", ("scheduler",), hash_password(PASSWORD))
    ServerConfig(settings).write([], [sam])

    config = ServerConfig(settings)  # as a restarted server: what it knew is in the data volume
    assert config.known.load()[1] == [sam]
    config.write(*config.known.load())
    server = await asyncio.create_subprocess_exec(nats_server_binary(), "-c", str(config.path),
                                                  stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    async def quiet(_: Exception) -> None:
        pass

    try:
        await wait_until(lambda: port_open("127.0.0.1", settings.port), timeout=30, what="the NATS server listening")
        context = ssl.create_default_context(cafile=str(settings.tls_ca))
        nc = await nats.connect(f"tls://person-sam:{PASSWORD}@127.0.0.1:{settings.port}", tls=context,
                                tls_hostname="nats", inbox_prefix=person_inbox_prefix("sam").encode(),
                                allow_reconnect=False, closed_cb=on_closed, error_cb=quiet)
        with pytest.raises(nats.errors.NoRespondersError):  # allowed: only no intake here to answer
            await nc.request(Subjects().ask("sam", "intake", "people.whoami"), b"{}", timeout=5)

        config.write([], [])  # sam removed from intake's registry
        server.send_signal(signal.SIGHUP)
        await asyncio.wait_for(closed.wait(), timeout=30)
        assert nc.is_closed
        assert config.known.load()[1] == []
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
