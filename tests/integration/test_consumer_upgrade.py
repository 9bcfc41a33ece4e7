"""A service started over a durable consumer made by an earlier version keeps consuming."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.sdk.trace import TracerProvider
from sqlmodel import SQLModel

from apps.devstack.local_nats import start_nats_server
from shared.db import DatabaseThread, make_engine
from shared.messaging import BatchConsumer
from shared.outbox import InboxRow, OutboxRelay, OutboxRow
from shared.settings import ServiceSettings
from shared.subjects import Subjects
from tests.support.waiting import wait_until


async def test_an_older_consumer_is_updated_or_kept_and_messages_still_flow(tmp_path: Path) -> None:
    proc, url = start_nats_server(tmp_path / "js")
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="UPG", subjects=["upg.>"])
        # an earlier version's consumer: a setting the server cannot change in place
        await js.add_consumer("UPG", ConsumerConfig(durable_name="svc-in", ack_policy=AckPolicy.EXPLICIT,
                                                    deliver_policy=DeliverPolicy.NEW, filter_subject="upg.in"))
        engine = make_engine("svc", ServiceSettings(data_dir=tmp_path, DATABASE_URL=None))  # type: ignore[call-arg]
        SQLModel.metadata.create_all(engine, tables=[OutboxRow.__table__, InboxRow.__table__])  # type: ignore[attr-defined]
        seen: list[bytes] = []

        def handler(conn, batch, now):  # type: ignore[no-untyped-def]
            seen.extend(d.data for d in batch)
            return []

        database = DatabaseThread("svc", engine)
        consumer = BatchConsumer(service="svc", js=js, database=database, relay=OutboxRelay(database, js),
                                 tracer=TracerProvider().get_tracer("t"), subjects=Subjects(), stream="UPG",
                                 filter_subjects=["upg.in"], durable="svc-in", handler=handler)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        await asyncio.wait_for(consumer.ready.wait(), 10)
        await js.publish("upg.in", b"hello")
        await wait_until(lambda: bool(seen), timeout=5, every=0.1, what="the consumer handling the message")
        stop.set()
        await asyncio.wait_for(task, 10)
        assert seen == [b"hello"]
    finally:
        await nc.close()
        proc.terminate()
        proc.wait(timeout=10)
