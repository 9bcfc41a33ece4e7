"""The outbox relay against a real nats-server: an event NATS refuses for good is parked, with its reason and time,
and the rows behind it are published; one that merely was not confirmed stays unsent and goes out later, with the
same Nats-Msg-Id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.errors import ConnectionClosedError
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NoStreamResponseError
from sqlalchemy import Engine, insert, select
from sqlmodel import SQLModel, col

from apps.devstack.local_nats import start_nats_server
from shared import deadletters
from shared.db import DatabaseThread, make_engine
from shared.deadletters import DeadLetterRow
from shared.outbox import NoAnswer, OutboxRelay, OutboxRow, PubAcks, refused_for_good
from shared.settings import ServiceSettings


@dataclass
class Outbox:
    engine: Engine
    database: DatabaseThread

    def add(self, event_id: str, subject: str, payload: bytes, *, created_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(OutboxRow).values(event_id=event_id, subject=subject, payload=payload, headers="{}",
                                                  created_at=created_at))

    def row(self, event_id: str) -> OutboxRow:
        with self.engine.connect() as conn:
            return OutboxRow(**conn.execute(select(OutboxRow).where(col(OutboxRow.event_id) == event_id))
                             .mappings().one())


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    engine = make_engine("svc", ServiceSettings(data_dir=tmp_path, DATABASE_URL=None))  # type: ignore[call-arg]
    tables = [OutboxRow.__table__, DeadLetterRow.__table__]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=tables)
    database = DatabaseThread("svc", engine)
    yield Outbox(engine, database)
    database.close()
    engine.dispose()


@pytest.fixture
async def small_server(tmp_path: Path) -> AsyncIterator[Client]:
    """A nats-server that carries at most 4 KiB per message, and a client connected to it."""
    config = tmp_path / "nats.conf"
    config.write_text("max_payload: 4096\n")
    proc, url = start_nats_server(tmp_path / "js", config=config)
    nc = await nats.connect(url)
    try:
        yield nc
    finally:
        await nc.close()
        proc.terminate()
        proc.wait(timeout=10)


async def _stored(nc: Client, stream: str) -> list[str]:
    js = nc.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    return [(await js.get_msg(stream, seq)).header["Nats-Msg-Id"] for seq in range(1, last + 1)]  # type: ignore[index]


async def test_an_event_over_the_servers_max_payload_is_parked_and_the_rows_behind_it_are_published(
    small_server: Client, outbox: Outbox
) -> None:
    js = small_server.jetstream()
    await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"]))
    before = datetime.now(UTC) - timedelta(minutes=1)
    outbox.add("e1", "events.a", b"first", created_at=before)
    outbox.add("big", "events.a", b'{"referral_id": "ref_0123456789abcdef"}' + b" " * 5000,
               created_at=before + timedelta(seconds=1))
    outbox.add("e2", "events.a", b"behind it", created_at=before + timedelta(seconds=2))
    relay = OutboxRelay(outbox.database, js, ack_timeout=2)

    assert await relay.sweep_once() == 3
    await relay.sweep_once()  # records what the first sweep learnt, and finds nothing left to publish

    assert await _stored(small_server, "EVENTS") == ["e1", "e2"]
    big = outbox.row("big")
    assert big.sent_at is None and big.parked_at is not None and big.parked_at >= before
    assert big.parked_reason is not None and big.parked_reason.startswith("NATS refused it: ")
    assert big.parked_reason.endswith(" bytes, over the NATS server's max_payload of 4096 bytes")
    assert outbox.row("e2").sent_at is not None
    assert await relay.sweep_once() == 0, "a parked row is never published again"
    assert relay.oldest_unsent_age == 0.0, "nor does it count as waiting"

    with outbox.engine.connect() as conn:
        listed, counts = deadletters.listing(conn, service="svc", include_resolved=False, limit=10)
        held = deadletters.open_for_referrals(conn, ["ref_0123456789abcdef"])
    assert [(d.consumer, d.subject, d.referral_id, d.status) for d in listed] == [
        ("outbox", "events.a", "ref_0123456789abcdef", "open")]
    assert "over the NATS server's max_payload of 4096 bytes" in listed[0].reason and "event big" in listed[0].reason
    assert counts == {"parked outbox event": 1}
    assert [h.id for h in held["ref_0123456789abcdef"]] == [listed[0].id]


async def test_an_event_over_the_streams_maximum_message_size_is_parked(
    nats_url: str, outbox: Outbox
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = f"SMALL{uuid.uuid4().hex[:8]}"
        subject = f"{name.lower()}.events"
        await js.add_stream(StreamConfig(name=name, subjects=[subject], max_msg_size=1000))
        before = datetime.now(UTC) - timedelta(minutes=1)
        outbox.add("big", subject, b"x" * 2000, created_at=before)
        outbox.add("e2", subject, b"behind it", created_at=before + timedelta(seconds=1))
        relay = OutboxRelay(outbox.database, js, ack_timeout=2)

        await relay.sweep_once()
        await relay.sweep_once()

        assert await _stored(nc, name) == ["e2"]
        assert outbox.row("big").parked_reason == (
            "NATS refused it: message size exceeds maximum allowed (the stream's maximum message size, error 10054)")
    finally:
        await nc.close()


async def test_an_event_nobody_stores_yet_stays_unsent_and_goes_out_with_its_id_once_a_stream_takes_it(
    nats_url: str, outbox: Outbox
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = f"LATE{uuid.uuid4().hex[:8]}"
        subject = f"{name.lower()}.events"
        outbox.add("e1", subject, b"early", created_at=datetime.now(UTC) - timedelta(minutes=1))
        relay = OutboxRelay(outbox.database, js, ack_timeout=1)

        await relay.sweep_once()  # no stream: no responders, a transient failure
        await relay.sweep_once()
        row = outbox.row("e1")
        assert row.sent_at is None and row.parked_at is None, "not confirmed is not refused for good"

        await js.add_stream(StreamConfig(name=name, subjects=[subject]))
        await relay.sweep_once()
        await relay.sweep_once()

        assert await _stored(nc, name) == ["e1"]
        assert outbox.row("e1").sent_at is not None
    finally:
        await nc.close()


async def test_pubacks_of_one_batch_are_told_apart_message_by_message(nats_url: str) -> None:
    """Many publishes in flight on one reply subscription: each message gets its own answer, in order, whatever the
    others got; the same subscription serves the next batch; an answer that never comes is NoAnswer."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = f"ACKS{uuid.uuid4().hex[:8]}"
        subject = f"{name.lower()}.events"
        await js.add_stream(StreamConfig(name=name, subjects=[subject], max_msg_size=1000))
        pubacks = PubAcks(nc)
        first = [(subject, b"one", {"Nats-Msg-Id": "a"}), (subject, b"x" * 2000, {"Nats-Msg-Id": "big"}),
                 (f"{name.lower()}.nobody", b"lost", {"Nats-Msg-Id": "b"}), (subject, b"one again", {"Nats-Msg-Id": "a"}),
                 (subject, b"two", {"Nats-Msg-Id": "c"})]

        outcomes = await pubacks.publish(first, timeout=2)

        assert outcomes[0] is None and outcomes[3] is None and outcomes[4] is None, "stored, or dropped as duplicate"
        assert isinstance(outcomes[1], APIError) and outcomes[1].err_code == 10054
        assert refused_for_good(outcomes[1]) is not None
        assert isinstance(outcomes[2], NoStreamResponseError) and refused_for_good(outcomes[2]) is None
        assert await _stored(nc, name) == ["a", "c"]
        assert await pubacks.publish([(subject, b"three", {"Nats-Msg-Id": "d"})], timeout=2) == [None]
        assert await _stored(nc, name) == ["a", "c", "d"]

        await js.delete_stream(name)
        quiet = await nc.subscribe(subject)  # someone there (no "no responders"), who never answers
        (silence,) = await pubacks.publish([(subject, b"four", {"Nats-Msg-Id": "e"})], timeout=0.3)
        assert isinstance(silence, NoAnswer)
        await quiet.unsubscribe()
    finally:
        await nc.close()
    closed = await PubAcks(nc).publish([(subject, b"five", {}), (subject, b"six", {})], timeout=1)
    assert [type(e) for e in closed] == [ConnectionClosedError] * 2, "a closed connection is each one's outcome, not raised"
