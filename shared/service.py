"""What every service process has: settings, its database, NATS, tracing, the outbox relay and its consumers.

Each service's `create_app` builds a `ServiceHost`, adds its consumers and request-reply handlers, and
returns `host.app`: a FastStream application (`python -m services.<name>` runs it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faststream import FastStream
from faststream.nats import NatsBroker, NatsRouter
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine
from sqlmodel import SQLModel

from shared.db import create_tables, make_engine
from shared.messaging import BatchConsumer, BatchHandler, ensure_streams
from shared.outbox import InboxRow, OutboxRelay, OutboxRow
from shared.settings import ServiceSettings
from shared.subjects import Subjects
from shared.telemetry import setup_tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    filter_subject: str
    durable: str
    handler: BatchHandler


class ServiceHost:
    def __init__(self, name: str, settings: ServiceSettings, tables: Sequence[type[SQLModel]]) -> None:
        self.name = name
        self.settings = settings
        self.subjects = Subjects(settings.namespace)
        self.engine: Engine = make_engine(name, settings)
        create_tables(self.engine, [*tables, OutboxRow, InboxRow])
        self.tracer_provider: TracerProvider = setup_tracing(name, settings.data_dir)
        self.tracer = self.tracer_provider.get_tracer(f"reroute.{name}")
        self.broker = NatsBroker(
            settings.resolved_nats_url(),
            name=f"reroute-{name}-{os.getpid()}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            log_level=logging.DEBUG,  # FastStream logs every message at INFO otherwise
        )
        self.router = NatsRouter()
        self._consumer_specs: list[ConsumerSpec] = []
        self._consumers: list[BatchConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.app = FastStream(
            self.broker,
            specification=AsyncAPI(title=f"reroute {name}", version="1.0.0"),
            after_startup=[self._start],
            on_shutdown=[self._shutdown],
        )

    def consume(self, *, stream: str, filter_subject: str, what: str, handler: BatchHandler) -> None:
        self._consumer_specs.append(ConsumerSpec(stream, filter_subject, self.subjects.durable(self.name, what), handler))

    def reply(self, verb: str, **kwargs: Any) -> Any:
        """Decorator: a request-reply handler on reroute.rpc.<service>.<verb>, load-shared by replicas."""
        return self.router.subscriber(self.subjects.rpc(self.name, verb), queue=self.name, **kwargs)

    def finish_routes(self) -> None:
        @self.reply("ping")
        async def ping() -> dict[str, Any]:
            """Liveness and readiness of this replica."""
            return {"service": self.name, "ready": all(c.ready.is_set() for c in self._consumers), "pid": os.getpid()}

        self.broker.include_router(self.router)

    async def _start(self) -> None:
        js = self.broker.connection.jetstream()
        await ensure_streams(js, self.subjects)
        relay = OutboxRelay(self.engine, js)
        self.relay = relay
        for spec in self._consumer_specs:
            consumer = BatchConsumer(
                service=self.name,
                js=js,
                engine=self.engine,
                relay=relay,
                tracer=self.tracer,
                subjects=self.subjects,
                stream=spec.stream,
                filter_subject=spec.filter_subject,
                durable=spec.durable,
                handler=spec.handler,
                batch_size=self.settings.batch_size,
                max_deliver=self.settings.max_deliver,
            )
            self._consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run(self._stop), name=f"{self.name}:{spec.durable}"))
        self._tasks.append(asyncio.create_task(relay.run(self._stop), name=f"{self.name}:outbox"))
        log.info("%s started (pid %d)", self.name, os.getpid())

    async def _shutdown(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self.tracer_provider.shutdown()
        self.engine.dispose()
        log.info("%s stopped", self.name)


def configure_logging(service: str, level: str) -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
    )
