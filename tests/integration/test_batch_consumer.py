"""The batched consumer loop against a real nats-server and SQLite: a batch with a poison message in it still
processes, publishes and acknowledges every other message, once, and the poison alone is dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig
from opentelemetry import trace
from sqlalchemy import Connection, Engine, select
from sqlmodel import SQLModel, col

from shared.db import DatabaseThread, make_engine
from shared.deadletters import DeadLetterRow
from shared.messaging import BatchConsumer, Delivery, PoisonMessage
from shared.outbox import InboxRow, OutboxRelay, OutboxRow, Outgoing
from shared.settings import ServiceSettings
from shared.subjects import Subjects
from tests.support.waiting import wait_until


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine("svc", ServiceSettings(data_dir=tmp_path, DATABASE_URL=None))  # type: ignore[call-arg]
    tables = [OutboxRow.__table__, InboxRow.__table__, DeadLetterRow.__table__]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=tables)
    yield engine
    engine.dispose()


async def test_a_poison_message_in_a_batch_holds_back_none_of_the_others(nats_url: str, engine: Engine) -> None:
    name = f"BATCH{uuid.uuid4().hex[:8]}"
    subject_in, subject_out = f"{name.lower()}.in", f"{name.lower()}.out"
    bodies = [b"one", b"two", b"poison", b"three", b"four"]

    def handler(conn: Connection, batch: list[Delivery], now: datetime) -> list[Outgoing]:
        if any(d.data == b"poison" for d in batch):
            raise PoisonMessage("not a body this handler reads")
        return [Outgoing(f"out-{d.data.decode()}", subject_out, d.data) for d in batch]

    nc = await nats.connect(nats_url)
    database = DatabaseThread("svc", engine)
    stop = asyncio.Event()
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=name, subjects=[subject_in, subject_out], duplicate_window=60))
        for i, body in enumerate(bodies):  # all stored before the consumer fetches: one batch
            await js.publish(subject_in, body, headers={"Nats-Msg-Id": f"in-{i}"})
        consumer = BatchConsumer(service="svc", js=js, database=database, relay=OutboxRelay(database, js),
                                 tracer=trace.get_tracer(__name__), subjects=Subjects(), stream=name,
                                 filter_subjects=[subject_in], durable=f"svc-{name.lower()}", handler=handler)
        running = asyncio.create_task(consumer.run(stop))
        await asyncio.wait_for(consumer.ready.wait(), timeout=10)  # the durable consumer exists

        async def settled() -> bool:
            info = await js.consumer_info(name, consumer.durable)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0
                        and info.delivered.stream_seq >= len(bodies))

        await wait_until(settled, timeout=20, what="every message acknowledged, or terminated")
        stop.set()
        await asyncio.wait_for(running, timeout=10)

        info = await js.consumer_info(name, consumer.durable)
        assert info.num_redelivered == 0, "each message was delivered once: none waited out its ack deadline"
        out = await js.pull_subscribe(subject_out, durable=f"out-{name.lower()}", stream=name)
        published = sorted(m.data for m in await out.fetch(10, timeout=2))
        assert published == [b"four", b"one", b"three", b"two"]
        with engine.connect() as conn:
            processed = conn.execute(select(col(InboxRow.message_key))).scalars().all()
            kept = conn.execute(select(col(DeadLetterRow.subject), col(DeadLetterRow.reason))).all()
        assert sorted(processed) == sorted(f"{subject_in}|in-{i}" for i in (0, 1, 3, 4))
        assert [(s, r) for s, r in kept] == [(subject_in, "not a body this handler reads")]
    finally:
        stop.set()
        database.close()
        await nc.close()
