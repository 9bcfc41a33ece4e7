"""Console passwords as intake keeps them (services/intake/console_logins.py), on its real, migrated database: only an
argon2id hash, one-time until the person chooses their own, five wrong in a row lock the log-in, an admin's new
one-time password lifts the lock (and clears the authenticator), a removed person's password goes with them; an
authenticator code is accepted in its 30-second step or one either side, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from services.intake.console_logins import (
    LOCK_FOR,
    MAX_FAILURES,
    ConsoleLogins,
    after_attempt,
    code_step,
    hash_password,
    needs_second_factor,
    refused_unless_open,
    verify,
)
from services.intake.staff import StaffRegistry
from shared.contracts.rpc import NotFound, Refused, Role
from tests.support.databases import intake_database

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[StaffRegistry, ConsoleLogins]]:
    with intake_database(tmp_path) as (engine, _):
        yield StaffRegistry(engine), ConsoleLogins(engine)


def test_the_fifth_wrong_password_in_a_row_locks_and_a_right_one_clears_the_count() -> None:
    failed, locked = 0, None
    for _ in range(MAX_FAILURES - 1):
        failed, locked = after_attempt(failed, right=False, now=NOW)
    assert (failed, locked) == (MAX_FAILURES - 1, None)
    assert after_attempt(failed, right=True, now=NOW) == (0, None)
    assert after_attempt(failed, right=False, now=NOW) == (0, NOW + LOCK_FOR)


def test_only_an_argon2id_hash_is_kept_and_a_missing_one_matches_nothing() -> None:
    kept = hash_password("correct horse battery staple")
    assert kept.startswith("$argon2id$") and "correct" not in kept
    assert verify(kept, "correct horse battery staple")
    assert not verify(kept, "correct horse battery stable")
    assert not verify(None, "anything") and not verify("not a hash", "anything")


def test_a_one_time_password_for_an_active_person_only(registry: tuple[StaffRegistry, ConsoleLogins]) -> None:
    staff, logins = registry
    staff.add("dana", [Role.DSL], now=NOW)
    password = logins.issue("dana", now=NOW)
    stored = logins.stored("dana")
    assert stored is not None and stored.one_time and stored.roles == [Role.DSL]
    assert verify(stored.password_hash, password) and password not in (stored.password_hash or "")
    with pytest.raises(NotFound):
        logins.issue("nobody", now=NOW)
    logins.replace("dana", hash_password("dana's own passphrase"), now=NOW)
    assert logins.stored("dana").one_time is False  # type: ignore[union-attr]


def test_a_lock_holds_until_it_lapses_or_an_admin_issues_a_new_password(
        registry: tuple[StaffRegistry, ConsoleLogins]) -> None:
    staff, logins = registry
    staff.add("dana", [Role.DSL], now=NOW)
    logins.issue("dana", now=NOW)
    locked = None
    for _ in range(MAX_FAILURES):
        locked = logins.record("dana", right=False, now=NOW)
    assert locked == NOW + LOCK_FOR
    with pytest.raises(Refused, match="locked until 09:15 UTC"):
        refused_unless_open(logins.stored("dana"), now=NOW + timedelta(minutes=14))
    refused_unless_open(logins.stored("dana"), now=NOW + LOCK_FOR + timedelta(seconds=1))  # lapsed
    logins.issue("dana", now=NOW)
    refused_unless_open(logins.stored("dana"), now=NOW)  # lifted


def test_a_removed_person_cannot_log_in_and_comes_back_without_their_old_password(
        registry: tuple[StaffRegistry, ConsoleLogins]) -> None:
    staff, logins = registry
    staff.add("boss", [Role.ADMIN], now=NOW)
    staff.add("dana", [Role.DSL], now=NOW)
    logins.issue("dana", now=NOW)
    staff.remove("dana", now=NOW)
    assert logins.stored("dana") is None
    staff.add("dana", [Role.DSL], now=NOW)
    stored = logins.stored("dana")
    assert stored is not None and stored.password_hash is None


SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_code_is_accepted_in_its_step_or_one_either_side_and_only_after_the_last_accepted() -> None:
    totp, step = pyotp.TOTP(SECRET), int(NOW.timestamp()) // 30
    assert code_step(SECRET, totp.at(NOW), now=NOW, after=None) == step
    assert code_step(SECRET, totp.at(NOW + timedelta(seconds=30)), now=NOW, after=step) == step + 1
    assert code_step(SECRET, totp.at(NOW - timedelta(seconds=30)), now=NOW, after=None) == step - 1
    assert code_step(SECRET, totp.at(NOW - timedelta(seconds=90)), now=NOW, after=None) is None
    assert code_step(SECRET, totp.at(NOW), now=NOW, after=step) is None, "a code is accepted once"
    assert code_step(SECRET, " ".join([totp.at(NOW)[:3], totp.at(NOW)[3:]]), now=NOW, after=None) == step
    assert code_step(SECRET, "12345", now=NOW, after=None) is None and code_step(SECRET, "", now=NOW, after=None) is None


def test_an_authenticator_is_set_up_once_and_a_new_one_time_password_clears_it(
        registry: tuple[StaffRegistry, ConsoleLogins]) -> None:
    staff, logins = registry
    staff.add("dana", [Role.DSL], now=NOW)
    logins.issue("dana", now=NOW)
    assert logins.stored("dana").totp_in_use is False  # type: ignore[union-attr]
    logins.begin_second_factor("dana", "sealed-1")
    logins.begin_second_factor("dana", "sealed-2")  # not confirmed yet: replaced
    assert not logins.confirm_second_factor("dana", "sealed-1", step=7, now=NOW), "the secret shown first is gone"
    assert logins.confirm_second_factor("dana", "sealed-2", step=7, now=NOW)
    stored = logins.stored("dana")
    assert stored is not None and stored.totp_in_use and stored.totp_last_step == 7 and stored.totp_secret == "sealed-2"
    with pytest.raises(Refused, match="authenticator in use already"):
        logins.begin_second_factor("dana", "sealed-3")
    logins.record("dana", right=True, now=NOW, step=9)
    assert logins.stored("dana").totp_last_step == 9  # type: ignore[union-attr]
    logins.issue("dana", now=NOW)
    stored = logins.stored("dana")
    assert stored is not None and not stored.totp_in_use and stored.totp_secret is None


def test_who_needs_a_second_factor() -> None:
    assert needs_second_factor([Role.DSL]) and needs_second_factor([Role.SCHEDULER, Role.ADMIN])
    assert needs_second_factor([Role.DPO]), "the access log says who looked at which child"
    assert not needs_second_factor([Role.SCHEDULER, Role.RISK_LEAD, Role.OPERATOR])


def test_authenticator_secrets_move_to_the_first_key_with_the_rest(
        registry: tuple[StaffRegistry, ConsoleLogins]) -> None:
    from cryptography.fernet import Fernet

    from services.intake.crypto import PersonalDataCipher
    from services.intake.store import reencrypt

    staff, logins = registry
    old, new = Fernet.generate_key(), Fernet.generate_key()
    staff.add("dana", [Role.DSL], now=NOW)
    logins.issue("dana", now=NOW)
    logins.begin_second_factor("dana", PersonalDataCipher([old]).encrypt(SECRET))
    with logins._engine.begin() as conn:
        done = reencrypt(conn, PersonalDataCipher([new, old]), "console_credential", after="", limit=10)
    assert (done.total, done.reencrypted) == (1, 1)
    stored = logins.stored("dana")
    assert stored is not None and PersonalDataCipher([new]).decrypt(stored.totp_secret or "") == SECRET
