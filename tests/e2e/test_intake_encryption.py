"""What intake keeps encrypted stays so: equality-monitoring answers (special category data) are stored encrypted,
those an earlier version stored in plain are encrypted after the upgrade, and after `reroute keys reencrypt` intake
runs on the new key alone with every referral, answer and dead letter still readable."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert, inspect, select, text, update
from sqlmodel import col

from services.intake.tables import EqualityRecord, ReferralRecord
from shared.deadletters import DeadLetterRow
from shared.migrations import config, head, schema_of
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, ready, referral, service_engine, unique
from tests.support.suite import drop_schemas, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
KEY = "REROUTE_INTAKE_ENCRYPTION_KEY"


async def _refer(probe: Probe, cluster: Cluster, agency: str, answers: dict[str, str], n: int) -> list[str]:
    """Submit `n` referrals with these equality answers; their referral ids once risk has assessed them all."""
    arids = {unique("EQ") for _ in range(n)}
    for arid in arids:
        await probe.submit(agency, referral(arid, language="en", equality_monitoring=answers))
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] in arids,
                                    count=n, timeout=30)
    ids = {e["referral_id"] for e in accepted}
    await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] in ids, count=n, timeout=30)
    return sorted(ids)


def _rows(engine: Engine, referral_ids: list[str]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(EqualityRecord).where(col(EqualityRecord.referral_id).in_(referral_ids))))


def _audit(cluster: Cluster, tmp_path: Path) -> str:
    done = reroute(cluster, tmp_path, "audit")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _intake_key(cluster: Cluster) -> str:
    """The key intake encrypts with: configured, or the one it generated into the data dir."""
    return cluster.processes.env.get(KEY) or (cluster.data_dir / "intake-encryption.key").read_text().strip()


async def _restart_intake(cluster: Cluster, **env: str) -> None:
    cluster.processes.stop("intake")
    cluster.processes.env.update(env)
    cluster.processes.start("intake")
    await cluster.wait_ready(("intake",), timeout=60)


async def test_equality_answers_are_stored_encrypted_and_still_counted_by_the_audit(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    group, belief, need = f"Group {uuid.uuid4().hex[:8]}", f"Belief {uuid.uuid4().hex[:8]}", f"Need {uuid.uuid4().hex[:8]}"
    ids = await _refer(probe, cluster, unique("charity"),
                       {"ethnicity": group, "religion": belief, "disability": need}, 5)

    engine = service_engine(cluster, "intake")
    try:
        rows = _rows(engine, ids)
        with engine.connect() as conn:  # every value in every table of intake's database
            stored = json.dumps([[str(v) for v in record] for table in inspect(conn).get_table_names()
                                 for record in conn.execute(text(f'SELECT * FROM "{table}"'))])
    finally:
        engine.dispose()
    assert len(rows) == 5
    assert all(r.ethnicity is None and r.religion is None and r.disability is None for r in rows)
    assert all(json.loads(Fernet(_intake_key(cluster).encode()).decrypt(r.answers.encode())) ==
               {"ethnicity": group, "religion": belief, "disability": need} for r in rows), "encrypted with intake's key"
    for answer in (group, belief, need):
        assert answer not in stored, f"{answer!r} is stored in plain"

    report = _audit(cluster, tmp_path)
    for answer in (group, belief, need):
        assert f"{answer}: too few to compare (5 people)" in report, report


async def test_answers_an_earlier_version_stored_in_plain_are_encrypted_after_the_upgrade_and_still_counted(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    cluster = await ready(make_cluster(nats_server, tmp_path / "data", "equpgrade", isolated=True))
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    engine = service_engine(cluster, "intake")
    try:
        group = f"Group {uuid.uuid4().hex[:8]}"
        ids = await _refer(probe, cluster, unique("charity"), {"ethnicity": group, "religion": "Plain belief"}, 5)
        cluster.processes.stop("intake")
        _as_the_previous_version_left_it(engine, Fernet(_intake_key(cluster).encode()))
        with engine.connect() as conn:  # the previous version's rows: answers in plain
            plain = conn.execute(select(col(EqualityRecord.ethnicity))
                                 .where(col(EqualityRecord.referral_id).in_(ids))).scalars().all()
        assert plain == [group] * 5

        upgraded = _reroute_db_upgrade(cluster)
        assert upgraded.returncode == 0 and head("intake") in upgraded.stdout, upgraded.stdout + upgraded.stderr
        cluster.processes.start("intake")
        await cluster.wait_ready(("intake",), timeout=60)

        def none_plain() -> bool:
            rows = _rows(engine, ids)
            return len(rows) == 5 and all(r.ethnicity is None and r.religion is None and r.answers for r in rows)

        await wait_until(none_plain, timeout=40, what="intake encrypting the answers stored in plain")
        assert f"{group}: too few to compare (5 people)" in _audit(cluster, tmp_path)
        person_id = (await probe.rpc("intake", "status", {"referral_id": ids[0]}))["person_id"]
        exported = reroute(cluster, tmp_path, "person", "export", person_id)
        assert exported.returncode == 0, exported.stdout + exported.stderr
        answers = json.loads(exported.stdout)["intake"]["equality_monitoring"]  # the same young person each time
        assert sorted(answers, key=lambda a: a["referral_id"]) == [
            {"referral_id": rid, "ethnicity": group, "religion": "Plain belief", "disability": None} for rid in ids]
    finally:
        engine.dispose()
        await probe.close()
        cluster.processes.stop_all()
        drop_schemas(cluster)


def _as_the_previous_version_left_it(engine: Engine, fernet: Fernet) -> None:
    """The answers in the plain columns, and the schema at revision 0002, as the version before 0003 left them."""
    with engine.begin() as conn:
        for r in conn.execute(select(EqualityRecord)).all():
            answers = json.loads(fernet.decrypt(r.answers.encode()))
            conn.execute(update(EqualityRecord).where(col(EqualityRecord.referral_id) == r.referral_id)
                         .values(answers=None, **answers))
        command.downgrade(config("intake", conn), "0002")
    assert "answers" not in _columns(engine)


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("equality_monitoring", schema=schema_of(engine))}


def _reroute_db_upgrade(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    """`reroute db upgrade` on the cluster's databases, as an operator deploying this version runs it."""
    env = {**os.environ, "REROUTE_DATA_DIR": str(cluster.data_dir), "COLUMNS": "250",
           "REROUTE_DB_SCHEMA_PREFIX": cluster.processes.env["REROUTE_DB_SCHEMA_PREFIX"]}
    return subprocess.run([sys.executable, "-m", "apps.cli.main", "db", "upgrade"], env=env, capture_output=True,
                          text=True, check=False, timeout=90)


async def test_after_reencrypt_intake_runs_on_the_new_key_alone_and_reads_everything_it_kept(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    cluster = await ready(make_cluster(nats_server, tmp_path / "data", "rekey", isolated=True))
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    engine = service_engine(cluster, "intake")
    try:
        agency, group = unique("charity"), f"Group {uuid.uuid4().hex[:8]}"
        ids = await _refer(probe, cluster, agency, {"ethnicity": group}, 4)
        old, new = _intake_key(cluster), Fernet.generate_key().decode()
        dead_letter_id = f"intake-{uuid.uuid4().hex[:10]}"
        with engine.begin() as conn:  # a submission intake gave up on, sealed as it seals them
            conn.execute(insert(DeadLetterRow).values(
                id=dead_letter_id, message_key=unique("key"), consumer="intake-submitted",
                subject=cluster.subjects.submitted(agency), headers="{}", status="open", deliveries=5,
                body=Fernet(old.encode()).encrypt(b'{"young_person": "sealed poison"}'), failed_at=datetime.now(UTC),
                reason="RuntimeError after 5 deliveries; see the service log"))

        await _restart_intake(cluster, **{KEY: f"{new},{old}"})  # step 1: the new key in front
        ids += await _refer(probe, cluster, agency, {"ethnicity": group}, 1)  # written under the new key
        rekeyed = reroute(cluster, tmp_path, "keys", "reencrypt", "--batch", "2")  # step 2
        assert rekeyed.returncode == 0, rekeyed.stdout + rekeyed.stderr
        assert "Everything intake stores is under the first key" in rekeyed.stdout
        assert _table_row(rekeyed.stdout, "referral bodies")[:4] == ["5", "4", "0", "1"], rekeyed.stdout
        assert _table_row(rekeyed.stdout, "equality answers")[:4] == ["5", "4", "0", "1"], rekeyed.stdout
        assert _table_row(rekeyed.stdout, "dead letters")[:2] == ["1", "1"], rekeyed.stdout
        again = reroute(cluster, tmp_path, "keys", "reencrypt")
        assert _table_row(again.stdout, "referral bodies")[:2] == ["5", "0"], again.stdout

        only_new = Fernet(new.encode())
        with engine.connect() as conn:
            bodies = list(conn.execute(select(col(ReferralRecord.body)).where(col(ReferralRecord.referral_id).in_(ids)))
                          .scalars())
            sealed = conn.execute(select(col(DeadLetterRow.body)).where(col(DeadLetterRow.id) == dead_letter_id)).scalar()
        assert len(bodies) == 5 and all(only_new.decrypt(b.encode()) for b in bodies)
        assert all(only_new.decrypt(r.answers.encode()) for r in _rows(engine, ids))
        assert sealed is not None and only_new.decrypt(sealed) == b'{"young_person": "sealed poison"}'

        await _restart_intake(cluster, **{KEY: new})  # step 3: the old key dropped
        for rid in ids:
            shown = reroute(cluster, tmp_path, "status", rid)
            assert shown.returncode == 0 and rid in shown.stdout, shown.stdout + shown.stderr
        person_id = (await probe.rpc("intake", "status", {"referral_id": ids[0]}))["person_id"]
        exported = reroute(cluster, tmp_path, "person", "export", person_id)
        assert exported.returncode == 0, exported.stdout + exported.stderr
        intake = json.loads(exported.stdout)["intake"]
        assert {r["referral"]["young_person"]["given_name"] for r in intake["referrals"]} == {"Jordan"}
        assert {e["ethnicity"] for e in intake["equality_monitoring"]} == {group}
        assert f"{group}: too few to compare (5 people)" in _audit(cluster, tmp_path)
        letter = reroute(cluster, tmp_path, "deadletter", "show", dead_letter_id, "--body")
        assert letter.returncode == 0 and "sealed poison" in letter.stdout, letter.stdout + letter.stderr
        again_ids = await _refer(probe, cluster, agency, {"ethnicity": group}, 1)  # and it takes new referrals
        assert len(again_ids) == 1
    finally:
        engine.dispose()
        await probe.close()
        cluster.processes.stop_all()
        drop_schemas(cluster)


def _table_row(output: str, name: str) -> list[str]:
    """The counts in the row of `reroute keys reencrypt`'s table that starts with `name`."""
    line = next(line for line in output.splitlines() if name in line)
    return [cell.strip() for cell in re.split(r"[│┃|]", line)[2:-1]]
