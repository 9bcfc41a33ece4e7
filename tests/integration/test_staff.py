"""Intake's registry of people (services/intake/staff.py) on its real, migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
import pytest

from services.intake.staff import StaffError, StaffRegistry
from shared.contracts.rpc import Role
from tests.support.databases import intake_database

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def staff(tmp_path: Path) -> Iterator[StaffRegistry]:
    with intake_database(tmp_path) as (engine, _):
        yield StaffRegistry(engine)


def test_only_a_hash_is_kept_and_only_active_people_reach_the_server(staff: StaffRegistry) -> None:
    member, credentials = staff.add("sam", [Role.SCHEDULER, Role.DSL, Role.SCHEDULER], now=NOW)
    assert member.roles == [Role.SCHEDULER, Role.DSL] and credentials.nats_user == "person-sam"
    (kept,) = staff.nats_credentials()
    assert kept.password_hash != credentials.password
    assert bcrypt.checkpw(credentials.password.encode(), kept.password_hash.replace("$2a$", "$2b$", 1).encode())
    staff.add("admin", [Role.ADMIN], now=NOW)
    staff.remove("sam", now=NOW)
    assert [p.person_id for p in staff.nats_credentials()] == ["admin"]
    assert staff.member("sam") is not None and staff.member("sam").status == "removed"  # type: ignore[union-attr]


def test_a_removed_person_added_again_gets_a_new_password(staff: StaffRegistry) -> None:
    _, first = staff.add("rita", [Role.RISK_LEAD], now=NOW)
    staff.add("boss", [Role.ADMIN], now=NOW)
    staff.remove("rita", now=NOW)
    _, second = staff.add("rita", [Role.RISK_LEAD], now=NOW)
    assert second.password != first.password and staff.member("rita").status == "active"  # type: ignore[union-attr]


@pytest.mark.parametrize(("person_id", "message"), [
    ("Sam Okafor", "person id 'Sam Okafor' is not valid"),
    ("-sam", "person id '-sam' is not valid"),
])
def test_a_malformed_id_is_refused_naming_the_rule(staff: StaffRegistry, person_id: str, message: str) -> None:
    with pytest.raises(StaffError, match=message):
        staff.add(person_id, [Role.SCHEDULER], now=NOW)


def test_the_first_admin_is_made_once_and_the_last_admin_cannot_be_removed(staff: StaffRegistry) -> None:
    staff.add("first", [Role.ADMIN], now=NOW, only_first_admin=True)
    with pytest.raises(StaffError, match="an admin exists already"):
        staff.add("second", [Role.ADMIN], now=NOW, only_first_admin=True)
    with pytest.raises(StaffError, match="'first' is the last admin"):
        staff.remove("first", now=NOW)
    staff.add("second", [Role.ADMIN], now=NOW)
    assert staff.remove("first", now=NOW).status == "removed"
    with pytest.raises(StaffError, match="no active person 'sam'"):
        staff.remove("sam", now=NOW)
