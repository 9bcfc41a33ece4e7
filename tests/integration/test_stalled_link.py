"""A server that is alive but reads nothing (paused: a network dropping packets silently looks the same to a client,
which notices only after two missed pings, minutes later). The relay's publishes and a batch's acks must still give up
within their bound, so the consumer goes on (what was not confirmed is sent again; what was not acked is redelivered),
instead of waiting for as long as the link stays stalled: nats-py's publish swallows the cancellation that ends a write
blocked on a full buffer, and the next write would block again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from apps.devstack.local_nats import start_nats_server
from shared.messaging import SETTLE_SECONDS, _settle_each
from shared.outbox import NoAnswer, PubAcks

LOTS = 4000
"""Writes of 8 KB each: 32 MB, far more than the client's buffer and the sockets' take, so the writes block."""


@dataclass
class Paused:
    nc: Client
    proc: subprocess.Popen[bytes]


@pytest.fixture
async def stalled(tmp_path: Path) -> AsyncIterator[Paused]:
    """A private nats-server with a stream on `s.>`, a client connected, then the server paused (SIGSTOP)."""
    proc, url = start_nats_server(tmp_path / "js")
    nc = await nats.connect(url, inbox_prefix="_INBOX_risk", max_reconnect_attempts=-1, reconnect_time_wait=1)
    try:
        await nc.jetstream().add_stream(StreamConfig(name="S", subjects=["s.>"]))
        assert await PubAcks(nc).publish([("s.warm", b"up", {})], timeout=5) == [None]
        os.kill(proc.pid, signal.SIGSTOP)
        yield Paused(nc, proc)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        await nc.close()
        proc.terminate()
        proc.wait(timeout=10)


async def test_the_relays_publishes_give_up_within_their_bound_on_a_stalled_link(stalled: Paused) -> None:
    messages = [("s.x", b"x" * 8000, {"Nats-Msg-Id": f"m{i}"}) for i in range(LOTS)]
    publishing = asyncio.ensure_future(PubAcks(stalled.nc).publish(messages, timeout=1))

    done, _ = await asyncio.wait({publishing}, timeout=15)  # a generous margin over the 1 s bound, for a busy machine

    assert done, "the publishes waited on the stalled link past their bound"
    outcomes = publishing.result()
    assert len(outcomes) == LOTS and isinstance(outcomes[-1], NoAnswer), "not written, so not confirmed: sent again"


async def test_a_batchs_acks_give_up_within_their_bound_on_a_stalled_link(stalled: Paused) -> None:
    written = 0

    async def ack() -> None:  # an ack is a publish to the server, as each of these is
        nonlocal written
        await stalled.nc.publish("s.acks", b"x" * 8000)
        written += 1

    acking = asyncio.ensure_future(_settle_each(ack for _ in range(LOTS)))

    done, _ = await asyncio.wait({acking}, timeout=SETTLE_SECONDS + 10)

    assert done, "the acks waited on the stalled link past their bound"
    assert written < LOTS, "the link never stalled: this test checked nothing"
