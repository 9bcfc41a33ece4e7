"""What `reroute backup` refuses, before it touches anything (apps/cli/backup.py), on a real store: SQLite, or
PostgreSQL when DATABASE_URL is set (schemas of this test's own)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from apps.cli.backup import BackupError, BackupSettings, create, restore
from apps.devstack.processes import SERVICES
from shared.db import make_engine
from shared.migrations import upgrade_all


def _keys() -> dict[str, str]:
    return {"intake_encryption_key": Fernet.generate_key().decode(),
            "intake_matching_key": Fernet.generate_key().decode()}


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[BackupSettings]:
    """A migrated store with intake's keys configured, as a deployment has them."""
    made = BackupSettings(data_dir=tmp_path / "data", db_schema_prefix=f"tb{uuid.uuid4().hex[:10]}",
                          DATABASE_URL=os.environ.get("DATABASE_URL"), **_keys())  # type: ignore[call-arg]
    upgrade_all(made)
    try:
        yield made
    finally:
        if made.database_url:
            engine = make_engine("intake", made)
            with engine.begin() as conn:
                for service in SERVICES:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{made.db_schema_prefix}_{service}" CASCADE'))
            engine.dispose()


def test_a_backup_is_made_only_into_a_new_directory(settings: BackupSettings, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    target.mkdir()
    (target / "something").write_text("kept")
    with pytest.raises(BackupError, match="is not empty: back up into a new directory"):
        create(settings, target)
    assert [p.name for p in target.iterdir()] == ["something"]


def test_a_damaged_backup_is_refused_naming_the_file(settings: BackupSettings, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    manifest = create(settings, backup)
    damaged = backup / next(iter(manifest["files"]))
    data = damaged.read_bytes()
    damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit
    with pytest.raises(BackupError, match=f"{damaged} does not match its checksum in the manifest"):
        restore(settings, backup, force=True)


def test_another_backups_keys_file_is_refused(settings: BackupSettings, tmp_path: Path) -> None:
    create(settings, tmp_path / "one")
    other = settings.model_copy(update={k: type(settings.intake_encryption_key)(v) for k, v in _keys().items()})
    create(other, tmp_path / "two")
    with pytest.raises(BackupError, match="the keys file is not the one made with this backup"):
        restore(settings, tmp_path / "one", keys_file=tmp_path / "two" / "intake-keys.env", force=True)


def test_configured_keys_that_are_not_the_backups_are_refused(settings: BackupSettings, tmp_path: Path) -> None:
    create(settings, tmp_path / "backup")
    other = settings.model_copy(update={k: type(settings.intake_encryption_key)(v) for k, v in _keys().items()})
    with pytest.raises(BackupError, match="REROUTE_INTAKE_ENCRYPTION_KEY and REROUTE_INTAKE_MATCHING_KEY as "
                                          "configured are not the backup's keys"):
        restore(other, tmp_path / "backup", force=True)


def test_a_store_holding_data_is_replaced_only_with_force(settings: BackupSettings, tmp_path: Path) -> None:
    create(settings, tmp_path / "backup")
    with pytest.raises(BackupError, match=r"the store holds data already \(intake, risk, scheduling\)"):
        restore(settings, tmp_path / "backup")
    manifest, _ = restore(settings, tmp_path / "backup", force=True)
    assert manifest["database"] == ("postgresql" if settings.database_url else "sqlite")


def test_keys_a_half_configured_installation_has_are_refused(tmp_path: Path) -> None:
    half = BackupSettings(data_dir=tmp_path, intake_encryption_key=Fernet.generate_key().decode())  # type: ignore[arg-type]
    with pytest.raises(BackupError, match="REROUTE_INTAKE_MATCHING_KEY not set while the other key is"):
        create(half, tmp_path / "backup")


def test_keys_kept_apart_are_asked_for_and_then_used(settings: BackupSettings, tmp_path: Path) -> None:
    apart = tmp_path / "elsewhere.env"
    create(settings, tmp_path / "backup", keys_out=apart)
    assert not (tmp_path / "backup" / "intake-keys.env").exists() and apart.stat().st_mode & 0o077 == 0
    with pytest.raises(BackupError, match="keys were written apart from it \\(--keys-out\\): give that file with --keys"):
        restore(settings, tmp_path / "backup", force=True)
    _, where = restore(settings, tmp_path / "backup", keys_file=apart, force=True)
    assert where == "the configured keys are the backup's"
