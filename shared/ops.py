"""The operations face of every service: HTTP probes and metrics on REROUTE_OPS_PORT, and the NATS services API.

HTTP (for container and Kubernetes probes, and Prometheus):
- `GET /healthz`: 200 while the process is live (restart it on anything else), 503 with the problems otherwise.
- `GET /readyz`: 200 when ready (consumers bound and moving, NATS connected, the database answering and at the
  migrations' head, the outbox moving), 503 with the problems otherwise. Not ready is a reason to send no work
  (and to alert), not to restart: restarting does not bring a database back.
- `GET /metrics`: the OpenTelemetry metrics in Prometheus's text format (shared/metrics.py).

NATS services API (`nats.micro`): each replica answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (also by name,
`reroute-<service>`, or `reroute-<namespace>-<service>` on a namespaced copy), so `nats micro list` and any NATS
tooling find it. Discovery, health and statistics only: it registers no endpoint. The request-reply endpoints are
FastStream subscribers in the service's queue group, and subscribing one subject again in micro's own queue group
would have every request answered twice. INFO and STATS carry the replica's health and its ops URL in `metadata`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from nats.aio.client import Client
from nats.micro.service import Service, ServiceConfig, ServiceInfo, ServiceStats
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.contracts.rpc import Health


def reroute_version() -> str:
    try:
        return version("reroute")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


def ops_app(health: Callable[[], Health], registry: CollectorRegistry) -> Starlette:
    """/healthz, /readyz and /metrics, answered from the running service's own state (no I/O on a probe)."""

    async def healthz(_: Request) -> Response:
        h = health()
        return JSONResponse({"service": h.service, "live": h.live, "problems": h.problems if not h.live else []},
                            status_code=200 if h.live else 503)

    async def readyz(_: Request) -> Response:
        h = health()
        return JSONResponse(h.model_dump(mode="json"), status_code=200 if h.ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)])


def micro_name(service: str, namespace: str) -> str:
    """The name a service registers under with the NATS services API."""
    return f"reroute-{namespace}-{service}" if namespace else f"reroute-{service}"


class Discoverable(Service):
    """A `nats.micro` service with no endpoints whose INFO and STATS say how the replica is, as of the asking."""

    def __init__(self, client: Client, config: ServiceConfig, health: Callable[[], Health]) -> None:
        super().__init__(client, config)
        self._health = health

    def _refresh(self) -> None:
        h = self._health()
        self._metadata.update(live=str(h.live).lower(), ready=str(h.ready).lower(), problems="; ".join(h.problems),
                              ops_url=h.ops_url or "", pid=str(h.pid))

    def info(self) -> ServiceInfo:
        self._refresh()
        return super().info()

    def stats(self) -> ServiceStats:
        self._refresh()
        return super().stats()


async def register(client: Client, *, service: str, namespace: str, health: Callable[[], Health]) -> Discoverable:
    """Answer the NATS services API's PING, INFO and STATS for this replica until `stop()`."""
    micro = Discoverable(client, ServiceConfig(
        name=micro_name(service, namespace), version=reroute_version(),
        description=f"reroute {service}: request-reply on reroute.rpc.{service}.* (FastStream); health on /readyz",
        metadata={"service": service, "namespace": namespace, "pid": str(os.getpid())}), health)
    await micro.start()
    return micro
