"""Health as an orchestrator and an operator see it: HTTP /healthz and /readyz on each service's ops port, and the
NATS services API ($SRV.PING, INFO, STATS) answered by every replica.

The services run on a namespace of their own (an isolated copy), as the not-ready case changes their database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import column, table, update

from shared.db import make_engine
from shared.migrations import schema_of
from shared.ops import micro_name
from shared.settings import ServiceSettings
from tests.support.cluster import Cluster
from tests.support.suite import SERVICES, make_cluster, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own_cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = make_cluster(nats_server, tmp_path_factory.mktemp("ops-health"), "health", isolated=True)
    with running(c):
        yield c


@pytest.fixture
async def nc(own_cluster: Cluster) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(own_cluster.nats_url)
    try:
        yield client
    finally:
        await client.close()


async def _ping(nc: nats.aio.client.Client, cluster: Cluster, service: str) -> dict[str, Any]:
    reply = await nc.request(cluster.subjects.rpc(service, "ping"), b"{}", timeout=5)
    body: dict[str, Any] = json.loads(reply.data)
    return body


async def _ops_url(nc: nats.aio.client.Client, cluster: Cluster, service: str) -> str:
    url = (await _ping(nc, cluster, service))["ops_url"]
    assert url and url.startswith("http://127.0.0.1:"), f"{service} says no ops URL: {url!r}"
    return str(url)


async def test_every_service_answers_its_probes_and_serves_metrics(own_cluster: Cluster,
                                                                   nc: nats.aio.client.Client) -> None:
    urls = {s: await _ops_url(nc, own_cluster, s) for s in SERVICES}
    assert len(set(urls.values())) == 3, f"three services share an ops port: {urls}"
    async with httpx.AsyncClient(timeout=5) as http:
        for service, url in urls.items():
            alive = await http.get(f"{url}/healthz")
            assert (alive.status_code, alive.json()["live"], alive.json()["service"]) == (200, True, service)
            readiness = await http.get(f"{url}/readyz")
            assert readiness.status_code == 200, readiness.text
            assert readiness.json()["ready"] is True and readiness.json()["problems"] == []
            metrics = await http.get(f"{url}/metrics")
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert f'reroute_gc_pause_seconds_count{{generation="2",service="{service}"}}' in metrics.text


async def test_the_services_api_finds_each_service_and_reports_its_health(own_cluster: Cluster,
                                                                          nc: nats.aio.client.Client) -> None:
    namespace = own_cluster.namespace
    for service in SERVICES:
        name = micro_name(service, namespace)
        ping = json.loads((await nc.request(f"$SRV.PING.{name}", b"", timeout=5)).data)
        assert (ping["type"], ping["name"], ping["metadata"]["service"]) == ("io.nats.micro.v1.ping_response", name,
                                                                              service)
        info = json.loads((await nc.request(f"$SRV.INFO.{name}", b"", timeout=5)).data)
        # no endpoint of its own: the request-reply endpoints are FastStream's, each subscribed once
        assert info["endpoints"] == []
        assert info["metadata"]["ready"] == "true"
        assert info["metadata"]["ops_url"] == await _ops_url(nc, own_cluster, service)
        stats = json.loads((await nc.request(f"$SRV.STATS.{name}.{info['id']}", b"", timeout=5)).data)
        assert stats["type"] == "io.nats.micro.v1.stats_response" and stats["id"] == info["id"]
        assert int(stats["metadata"]["pid"]) == own_cluster.processes.procs[service].pid


async def test_a_database_behind_the_migrations_is_not_ready_but_still_live(own_cluster: Cluster,
                                                                           nc: nats.aio.client.Client) -> None:
    """A replica left running on a schema it was not built for (an upgrade or restore happened under it) is taken
    out of service (/readyz 503, saying what to do), not restarted (/healthz 200); it recovers by itself."""
    url = await _ops_url(nc, own_cluster, "risk")
    settings = ServiceSettings(data_dir=Path(own_cluster.data_dir), namespace=own_cluster.namespace,
                               db_schema_prefix=own_cluster.processes.env["REROUTE_DB_SCHEMA_PREFIX"],
                               DATABASE_URL=os.environ.get("DATABASE_URL"))  # type: ignore[call-arg]
    engine = make_engine("risk", settings)
    versions = table("alembic_version", column("version_num"), schema=schema_of(engine))
    with engine.connect() as conn:
        head = conn.execute(versions.select()).scalar_one()

    def set_revision(revision: str) -> None:
        with engine.begin() as conn:
            conn.execute(update(versions).values(version_num=revision))

    async with httpx.AsyncClient(timeout=5) as http:
        async def readiness() -> httpx.Response:
            return await http.get(f"{url}/readyz")

        set_revision("0000_not_this_version")
        try:
            await wait_until(lambda: _status(readiness, 503), timeout=40,
                             what="risk's /readyz answering 503 on a schema behind")
            answer = (await readiness()).json()
            assert answer["ready"] is False and answer["live"] is True
            assert any("0000_not_this_version" in p and "reroute db upgrade" in p for p in answer["problems"]), answer
            assert (await http.get(f"{url}/healthz")).status_code == 200
            check = await asyncio.to_thread(_container_healthcheck, "risk", url)
            assert check.returncode == 1 and "reroute db upgrade" in check.stderr, check
            name = micro_name("risk", own_cluster.namespace)
            info = json.loads((await nc.request(f"$SRV.INFO.{name}", b"", timeout=5)).data)
            assert info["metadata"]["ready"] == "false" and "reroute db upgrade" in info["metadata"]["problems"]
        finally:
            set_revision(head)
        await wait_until(lambda: _status(readiness, 200), timeout=40, what="risk ready again at head")
    check = await asyncio.to_thread(_container_healthcheck, "risk", url)
    assert (check.returncode, check.stdout.strip()) == (0, "ready"), check
    engine.dispose()


async def _status(get: Any, wanted: int) -> bool:
    return bool((await get()).status_code == wanted)


def _container_healthcheck(service: str, ops_url: str) -> subprocess.CompletedProcess[str]:
    """The compose healthcheck as a container runs it: REROUTE_OPS_PORT fixed, this replica's own /readyz."""
    port = ops_url.rsplit(":", 1)[1]
    env = {**os.environ, "REROUTE_OPS_PORT": port}
    env.pop("REROUTE_HEALTH_NATS_URL", None)
    return subprocess.run([sys.executable, "-m", "apps.container.health", service], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
