"""NATS permissions against a real nats-server: agencies confined to their own traffic."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.aio.client
import nats.aio.msg
import nats.errors
import pytest

from shared.local_nats import free_port, nats_server_binary, port_open
from shared.nats_auth import admin_user, agency_user, hash_password, inbox_prefix, render_config, service_user

PASSWORDS = {"a": "pw-a", "b": "pw-b", "intake": "pw-intake", "risk": "pw-risk", "scheduling": "pw-sched",
             "operator": "pw-op"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("nats-auth")
    port = free_port()
    users = [agency_user("a", hash_password(PASSWORDS["a"])), agency_user("b", hash_password(PASSWORDS["b"])),
             *(service_user(s, hash_password(PASSWORDS[s])) for s in ("intake", "risk", "scheduling")),
             admin_user(hash_password(PASSWORDS["operator"]))]
    conf = store / "auth.conf"
    conf.write_text(render_config(users, host="127.0.0.1", port=port, store_dir=store / "js"))
    proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        if port_open("127.0.0.1", port):
            break
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


class Errors:
    """Collects the server's asynchronous -ERR messages (permission violations arrive this way)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def callback(self, exc: Exception) -> None:
        self.seen.append(str(exc))


@pytest.fixture
async def streams(server: str) -> AsyncIterator[None]:
    nc = await nats.connect(f"nats://operator:{PASSWORDS['operator']}@{server}")
    js = nc.jetstream()
    await js.add_stream(name="REFERRALS", subjects=["referrals.>"])
    await js.add_stream(name="RISK", subjects=["risk.>"])
    yield
    await nc.close()


async def _agency(server: str, agency: str, errors: Errors) -> nats.aio.client.Client:
    return await nats.connect(f"nats://agency-{agency}:{PASSWORDS[agency]}@{server}", error_cb=errors.callback,
                              inbox_prefix=inbox_prefix(agency).encode(), max_reconnect_attempts=1)


async def test_an_agency_may_publish_its_own_referrals(server: str, streams: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    ack = await nc.jetstream().publish("referrals.submitted.a", b"{}")
    assert ack.stream == "REFERRALS"
    await nc.close()


async def test_an_agency_cannot_publish_as_another(server: str, streams: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.jetstream().publish("referrals.submitted.b", b"{}", timeout=1)
    await nc.flush()
    await asyncio.sleep(0.2)
    assert any('permissions violation for publish to "referrals.submitted.b"' in e.lower() for e in errors.seen), (
        errors.seen)
    await nc.close()


@pytest.mark.parametrize("subject", ["referrals.accepted.b", "sessions.scheduled.b", "risk.>", "safeguarding.>",
                                     "risk.assessed.a", "$JS.API.>"])
async def test_an_agency_cannot_read_what_is_not_its_own(server: str, streams: None, subject: str) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    await nc.subscribe(subject)
    await nc.flush()
    await asyncio.sleep(0.2)
    assert any(f"permissions violation for subscription to \"{subject.lower()}\"" in e.lower() for e in errors.seen), (
        errors.seen)
    await nc.close()


async def test_an_agency_cannot_touch_streams(server: str, streams: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.jetstream().stream_info("RISK")
    await nc.close()


async def test_an_agency_reads_its_own_outcomes(server: str, streams: None) -> None:
    errors = Errors()
    nc = await _agency(server, "a", errors)
    got: list[bytes] = []
    async def collect(msg: nats.aio.msg.Msg) -> None:
        got.append(msg.data)

    await nc.subscribe("referrals.accepted.a", cb=collect)
    await nc.flush()
    intake = await nats.connect(f"nats://intake:{PASSWORDS['intake']}@{server}")
    await intake.publish("referrals.accepted.a", b"ok")
    await intake.flush()
    await asyncio.sleep(0.2)
    assert got == [b"ok"] and not errors.seen
    await intake.close()
    await nc.close()


async def test_a_service_publishes_only_its_own_events(server: str, streams: None) -> None:
    errors = Errors()
    risk = await nats.connect(f"nats://risk:{PASSWORDS['risk']}@{server}", error_cb=errors.callback)
    await risk.publish("risk.assessed.a", b"{}")
    await risk.publish("referrals.accepted.a", b"{}")
    await risk.flush()
    await asyncio.sleep(0.2)
    assert len(errors.seen) == 1 and "referrals.accepted.a" in errors.seen[0]
    await risk.close()


async def test_a_new_agency_is_admitted_after_a_reload_and_a_revoked_one_shut_out(tmp_path: Path) -> None:
    import signal

    from shared.local_nats import start_nats_server
    from shared.nats_auth import AgencyCredential, LocalCredentials, NatsAuthFile

    creds = LocalCredentials.load_or_create(tmp_path / "creds.json")
    auth = NatsAuthFile(tmp_path / "auth.conf", creds)
    auth.write(agencies=[])
    proc, url = start_nats_server(tmp_path / "js", config=auth.path)
    try:
        base = url.removeprefix("nats://")
        with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
            await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1, allow_reconnect=False)
        agency_c = [AgencyCredential("c", hash_password("pw-c"))]
        assert auth.write(agencies=agency_c)
        assert not auth.write(agencies=list(agency_c)), "unchanged: nothing to reload"
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        nc = await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1,
                                inbox_prefix=inbox_prefix("c").encode())
        await nc.publish("referrals.submitted.c", b"{}")
        await nc.flush()
        await nc.close()
        auth.write(agencies=[])
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
            await nats.connect(f"nats://agency-c:pw-c@{base}", max_reconnect_attempts=1, allow_reconnect=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
