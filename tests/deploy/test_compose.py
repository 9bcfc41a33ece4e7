"""The compose stack for real (issue 13): docker-compose.yml, with CI's Debian-built images (docker-compose.ci.yml,
`make images`), comes up healthy and closed, takes a referral over HTTPS to a booked session, and does so again
after a service and NATS restart. Everything is reached through ports published on 127.0.0.1.

Needs a Docker engine, a compose command and the images. Without them the tests are skipped, naming what is
missing; with REROUTE_REQUIRE_DOCKER=1 (CI's Docker stage) that is a failure, so the stage cannot pass by skipping.
REROUTE_COMPOSE_FILES (colon-separated) runs other files, e.g. docker-compose.yml alone with official images.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest
import yaml

from apps.container.env import compose_env
from shared.nats_auth import agency_inbox_prefix
from tests.support.cluster import mentor, referral, unique, unique_language

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = os.environ.get("REROUTE_COMPOSE_FILES", "docker-compose.yml:docker-compose.ci.yml").split(":")
RUNNING = ("nats", "postgres", "intake", "risk", "scheduling", "console", "notifier", "proxy")
MAIL = {"REROUTE_SMTP_HOST": "smtp.invalid", "REROUTE_ALERT_EMAILS": "dsl@example.org,dsl2@example.org",
        "REROUTE_ALERT_DEPUTY_EMAILS": "deputy@example.org"}
"""The notifier's mail settings, as an operator fills them in deploy/.env (no email is sent in these tests)."""
PUBLISHED = {"nats": "4222/tcp", "proxy": ("8443/tcp", "8444/tcp")}


def _run(args: list[str], *, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def compose_command() -> list[str] | None:
    """REROUTE_COMPOSE if set, else Debian's docker-compose (v1), else the `docker compose` plugin (v2)."""
    if os.environ.get("REROUTE_COMPOSE"):
        return os.environ["REROUTE_COMPOSE"].split()
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if _run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return None


def clean_env() -> dict[str, str]:
    """This process's environment without what the compose file reads: values from the shell win over the .env."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("REROUTE_", "POSTGRES_", "OTEL_", "COMPOSE_")) and k not in {"NATS_URL", "DATABASE_URL"}}


def missing_docker(compose: list[str] | None, env_file: Path) -> str | None:
    """Why the stack cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    info = _run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if info.returncode != 0:
        return f"no Docker engine answers (docker info: {(info.stderr or info.stdout).strip()[:200]})"
    if compose is None:
        return "neither docker-compose nor the docker compose plugin is installed"
    config = _run([*compose, "--env-file", str(env_file), *(a for f in COMPOSE_FILES for a in ("-f", f)), "config"],
                  env=clean_env())
    if config.returncode != 0:
        return f"compose config failed: {config.stderr.strip()[:300]}"
    services = yaml.safe_load(config.stdout)["services"]  # the stack, and the cli it is driven through
    images = sorted({s["image"] for name, s in services.items() if name == "cli" or not s.get("profiles")})
    absent = [i for i in images if _run(["docker", "image", "inspect", i]).returncode != 0]
    if absent:
        return f"images not built: {', '.join(absent)} (make images)"
    return None


def stack_env(ports: dict[str, int]) -> str:
    """`make compose-env`'s file with these published ports and the mail settings filled in (MAIL)."""
    lines = compose_env(ports=ports).splitlines()
    return "".join(f"{name}={MAIL[name]}\n" if (name := line.split("=", 1)[0]) in MAIL else f"{line}\n"
                   for line in lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FIRST_ADMIN, TESTER = "/people/admin.credentials.json", "/people/tester.credentials.json"
"""Credentials files in the cli service's `people` volume."""


@dataclass
class Stack:
    compose: list[str]
    project: str
    env_file: Path
    ca_file: Path
    ports: dict[str, int]

    def call(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        files = [a for f in COMPOSE_FILES for a in ("-f", str(ROOT / f))]
        return subprocess.run([*self.compose, "-p", self.project, "--env-file", str(self.env_file), *files, *args],
                              input=input, capture_output=True, text=True, timeout=timeout, env=clean_env(), cwd=ROOT,
                              check=False)

    def run(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> str:
        done = self.call(*args, input=input, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def secret(self, name: str) -> str:
        return next(line.split("=", 1)[1] for line in self.env_file.read_text().splitlines()
                    if line.startswith(f"{name}="))

    def sql_as(self, role: str, sql: str) -> subprocess.CompletedProcess[str]:
        """`sql` run by psql in the postgres container, logged in over TCP as `role` with its password."""
        return self.call("exec", "-T", "-e", f"PGPASSWORD={self.secret(f'REROUTE_DB_{role.upper()}_PASSWORD')}",
                         "postgres", "psql", "-h", "127.0.0.1", "-U", role, "-d", "reroute", "-tAc", sql)

    def cli(self, *args: str, input: str | None = None) -> str:
        """`reroute ARGS` in a one-off container of the cli service, as the test's person (`admit_tester`), with their
        credentials file in the `people` volume, as the README tells people to run it."""
        return self.run("run", "--rm", "--no-deps", "-T", "-e", f"REROUTE_CREDENTIALS={TESTER}", "cli", *args,
                        input=input)

    def admit_tester(self) -> str:
        """Make the first admin as the operator account (all it may still do besides supervising), then, as them, the
        test's person with the roles the tests act in; wait until NATS lets them in. Returns their credentials file
        (to put back after a restore that dropped the volume)."""
        self.run("run", "--rm", "--no-deps", "-T", "cli", "people", "bootstrap", "admin", "--out", FIRST_ADMIN)
        self.until_admitted(FIRST_ADMIN)
        self.run("run", "--rm", "--no-deps", "-T", "-e", f"REROUTE_CREDENTIALS={FIRST_ADMIN}", "cli", "people", "add",
                 "tester", "--role", "admin", "--role", "scheduler", "--out", TESTER)
        self.until_admitted(TESTER)
        return self.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "cat", "cli", TESTER)

    def put_back_tester(self, credentials: str) -> None:
        """The tester's credentials file, written into a new `people` volume (the registry still has them)."""
        self.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "sh", "cli", "-c", f"umask 077 && cat > {TESTER}",
                 input=credentials)
        self.until_admitted(TESTER)

    def until_admitted(self, credentials: str, *, timeout: float = 90) -> None:
        """The NATS container picks new people up from intake every few seconds: wait until it lets them in."""
        deadline, said = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            done = self.call("run", "--rm", "--no-deps", "-T", "-e", f"REROUTE_CREDENTIALS={credentials}", "cli",
                             "people", "whoami")
            if done.returncode == 0:
                return
            said = done.stdout + done.stderr
            time.sleep(1)
        raise AssertionError(f"{credentials} not let in within {timeout:.0f} s: {said}")

    def container(self, service: str) -> dict[str, Any]:
        ids = self.run("ps", "-q", service).split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        inspected: list[dict[str, Any]] = json.loads(_run(["docker", "inspect", ids[0]]).stdout)
        return inspected[0]

    def wait_healthy(self, services: tuple[str, ...] = RUNNING, *, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {s: self.container(s)["State"].get("Health", {}).get("Status", "none") for s in services}
            if all(v == "healthy" for v in states.values()):
                return
            time.sleep(1)
        raise AssertionError(f"not healthy within {timeout:.0f} s: {states}")

    @property
    def api(self) -> str:
        return f"https://localhost:{self.ports['REROUTE_PUBLISH_API_PORT']}"

    def https(self) -> httpx.Client:
        """A client that trusts the stack's own CA only (so this is TLS checked, not TLS ignored)."""
        return httpx.Client(verify=ssl.create_default_context(cafile=self.ca_file), timeout=15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("compose")
    ports = {"REROUTE_PUBLISH_API_PORT": free_port(), "REROUTE_PUBLISH_CALENDAR_PORT": free_port(),
             "REROUTE_PUBLISH_CONSOLE_PORT": free_port(), "REROUTE_PUBLISH_NATS_PORT": free_port()}
    env_file = work / ".env"
    env_file.write_text(stack_env(ports))
    compose = compose_command()
    problem = missing_docker(compose, env_file)
    if problem:
        if os.environ.get("REROUTE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"REROUTE_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
        pytest.skip(f"compose stack not run: {problem}")
    assert compose is not None
    s = Stack(compose, f"reroute-test-{uuid.uuid4().hex[:8]}", env_file, work / "ca.crt", ports)
    try:
        s.run("up", "-d", "--no-build", timeout=600)
        s.wait_healthy()
        s.ca_file.write_text(s.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "cat", "cli", "/certs/ca.crt"))
        s.admit_tester()
        yield s
    finally:
        print(s.run("logs", "--no-color", "--tail", "60", check=False))  # shown when a test failed
        s.run("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_until_accepted(s: Stack, key: str, body: dict[str, Any], *, timeout: float = 90) -> str:
    """POST the referral (a repeat is the same referral) until intake answers 202: after a restart it may take
    a few seconds to reach NATS again."""
    deadline, last = time.monotonic() + timeout, ""
    with s.https() as http:
        while time.monotonic() < deadline:
            try:
                answer = http.post(f"{s.api}/v1/referrals", json=body, headers=bearer(key))
                if answer.status_code == 202:
                    return str(answer.json()["status_url"])
                last = f"{answer.status_code} {answer.text[:300]}"
                assert answer.status_code >= 500, last  # a refusal is a real failure, not a wait
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(1)
    raise AssertionError(f"referral not accepted within {timeout:.0f} s: {last}")


def wait_scheduled(s: Stack, key: str, status_url: str, *, timeout: float = 90) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, dict[str, Any]()
    with s.https() as http:
        while time.monotonic() < deadline:
            answer = http.get(status_url, headers=bearer(key))
            assert answer.status_code == 200, answer.text
            last = dict(answer.json())
            if last["status"] == "scheduled":
                return last
            time.sleep(0.5)
    raise AssertionError(f"not scheduled within {timeout:.0f} s: {last}")


async def agency_connects(s: Stack, user: str, password: str, agency: str, *, timeout: float = 30) -> bool:
    """The agency's NATS credentials work on the published port, over TLS, once the server has its user."""
    context = ssl.create_default_context(cafile=s.ca_file)
    url = f"tls://{user}:{password}@127.0.0.1:{s.ports['REROUTE_PUBLISH_NATS_PORT']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(url, tls=context, tls_hostname="localhost", inbox_prefix=agency_inbox_prefix(agency),
                                    allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
        except nats.errors.Error:  # not a user yet: the server learns agencies every few seconds
            await asyncio.sleep(1)
            continue
        await nc.close()
        return True
    return False


def test_the_stack_is_closed(stack: Stack) -> None:
    published = {}
    for service in RUNNING:
        ports = stack.container(service)["NetworkSettings"]["Ports"] or {}
        published.update({f"{service} {p}": [b["HostIp"] for b in binds] for p, binds in ports.items() if binds})
    # NATS clients and the proxy's three TLS faces only: no PostgreSQL, no NATS monitoring, no plain HTTP, no
    # console but through the proxy
    assert published == {"nats 4222/tcp": ["127.0.0.1"], "proxy 8443/tcp": ["127.0.0.1"],
                         "proxy 8444/tcp": ["127.0.0.1"], "proxy 8445/tcp": ["127.0.0.1"]}

    with stack.https() as http:
        assert http.post(f"{stack.api}/v1/referrals", json={}).status_code == 401
    plain = httpx.get(f"http://localhost:{stack.ports['REROUTE_PUBLISH_API_PORT']}/docs", timeout=5)
    assert plain.status_code == 400 and "HTTPS port" in plain.text  # TLS only: nginx refuses it, nothing passed on

    nats_port = stack.ports["REROUTE_PUBLISH_NATS_PORT"]
    with socket.create_connection(("127.0.0.1", nats_port), timeout=5) as sock:
        info = json.loads(sock.recv(4096).decode().removeprefix("INFO "))
    assert info["tls_required"] and info["auth_required"] and info["jetstream"]

    # each service's database role reaches its own schema only
    own, other = stack.sql_as("intake", "select count(*) from intake.alembic_version"), stack.sql_as(
        "intake", "select count(*) from risk.alembic_version")
    assert own.returncode == 0 and own.stdout.strip() == "1", own.stderr
    assert other.returncode != 0 and "permission denied for schema risk" in other.stderr, other.stderr
    ddl = stack.sql_as("risk", "create table risk.mine (x int)")
    assert ddl.returncode != 0 and "permission denied for schema risk" in ddl.stderr, ddl.stderr


def test_the_console_answers_its_log_in_page_over_tls_through_the_proxy(stack: Stack) -> None:
    console = f"https://localhost:{stack.ports['REROUTE_PUBLISH_CONSOLE_PORT']}"
    with stack.https() as http:
        assert http.get(f"{console}/healthz").status_code == 200
        login = http.get(f"{console}/login")
        assert login.status_code == 200 and "Log in to the reroute console" in login.text
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("__Host-reroute-console=") and "Secure" in cookie and "HttpOnly" in cookie, cookie
        assert login.headers["strict-transport-security"]
        # a form from the console's own page, as the browser sends it through the proxy: the Origin check passes,
        # and a made-up person is refused in words (not a CSRF refusal, not a server error)
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token, login.text[:500]
        answer = http.post(f"{console}/login", headers={"Origin": console}, data={
            "csrf_token": token[1], "person_id": unique("nobody"), "password": "not a password"})
        assert answer.status_code == 401 and "Not logged in" in answer.text, answer.text[:500]
    plain = httpx.get(f"http://localhost:{stack.ports['REROUTE_PUBLISH_CONSOLE_PORT']}/login", timeout=5)
    assert plain.status_code == 400  # TLS only


def test_the_notifier_asks_the_services_for_overdue_alerts_as_its_own_nats_user(stack: Stack) -> None:
    """Healthy (its mail settings from the .env taken, NATS reached), and a whole escalation round done: risk and
    scheduling asked for their unacknowledged alerts, its key-value bucket made, all as user `notifier`."""
    def rounds() -> float:
        page = stack.run("exec", "-T", "notifier", "python", "-c", "import urllib.request; print(urllib.request."
                         "urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())")
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                   if line.startswith("reroute_notifier_escalation_rounds_total"))

    deadline = time.monotonic() + 150  # a round every 60 s; the first may come before the services answer
    while rounds() < 1:
        assert time.monotonic() < deadline, stack.run("logs", "--no-color", "notifier")
        time.sleep(2)
    assert "emailing new safeguarding alerts to 2 lead address(es) through smtp.invalid:587" in stack.run(
        "logs", "--no-color", "notifier")


def test_a_referral_over_https_is_scheduled_and_again_after_a_service_and_nats_restart(stack: Stack) -> None:
    agency, language, mentor_id = unique("yot"), unique_language(), unique("m")
    added = stack.cli("agencies", "add", agency, "--name", "Compose test YOT")
    key, nats_user = re.search(r"HTTP API key:\s+(\S+)", added), re.search(r"user (\S+), password\s+(\S+)", added)
    assert key and nats_user, added
    assert asyncio.run(agency_connects(stack, nats_user[1], nats_user[2], agency))  # within seconds of being added
    stack.cli("mentors", "import", "/dev/stdin",
              input=json.dumps([mentor(mentor_id, language=language, max_caseload=5)]))

    first = wait_scheduled(stack, key[1], post_until_accepted(stack, key[1], referral(unique("REF"), language=language)))
    assert first["tier"] and first["first_session"]

    feed = re.search(r"iCalendar:\s+(\S+)", stack.cli("calendar", mentor_id, "--feed"))
    assert feed and feed[1].startswith(f"https://localhost:{stack.ports['REROUTE_PUBLISH_CALENDAR_PORT']}/"), feed
    with stack.https() as http:
        ics = http.get(feed[1])
    assert ics.status_code == 200 and "BEGIN:VEVENT" in ics.text, ics.text[:300]

    stack.run("restart", "scheduling")
    stack.run("restart", "nats")
    stack.wait_healthy()
    second = wait_scheduled(stack, key[1], post_until_accepted(stack, key[1], referral(unique("REF"), language=language)))
    assert second["referral_id"] != first["referral_id"]
    assert second["first_session"]
