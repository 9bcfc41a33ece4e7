"""Where the suite's NATS and PostgreSQL come from (tests/conftest.py, tests/support/containers.py): containers from
testcontainers when a Docker engine answers and can run the images, today's local processes when not; under
REROUTE_REQUIRE_DOCKER=1 (CI's Docker pass) a fallback or a skip is a failure, so that pass cannot quietly be the
pass without an engine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from sqlalchemy import create_engine, text

from tests.support import containers
from tests.support.suite import RUN_ID

ROOT = Path(__file__).resolve().parents[2]


def _engine_or_skip() -> None:
    try:
        containers.engine().close()
    except containers.NoContainer as exc:
        pytest.skip(str(exc))


def _published(started: containers.Started, port: int) -> tuple[str, int]:
    container = containers.engine().containers.get(started.id)
    [binding] = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
    return binding["HostIp"], int(binding["HostPort"])


async def test_in_the_docker_pass_nats_and_postgresql_are_containers_of_this_run_on_loopback(
    nats_url: str, test_database: str | None
) -> None:
    if not containers.required():
        pytest.skip("where the backends come from is asserted in CI's Docker pass (REROUTE_REQUIRE_DOCKER=1)")
    nats_container, pg_container = containers.RUNNING["NATS"], containers.RUNNING["PostgreSQL"]
    assert nats_url == nats_container.url and test_database == pg_container.url == os.environ["DATABASE_URL"]
    for started, port, url in ((nats_container, 4222, nats_url), (pg_container, 5432, test_database)):
        labels = containers.engine().containers.get(started.id).labels
        assert labels[containers.LABEL] == RUN_ID and labels[containers.LABEL_PID] == str(os.getpid())
        assert _published(started, port) == ("127.0.0.1", urlsplit(url).port)

    nc = await nats.connect(nats_url)
    try:
        assert (await nc.jetstream().account_info()).limits is not None  # JetStream is on
    finally:
        await nc.close()
    engine = create_engine(test_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "reroute"
    engine.dispose()


def test_without_an_engine_no_container_is_started_and_the_reason_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    with pytest.raises(containers.NoContainer, match="no Docker engine answers"):
        containers.start_nats(RUN_ID)


def test_an_engine_that_cannot_get_the_image_starts_nothing_and_names_the_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _engine_or_skip()
    monkeypatch.setattr(containers, "NATS_IMAGE", "reroute-test/not-anywhere:never")
    client = containers.engine()
    before = {c.id for c in client.containers.list(all=True, filters={"label": f"{containers.LABEL}={RUN_ID}"})}

    with pytest.raises(containers.NoContainer, match="could not run reroute-test/not-anywhere:never"):
        containers.start_nats(RUN_ID)

    after = {c.id for c in client.containers.list(all=True, filters={"label": f"{containers.LABEL}={RUN_ID}"})}
    assert after == before


PROBES = {
    "nats": """
        async def test_nats_answers(nats_url: str) -> None:
            import nats
            nc = await nats.connect(nats_url)
            await nc.close()
        """,
    # marked as a compose test, so that the session starts no database for it: only the skip is at stake here
    "skip": """
        import pytest

        @pytest.mark.docker
        def test_skipped() -> None:
            pytest.skip("nothing to see")
        """,
}


def _run_probe(tmp_path: Path, probe: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of its own, with the suite's fixtures (tests/conftest.py as a plugin), on one probe."""
    path = tmp_path / f"test_probe_{probe}.py"
    path.write_text(textwrap.dedent(PROBES[probe]))
    clean = {k: v for k, v in os.environ.items()
             if k not in {"NATS_URL", "DATABASE_URL", "REROUTE_REQUIRE_DOCKER", "PYTEST_ADDOPTS"}}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", "-rs",
         "--rootdir", str(tmp_path), "-c", "/dev/null", "-o", "asyncio_mode=auto", str(path)],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300, check=False)


def test_without_an_engine_the_suite_runs_on_local_processes_and_skips_stay_skips(tmp_path: Path) -> None:
    run = _run_probe(tmp_path, "nats", DOCKER_HOST="unix:///nonexistent")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    skip = _run_probe(tmp_path, "skip", DOCKER_HOST="unix:///nonexistent")
    assert skip.returncode == 0, skip.stdout + skip.stderr
    assert "1 skipped" in skip.stdout


def test_under_require_docker_no_engine_and_a_skip_are_failures_that_say_why(tmp_path: Path) -> None:
    run = _run_probe(tmp_path, "nats", DOCKER_HOST="unix:///nonexistent", REROUTE_REQUIRE_DOCKER="1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "REROUTE_REQUIRE_DOCKER=1, but PostgreSQL would come from a local fallback: no Docker engine" in run.stdout
    assert "passed" not in run.stdout.splitlines()[-1]
    skip = _run_probe(tmp_path, "skip", DOCKER_HOST="unix:///nonexistent", REROUTE_REQUIRE_DOCKER="1")
    assert skip.returncode == 1, skip.stdout + skip.stderr
    assert "REROUTE_REQUIRE_DOCKER=1 allows no skip: Skipped: nothing to see" in skip.stdout
    assert "1 failed" in skip.stdout


def test_an_engine_without_the_images_falls_back_with_a_warning_and_fails_under_require_docker(
    tmp_path: Path,
) -> None:
    _engine_or_skip()
    absent = {"REROUTE_TEST_NATS_IMAGE": "reroute-test/not-anywhere:never",
              "REROUTE_TEST_POSTGRES_IMAGE": "reroute-test/not-anywhere:never"}
    fallback = _run_probe(tmp_path, "nats", **absent)
    assert fallback.returncode == 0, fallback.stdout + fallback.stderr
    assert "the engine could not run reroute-test/not-anywhere:never" in fallback.stdout
    assert "NATS runs without a container" in fallback.stdout

    required = _run_probe(tmp_path, "nats", REROUTE_REQUIRE_DOCKER="1", **absent)
    assert required.returncode == 1, required.stdout + required.stderr
    assert "REROUTE_REQUIRE_DOCKER=1, but PostgreSQL would come from a local fallback: the engine could not run" \
        in required.stdout


def test_containers_a_dead_run_left_are_removed_and_a_live_runs_are_not() -> None:
    _engine_or_skip()
    client = containers.engine()
    dead_pid = _a_dead_pid()
    image = containers.NATS_IMAGE if _have(client, containers.NATS_IMAGE) else containers.POSTGRES_IMAGE
    if not _have(client, image):
        pytest.skip(f"neither {containers.NATS_IMAGE} nor {containers.POSTGRES_IMAGE} is here (make images)")
    left = client.containers.create(image, command=["true"], labels={
        **containers.labels("deadrun"), containers.LABEL_PID: str(dead_pid)})
    live = client.containers.create(image, command=["true"], labels=containers.labels("liverun"))
    try:
        containers.remove()
        remaining = {c.id for c in client.containers.list(all=True, filters={"label": containers.LABEL})}
        assert left.id not in remaining and live.id in remaining
    finally:
        for container in (left, live):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def _have(client: object, image: str) -> bool:
    import docker.errors

    try:
        client.images.get(image)  # type: ignore[attr-defined]
    except docker.errors.ImageNotFound:
        return False
    return True


def _a_dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
