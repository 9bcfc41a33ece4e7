"""The compose stack's backup and restore, as the README (Operate) tells an operator: referrals booked, the services
stopped, `pg_dump` in the postgres container, everything removed (volumes too), the database restored with
`pg_restore` into a new postgres with the same `.env` (it holds intake's keys), the stack started again, and each
referral is there and read back decrypted.

Needs what tests/deploy/test_compose.py needs (a Docker engine, a compose command, `make images`); skipped without
them, a failure under REROUTE_REQUIRE_DOCKER=1."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.deploy.test_compose import (
    COMPOSE_FILES,
    ROOT,
    Stack,
    clean_env,
    compose_command,
    free_port,
    missing_docker,
    post_until_accepted,
    stack_env,
    wait_scheduled,
)
from tests.support.cluster import mentor, referral, unique, unique_language

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

SCHEMAS = ("intake", "risk", "scheduling")


def _moment(stamp: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, trailing zeros trimmed) as seconds since the epoch."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")


def _make(stack: Stack, target: str, backup: Path) -> str:
    """`make TARGET` on this test's stack (its project, .env and compose files), failing with its output."""
    compose = " ".join([*stack.compose, *(a for f in COMPOSE_FILES for a in ("-f", str(ROOT / f)))])
    done = subprocess.run(["make", "--no-print-directory", target, f"COMPOSE={compose}",
                           f"COMPOSE_PROJECT={stack.project}", f"COMPOSE_ENV={stack.env_file}", f"BACKUP={backup}"],
                          capture_output=True, text=True, timeout=600, env=clean_env(), cwd=ROOT, check=False)
    assert done.returncode == 0, f"make {target}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_stack_comes_back_from_a_pg_dump_with_every_referral_readable(tmp_path: Path) -> None:
    ports = {"REROUTE_PUBLISH_API_PORT": free_port(), "REROUTE_PUBLISH_CALENDAR_PORT": free_port(),
             "REROUTE_PUBLISH_CONSOLE_PORT": free_port(), "REROUTE_PUBLISH_NATS_PORT": free_port()}
    env_file = tmp_path / ".env"
    env_file.write_text(stack_env(ports))  # the notifier's mail settings too: it is healthy only with them
    compose = compose_command()
    problem = missing_docker(compose, env_file)
    if problem:
        pytest.skip(f"compose stack not run: {problem}")
    assert compose is not None
    stack = Stack(compose, f"reroute-backup-{uuid.uuid4().hex[:8]}", env_file, tmp_path / "ca.crt", ports)
    try:
        stack.run("up", "-d", "--no-build", timeout=600)
        stack.wait_healthy()
        stack.ca_file.write_text(stack.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "cat", "cli",
                                           "/certs/ca.crt"))
        tester = stack.admit_tester()
        agency, language = unique("yot"), unique_language()
        added = stack.cli("agencies", "add", agency, "--name", "Backup test YOT")
        found = re.search(r"HTTP API key:\s+(\S+)", added)
        assert found, added
        key = found[1]
        stack.cli("mentors", "import", "/dev/stdin", input=json.dumps([mentor(unique("m"), language=language)]))
        booked = {}
        for name in ("Amara", "Bilal"):
            body = referral(unique("REF"), language=language)
            body["young_person"]["given_name"] = name
            status = wait_scheduled(stack, key, post_until_accepted(stack, key, body))
            booked[status["referral_id"]] = name

        backup = tmp_path / "backup"
        _make(stack, "compose-backup", backup)
        assert (backup / "compose.env").stat().st_mode & 0o077 == 0, "the keys are their owner's alone"
        stack.wait_healthy()  # the services are started again after the dump
        refused = subprocess.run(["make", "--no-print-directory", "compose-restore", f"COMPOSE_PROJECT={stack.project}",
                                  f"COMPOSE_ENV={stack.env_file}", f"BACKUP={backup}"], capture_output=True,
                                 text=True, timeout=120, env=clean_env(), cwd=ROOT, check=False)
        assert refused.returncode != 0 and "_pg-data exists: restore only into a stack without one" in refused.stdout
        stack.run("down", "--volumes", "--timeout", "20", timeout=300)  # the data is gone; the .env too
        stack.env_file.unlink()

        _make(stack, "compose-restore", backup)
        stack.wait_healthy()
        # the migrations ran as their one-shot container, to its end, before any service started
        migrate = stack.container("migrate")["State"]
        assert migrate["Status"] == "exited" and migrate["ExitCode"] == 0, migrate
        for service in ("intake", "risk", "scheduling"):
            assert _moment(migrate["FinishedAt"]) <= _moment(stack.container(service)["State"]["StartedAt"]), service
        stack.ca_file.write_text(stack.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "cat", "cli",
                                           "/certs/ca.crt"))  # the certs volume went too: a new local CA
        stack.put_back_tester(tester)  # and the people volume: the restored registry still knows them

        with stack.https() as http:
            for rid, name in booked.items():
                after = http.get(f"{stack.api}/v1/referrals/{rid}", headers={"Authorization": f"Bearer {key}"})
                assert after.status_code == 200, after.text
                assert after.json()["status"] == "scheduled"
                person = stack.sql_as("intake", f"select person_id from intake.referral where referral_id = '{rid}'")
                assert person.returncode == 0 and person.stdout.strip(), person.stderr
                exported = json.loads(stack.cli("person", "export", person.stdout.strip()))
                [stored] = exported["intake"]["referrals"]
                assert stored["referral"]["young_person"]["given_name"] == name  # decrypted with the .env's key
    finally:
        print(stack.run("logs", "--no-color", "--tail", "40", check=False))
        stack.run("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
