"""Backup and restore for real (issue 13, item 3): a stack processes referrals, `reroute backup create` takes its
databases and intake's keys, the store and the keys are wiped, `reroute backup restore` brings them back, and a new
stack on the restored store (and a fresh broker namespace: the broker is not in a backup) reads every referral again,
decrypted, through the CLI. On SQLite with the embedded keys, and on PostgreSQL with configured keys."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from services.intake.tables import ReferralRecord
from shared.migrations import head
from tests.support.cli import reroute
from tests.support.cluster import (
    Cluster,
    Probe,
    launch_cluster,
    mentor,
    ready,
    referral,
    service_engine,
    unique,
    unique_language,
)
from tests.support.suite import drop_schemas, make_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NAMES = ("Amara", "Bilal", "Chidi")


def backup_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`reroute backup ARGS` as an operator on the services' host runs it, with their environment."""
    return subprocess.run([sys.executable, "-m", "apps.cli.main", "backup", *args], env={**env, "COLUMNS": "250"},
                          capture_output=True, text=True, timeout=120, check=False)


def wipe(cluster: Cluster, env: dict[str, str]) -> dict[str, str]:
    """Lose the store and the keys, as a dead disk or a dropped database would; returns the environment left."""
    for path in [*cluster.data_dir.glob("*.db*"), *cluster.data_dir.glob("intake-*.key")]:
        path.unlink()
    drop_schemas(cluster)
    return {k: v for k, v in env.items() if not k.startswith("REROUTE_INTAKE_") or not k.endswith("_KEY")}


async def referrals_scheduled(cluster: Cluster) -> dict[str, str]:
    """Three referrals, each of another young person, taken to booked sessions: {referral id: given name}."""
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    try:
        lang, agency = unique_language(), unique("yot")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        arids = {}
        for name in NAMES:
            arid = unique("REF")
            body = referral(arid, language=lang)
            body["young_person"]["given_name"] = name
            await probe.submit(agency, body)
            arids[arid] = name
        done = {}
        for arid, name in arids.items():
            rid = (await probe.wait_for(cluster.subjects.accepted(agency),
                                        lambda e, a=arid: e["agency_referral_id"] == a, timeout=30))[0]["referral_id"]
            await probe.wait_for(cluster.subjects.scheduled(agency), lambda e, r=rid: e["referral_id"] == r,
                                 timeout=30)
            done[rid] = name
        return done
    finally:
        await probe.close()


def people(cluster: Cluster, referral_ids: list[str]) -> dict[str, str]:
    """{referral id: person id}, as intake stored them."""
    engine = service_engine(cluster, "intake")
    with engine.connect() as conn:
        rows = conn.execute(select(ReferralRecord.referral_id, ReferralRecord.person_id))
        found = {rid: pid for rid, pid in rows if rid in referral_ids}
    engine.dispose()
    return found


async def test_a_stack_restored_from_a_backup_reads_every_referral_again(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    cluster = await ready(make_cluster(nats_server, tmp_path / "data", "backup", isolated=True))
    env = dict(cluster.processes.env)
    try:
        names = await referrals_scheduled(cluster)
    finally:
        cluster.processes.stop_all()
    persons = people(cluster, list(names))
    assert len(set(persons.values())) == len(NAMES)
    backup = tmp_path / "backup"

    made = backup_cli(env, "create", str(backup))
    assert made.returncode == 0, made.stdout + made.stderr
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["migrations"] == {s: head(s) for s in ("intake", "risk", "scheduling")}
    assert (backup / "intake-keys.env").stat().st_mode & 0o077 == 0, "the keys file is its owner's alone"

    over = backup_cli(env, "restore", str(backup))
    assert over.returncode == 1 and "the store holds data already" in over.stdout, over.stdout + over.stderr

    left = wipe(cluster, env)
    postgres, keys = bool(env.get("DATABASE_URL")), {}
    if postgres:  # a deployment configures its keys: the operator sets them from the backup's keys file
        keys = dict(line.split("=", 1) for line in (backup / "intake-keys.env").read_text().splitlines())
        left = {**left, **keys}
    done = backup_cli(left, "restore", str(backup))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Erasures made since" in done.stdout

    back = launch_cluster(cluster.nats_url, cluster.data_dir, namespace=f"{cluster.namespace}back",
                          schema_prefix=env["REROUTE_DB_SCHEMA_PREFIX"],
                          per_service={"intake": keys} if postgres else None)
    try:
        await ready(back)
        for rid, name in names.items():
            shown = await asyncio.to_thread(reroute, back, back.data_dir, "person", "export", persons[rid])
            assert shown.returncode == 0, shown.stdout + shown.stderr
            [stored] = json.loads(shown.stdout)["intake"]["referrals"]
            assert stored["referral_id"] == rid and stored["referral"]["young_person"]["given_name"] == name
            status = await asyncio.to_thread(reroute, back, back.data_dir, "status", rid)
            assert "Scheduled with" in status.stdout, status.stdout + status.stderr
    finally:
        back.processes.stop_all()
        drop_schemas(back)


def test_keys_file_names_are_intakes() -> None:
    """The CLI does not import a service: its names for intake's key files must be the ones intake uses."""
    from apps.cli.backup import KEY_FILES
    from services.intake.crypto import ENCRYPTION_KEY_FILE, MATCHING_KEY_FILE

    assert set(KEY_FILES.values()) == {ENCRYPTION_KEY_FILE, MATCHING_KEY_FILE}
