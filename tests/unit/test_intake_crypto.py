"""Intake's keys: generated and kept with 0600 in the embedded default, refused with a clear reason when malformed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from services.intake.crypto import ENCRYPTION_KEY_FILE, MATCHING_KEY_FILE, UnreadablePersonalData, load_keys
from services.intake.settings import IntakeSettings
from shared.settings import ConfigurationError


def settings(tmp_path: Path, **values: str | None) -> IntakeSettings:
    """The embedded default (no external database) unless a test says otherwise."""
    return IntakeSettings(data_dir=tmp_path, **{"DATABASE_URL": None, **values})  # type: ignore[arg-type]


def test_with_an_external_database_intake_refuses_to_start_without_configured_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="REROUTE_INTAKE_ENCRYPTION_KEY is not set. With an external database"):
        load_keys(settings(tmp_path, DATABASE_URL="postgresql://someone@db.example/reroute"))
    assert not (tmp_path / ENCRYPTION_KEY_FILE).exists(), "no key is generated behind the operator's back"


def test_unset_keys_are_generated_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = load_keys(settings(tmp_path))
    token = first.cipher.encrypt("Jordan")
    again = load_keys(settings(tmp_path))

    assert again.cipher.decrypt(token) == "Jordan"
    for name in (ENCRYPTION_KEY_FILE, MATCHING_KEY_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert first.matcher.match_key("a", "b") == again.matcher.match_key("a", "b")
    assert {p.name for p in tmp_path.iterdir()} == {ENCRYPTION_KEY_FILE, MATCHING_KEY_FILE}, "no temporary files left"


def test_a_configured_key_is_used_and_an_old_one_still_decrypts_after_rotation(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = load_keys(settings(tmp_path, intake_encryption_key=old)).cipher.encrypt("Jordan")

    rotated = load_keys(settings(tmp_path, intake_encryption_key=f"{new},{old}"))

    assert rotated.cipher.decrypt(token) == "Jordan"
    assert Fernet(new.encode()).decrypt(rotated.cipher.encrypt("x").encode()) == b"x", "the first key encrypts"
    assert not (tmp_path / ENCRYPTION_KEY_FILE).exists()


def test_rotate_puts_a_value_under_the_first_key_and_leaves_one_already_there(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = load_keys(settings(tmp_path, intake_encryption_key=old)).cipher
    token, sealed = before.encrypt("Jordan"), before.seal(b"\x00 a dead letter")
    both = load_keys(settings(tmp_path, intake_encryption_key=f"{new},{old}")).cipher

    rotated, rotated_sealed = both.rotate(token), both.rotate_sealed(sealed)

    assert rotated is not None and rotated_sealed is not None
    only_new = load_keys(settings(tmp_path, intake_encryption_key=new)).cipher
    assert only_new.decrypt(rotated) == "Jordan" and only_new.unseal(rotated_sealed) == b"\x00 a dead letter"
    assert both.rotate(rotated) is None and both.rotate_sealed(rotated_sealed) is None, "under the first key already"
    with pytest.raises(UnreadablePersonalData):
        only_new.rotate(token)
    with pytest.raises(UnreadablePersonalData):
        only_new.rotate_sealed(b"not a token")


def test_a_wrong_key_cannot_read_and_says_what_to_do(tmp_path: Path) -> None:
    token = load_keys(settings(tmp_path)).cipher.encrypt("Jordan")
    other = load_keys(settings(tmp_path, intake_encryption_key=Fernet.generate_key().decode()))
    with pytest.raises(UnreadablePersonalData, match="add the old key"):
        other.cipher.decrypt(token)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("intake_encryption_key", "not-a-key", "REROUTE_INTAKE_ENCRYPTION_KEY: key #1 is not a Fernet key"),
    ("intake_encryption_key", f"{Fernet.generate_key().decode()},short", "key #2 is not a Fernet key"),
    ("intake_encryption_key", " , ", "REROUTE_INTAKE_ENCRYPTION_KEY is empty"),
    ("intake_matching_key", "c2hvcnQ=", "REROUTE_INTAKE_MATCHING_KEY is not at least 32"),
])
def test_a_malformed_configured_key_refuses_start_up_naming_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        load_keys(settings(tmp_path, **{variable: value}))
    assert "Fernet.generate_key" in str(refused.value) or "empty" in str(refused.value)


def test_a_damaged_kept_key_file_refuses_start_up_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / ENCRYPTION_KEY_FILE).write_text("garbage\n")
    with pytest.raises(ConfigurationError, match=ENCRYPTION_KEY_FILE):
        load_keys(settings(tmp_path))


def test_the_intake_process_refuses_to_start_with_a_malformed_key_and_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "REROUTE_DATA_DIR": str(tmp_path), "NATS_URL": "nats://127.0.0.1:1",
           "REROUTE_INTAKE_ENCRYPTION_KEY": "not-a-key"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "services.intake"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "intake cannot start: REROUTE_INTAKE_ENCRYPTION_KEY: key #1 is not a Fernet key" in done.stderr
    assert "Traceback" not in done.stderr
