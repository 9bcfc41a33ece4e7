"""The provisioner's password (the one NATS user that may create and update the streams) is made where the others
are, added to an install from before it without touching what it kept, and given only to where provisioning runs:
`reroute up`'s data dir, the compose migrate step; the NATS container gets its bcrypt hash, the CLI container
neither (the Kubernetes manifests: tests/deploy/test_k8s.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from dotenv import dotenv_values

from apps.container.env import PROVISIONER_HASH, PROVISIONER_PASSWORD, compose_env
from apps.container.env import main as compose_env_main
from shared.nats_auth import ADMIN, PROVISIONER, SERVICES_ACCOUNT, LocalCredentials, NatsAuthFile

ROOT = Path(__file__).resolve().parents[2]


def _matches(password: str, password_hash: str) -> bool:
    return bcrypt.checkpw(password.encode(), password_hash.encode())


def test_a_data_dir_from_before_the_provisioner_gets_its_password_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "nats-credentials.json"
    path.touch(mode=0o600)
    earlier = {name: f"kept-{name}" for name in ("intake", "risk", "scheduling", ADMIN, "console", "notifier")}
    path.write_text(json.dumps(earlier))

    creds = LocalCredentials.load_or_create(path)

    stored = json.loads(path.read_text())
    assert {k: v for k, v in stored.items() if k != PROVISIONER} == earlier, "every kept password is kept"
    assert len(stored[PROVISIONER]) >= 24 and creds.passwords == stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalCredentials.load_or_create(path).passwords == stored, "made once"
    auth = NatsAuthFile(tmp_path / "nats-auth.conf", creds)
    auth.write(agencies=[])
    users = {u["user"]: u for u in json.loads(auth.path.read_text())["accounts"][SERVICES_ACCOUNT]["users"]}
    assert _matches(stored[PROVISIONER], users[PROVISIONER]["password"])


def test_a_fresh_compose_env_holds_the_provisioners_password_and_its_hash_as_compose_reads_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(compose_env())
    assert f"\n{PROVISIONER_HASH}='$2" in env.read_text(), "quoted: compose v2 would take `$2a` for a variable"
    values = dotenv_values(env, interpolate=True)  # compose expands `$…` in a value unless it is single-quoted
    assert _matches(values[PROVISIONER_PASSWORD] or "", values[PROVISIONER_HASH] or "")


def test_an_env_from_before_the_provisioner_gets_it_added_and_nothing_else_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / ".env"
    earlier = "\n".join(line for line in compose_env().splitlines() if "PROVISIONER" not in line) + "\n"
    env.write_text(earlier)

    assert compose_env_main([str(env)]) == 0

    text = env.read_text()
    assert text.startswith(earlier), "every line kept as it was"
    added = text.removeprefix(earlier).splitlines()
    assert [line.split("=", 1)[0] for line in added] == [PROVISIONER_PASSWORD, PROVISIONER_HASH]
    values = dotenv_values(env, interpolate=True)
    assert _matches(values[PROVISIONER_PASSWORD] or "", values[PROVISIONER_HASH] or "")
    assert PROVISIONER_PASSWORD in capsys.readouterr().err, "it says what it added"
    compose_env_main([str(env)])
    assert env.read_text() == text, "nothing more to add"


def test_an_env_with_the_password_but_no_hash_gets_the_hash_of_that_password(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("\n".join(line for line in compose_env().splitlines() if PROVISIONER_HASH not in line) + "\n")
    password = dotenv_values(env)[PROVISIONER_PASSWORD] or ""

    compose_env_main([str(env)])

    values = dotenv_values(env, interpolate=True)
    assert values[PROVISIONER_PASSWORD] == password and _matches(password, values[PROVISIONER_HASH] or "")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_in_compose_only_the_migrate_step_has_the_provisioners_password_and_nats_its_hash() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    holders = {name for name, s in services.items()
               if any(f"${{{PROVISIONER_PASSWORD}:" in v for v in _environment(s).values())}
    hashers = {name for name, s in services.items()
               if any(f"${{{PROVISIONER_HASH}:" in v for v in _environment(s).values())}
    assert holders == {"migrate"} and hashers == {"nats"}
    assert _environment(services["migrate"])["NATS_URL"].startswith("tls://provisioner:")
    assert _environment(services["cli"])["NATS_URL"].startswith("tls://operator:"), "the CLI keeps the operator's"
