"""Each agency in a NATS account of its own (shared/nats_auth.py), against real nats-servers: streams an earlier
version made in the global account are moved into the services' account with their messages and consumers'
positions (and never over this version's); an agency added while the server runs can submit once the container's
NATS process has reloaded it; the console answers no request onto an agency's subjects."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import uuid
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from apps.console.erasure import SpanErasure
from apps.container.nats import NatsContainerSettings, adopt_earlier_streams, reload
from apps.devstack.local_nats import free_port, nats_server_binary, port_open, start_nats_server
from shared.contracts.rpc import ERASE_SPANS
from shared.nats_auth import (
    AGENCY_JS_API,
    SERVICES_ACCOUNT,
    StoreConflict,
    agency_inbox_prefix,
    agency_user,
    hash_password,
    inbox_prefix,
    move_streams_into_account,
    provisioner_user,
    render_config,
)
from shared.span_store import SpanStore
from shared.streams import provision
from shared.subjects import Subjects
from tests.support.observer import OBSERVER, observer_user
from tests.support.waiting import wait_until

PASSWORD = "pw-accounts"
S = Subjects()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


async def test_streams_made_before_the_accounts_move_into_the_services_account_with_their_consumers_positions(
    tmp_path: Path,
) -> None:
    store = tmp_path / "nats"
    before, url = start_nats_server(store)  # an earlier version's server: no accounts, so everything in `$G`
    try:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="EARLIER", subjects=["earlier.>"]))
        for n in range(3):
            await js.publish(f"earlier.{n}", str(n).encode())
        await js.add_consumer("EARLIER", ConsumerConfig(durable_name="reader", ack_policy=AckPolicy.EXPLICIT))
        sub = await js.pull_subscribe_bind("reader", stream="EARLIER")
        (first,) = await sub.fetch(1, timeout=5)
        await first.ack_sync()
        await nc.close()
    finally:
        _stop(before)
    assert (store / "jetstream" / "$G" / "streams" / "EARLIER").is_dir()

    assert move_streams_into_account(store)
    assert not move_streams_into_account(store), "once moved, nothing is left to move"

    conf = tmp_path / "auth.conf"
    conf.write_text(render_config([observer_user(hash_password(PASSWORD))]))
    after, url = start_nats_server(store, config=conf)
    try:
        nc = await nats.connect(url.replace("nats://", f"nats://{OBSERVER}:{PASSWORD}@"))
        js = nc.jetstream()
        assert (await js.stream_info("EARLIER")).state.messages == 3
        reader = await js.consumer_info("EARLIER", "reader")
        assert reader.ack_floor is not None and reader.ack_floor.stream_seq == 1, "where its reader had got to"
        assert reader.num_pending == 2
        await nc.close()
    finally:
        _stop(after)


def _settings(tmp_path: Path, *, routes: list[str]) -> NatsContainerSettings:
    return NatsContainerSettings(  # type: ignore[call-arg]
        **{f"{u}_password": "x" * 24 for u in ("intake", "risk", "scheduling", "operator", "health", "console",
                                               "notifier")},
        provisioner_password_hash=hash_password("y" * 24), data_dir=tmp_path, tls_cert=tmp_path / "server.crt",
        tls_key=tmp_path / "server.key", tls_ca=tmp_path / "ca.crt", routes=routes, server_name="nats-0")


def test_the_container_moves_a_single_servers_streams_and_tells_a_cluster_how_to_upgrade(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    single, node = tmp_path / "single", tmp_path / "node"
    for data in (single, node):
        (data / "jetstream" / "$G" / "streams" / "REFERRALS").mkdir(parents=True)

    adopt_earlier_streams(_settings(single, routes=[]))
    with caplog.at_level(logging.ERROR, logger="apps.container.nats"):
        adopt_earlier_streams(_settings(node, routes=["nats-1:6222"]))

    assert (single / "jetstream" / SERVICES_ACCOUNT / "streams" / "REFERRALS").is_dir()
    assert not (single / "jetstream" / "$G").exists()
    assert (node / "jetstream" / "$G" / "streams" / "REFERRALS").is_dir(), "a cluster node's streams are left"
    assert "Upgrading from a version without accounts" in caplog.text and "deploy/nats-auth.md" in caplog.text


async def test_an_agency_added_while_the_container_server_runs_can_submit_once_reloaded(tmp_path: Path) -> None:
    """The container's NATS process reloads twice for a new agency (an account added by one reload reaches the
    services' account only at the next), each once the server's monitoring says it has loaded the one before."""
    port, monitor = free_port(), free_port()
    provisioner = provisioner_user(hash_password(PASSWORD))
    conf = tmp_path / "nats.conf"

    def write(*agencies: str) -> None:
        config = json.loads(render_config([provisioner, *(agency_user(a, hash_password(PASSWORD)) for a in agencies)],
                                          host="127.0.0.1", port=port, store_dir=tmp_path / "store"))
        conf.write_text(json.dumps({**config, "http": f"127.0.0.1:{monitor}"}))

    write()
    server = await asyncio.create_subprocess_exec(nats_server_binary(), "-c", str(conf), "-l", str(tmp_path / "log"))
    try:
        await wait_until(lambda: port_open("127.0.0.1", port) and port_open("127.0.0.1", monitor), timeout=10,
                         what="the server listening")
        nc = await nats.connect(f"nats://provisioner:{PASSWORD}@127.0.0.1:{port}",
                                inbox_prefix=inbox_prefix("provisioner").encode())
        await provision(nc.jetstream(), S, replicas=1)
        await nc.close()

        write("newcomer")
        await reload(server, monitor, times=2)

        agency = await nats.connect(f"nats://agency-newcomer:{PASSWORD}@127.0.0.1:{port}",
                                    inbox_prefix=agency_inbox_prefix("newcomer").encode())
        ack = await agency.jetstream(prefix=AGENCY_JS_API).publish(S.submitted("newcomer"), b"{}", timeout=5)
        await agency.close()
        assert ack.stream == S.submissions_stream
    finally:
        server.terminate()
        await server.wait()


def test_a_store_with_streams_of_both_versions_is_refused_and_an_empty_earlier_one_is_not(tmp_path: Path) -> None:
    """An earlier version started again after this one made new streams in `$G`: neither set is dropped unasked."""
    both, empty = tmp_path / "both", tmp_path / "empty"
    for store in (both, empty):
        (store / "jetstream" / SERVICES_ACCOUNT / "streams" / "SUBMISSIONS").mkdir(parents=True)
    (both / "jetstream" / "$G" / "streams" / "SUBMISSIONS").mkdir(parents=True)
    (empty / "jetstream" / "$G").mkdir()

    with pytest.raises(StoreConflict, match=r"both \$G .* and REROUTE"):
        move_streams_into_account(both)
    with pytest.raises(StoreConflict):
        adopt_earlier_streams(_settings(both, routes=[]))
    assert not move_streams_into_account(empty)
    assert (both / "jetstream" / "$G" / "streams" / "SUBMISSIONS").is_dir(), "nothing moved or removed"


async def test_the_consoles_span_erasure_answers_onto_no_agencys_subject(tmp_path: Path) -> None:
    """As the services (tests/e2e/test_agency_outcomes.py): a request whose reply subject is not an inbox, or is an
    agency's, is not answered; one with an inbox after it is."""
    s = Subjects(f"t{uuid.uuid4().hex[:8]}")
    erasure = SpanErasure(SpanStore(tmp_path / "spans.db"))
    nc = await nats.connect("nats://127.0.0.1:4222")
    heard: list[str] = []

    async def hear(msg: Msg) -> None:
        heard.append(msg.subject)

    aimed = [s.accepted("yot"), "_INBOX_AGENCY.yot.outcomes.REFERRALS"]
    try:
        for subject in aimed:
            await nc.subscribe(subject, cb=hear)
        await erasure.start(nc, s)
        for subject in aimed:
            await nc.publish(s.rpc("console", ERASE_SPANS.verb), b'{"referral_ids": []}', reply=subject)
        answer = await nc.request(s.rpc("console", ERASE_SPANS.verb), b'{"referral_ids": []}', timeout=10)
        await nc.flush()
        assert json.loads(answer.data)["service"] == "console"
        assert heard == [], f"answered onto {heard}"
    finally:
        await erasure.stop()
        await nc.close()
