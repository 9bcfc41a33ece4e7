"""Scheduling's request-reply endpoints in the test's process, on a real database (a SQLite file, or a schema of
their own when DATABASE_URL names a PostgreSQL), without NATS: for tests that ask an endpoint directly."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text

from services.scheduling.rpc import Scheduling
from services.scheduling.tables import TABLES
from shared.db import make_engine
from shared.migrations import schema_of, upgrade
from shared.outbox import Outgoing
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class _Published:
    """The relay, as far as the endpoints need it: their events stay in the outbox, sent nowhere."""

    async def publish(self, messages: Sequence[Outgoing]) -> int:
        return 0


@asynccontextmanager
async def scheduling_endpoints(data_dir: Path) -> AsyncIterator[Scheduling]:
    """Scheduling's endpoints on its tables migrated to head; the schema is dropped afterwards."""
    settings = ServiceSettings(data_dir=data_dir, db_schema_prefix=f"se{uuid.uuid4().hex[:8]}", ops_port=0,
                               NATS_URL="nats://127.0.0.1:4222",  # never connected
                               DATABASE_URL=os.environ.get("DATABASE_URL"))  # type: ignore[call-arg]
    made = make_engine("scheduling", settings)
    upgrade(made, "scheduling")
    made.dispose()
    host = ServiceHost("scheduling", settings, TABLES)
    host.relay = _Published()  # type: ignore[assignment]
    try:
        yield Scheduling(host, None)
    finally:
        host.database.close()
        if host.engine.dialect.name == "postgresql":
            with host.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_of(host.engine)}" CASCADE'))
        host.engine.dispose()
        host.tracer_provider.shutdown()
        host.metrics.shutdown()
