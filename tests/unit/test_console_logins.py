"""Console passwords as intake keeps them (services/intake/console_logins.py), on its real, migrated database: only an
argon2id hash, one-time until the person chooses their own, five wrong in a row lock the log-in, an admin's new
one-time password lifts the lock, and a removed person's password goes with them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.intake.console_logins import (
    LOCK_FOR,
    MAX_FAILURES,
    ConsoleLogins,
    after_attempt,
    hash_password,
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
