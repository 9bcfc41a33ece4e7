"""What one test run shares: an id, in every namespace and schema prefix the run makes, so that runs sharing a
NATS server or a PostgreSQL database never see each other's traffic or rows; and the clean-up of those schemas."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cluster import Cluster, launch_cluster, ready

RUN_ID = uuid.uuid4().hex[:8]
SERVICES = ("intake", "risk", "scheduling")


def make_cluster(nats_server: tuple[str, bool], data_dir: Path, name: str, *, isolated: bool = False) -> Cluster:
    """The services, named `name` within this run: on a namespace of their own when the server is shared (or
    `isolated`), else on the bare contract subjects. Await `ready(cluster)` before use; `drop_schemas` after."""
    url, shared = nats_server
    namespace = f"t{RUN_ID}{name}" if (shared or isolated) else ""
    return launch_cluster(url, data_dir, namespace=namespace, schema_prefix=f"t{RUN_ID}{name}")


def drop_schemas(cluster: Cluster) -> None:
    """Drop the cluster's PostgreSQL schemas (nothing to do on SQLite: its files go with the data dir)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    prefix = cluster.processes.env["REROUTE_DB_SCHEMA_PREFIX"]
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed)
    with engine.begin() as conn:
        for service in SERVICES:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}_{service}" CASCADE'))
    engine.dispose()


@contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """A launched cluster, ready (its streams provisioned, every service answering) for the block, then stopped and
    its schemas dropped: what a fixture giving a test services of its own yields."""
    asyncio.run(ready(cluster))
    try:
        yield cluster
    finally:
        cluster.processes.stop_all()
        drop_schemas(cluster)
