"""Agency API keys: shown once, stored as salted hashes, rotated and revoked at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from services.intake.agencies import AgencyError, AgencyRegistry, agency_of_key, key_matches
from services.intake.tables import AgencyRecord
from tests.support.databases import intake_database

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with intake_database(tmp_path) as (migrated, _):
        yield migrated


@pytest.mark.parametrize(("key", "agency"), [
    ("rr1.yot-southwark.abcDEF_-123", "yot-southwark"),
    ("rr1.Yot.abc", None),
    ("rr2.yot.abc", None),
    ("rr1.yot", None),
    ("rr1.yot.a.b", None),
    ("", None),
])
def test_the_agency_is_read_from_the_key(key: str, agency: str | None) -> None:
    assert agency_of_key(key) == agency


async def test_only_the_current_key_of_an_active_agency_authenticates(engine: Engine) -> None:
    registry = AgencyRegistry(engine)
    agency, key, _ = registry.add("yot-a", "YOT A", now=NOW)

    assert agency.status == "active" and key.startswith("rr1.yot-a.")
    assert await registry.authenticate(key) == "yot-a"
    assert await registry.authenticate(key) == "yot-a", "the second check is served from the cache"
    assert await registry.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert await registry.authenticate(None) is None
    assert await registry.authenticate("rr1.nobody.xyz") is None

    _, new_key, _ = registry.rotate("yot-a", now=NOW)
    assert await registry.authenticate(key) is None, "rotation kills the old key at once, cache or not"
    assert await registry.authenticate(new_key) == "yot-a"

    registry.revoke("yot-a", now=NOW)
    assert await registry.authenticate(new_key) is None
    assert registry.all()[0].status == "revoked"


def test_the_key_itself_is_never_stored(engine: Engine) -> None:
    registry = AgencyRegistry(engine)
    _, key, _ = registry.add("yot-a", "YOT A", now=NOW)
    with engine.connect() as conn:
        row = conn.execute(select(AgencyRecord)).one()
    assert key not in str(tuple(row)) and key.rsplit(".", 1)[1] not in str(tuple(row))
    assert key_matches(key, salt_hex=row.key_salt, hash_hex=row.key_hash)
    assert not [f for f in registry.all()[0].model_dump() if "key" in f or "hash" in f]


@pytest.mark.parametrize(("action", "message"), [
    (lambda r: r.add("Bad Id", "X", now=NOW), "not valid"),
    (lambda r: r.add("yot-b", " ", now=NOW), "--name"),
    (lambda r: r.add("yot-a", "Again", now=NOW), "already registered"),
    (lambda r: r.rotate("nobody", now=NOW), "reroute agencies add nobody"),
    (lambda r: r.revoke("nobody", now=NOW), "no agency 'nobody'"),
])
def test_refusals_say_what_to_do(engine: Engine, action: object, message: str) -> None:
    registry = AgencyRegistry(engine)
    registry.add("yot-a", "YOT A", now=NOW)
    with pytest.raises(AgencyError, match=message):
        action(registry)  # type: ignore[operator]


def test_nats_credentials_are_issued_hashed_and_dropped_on_revoke(engine: Engine) -> None:
    import bcrypt

    registry = AgencyRegistry(engine)
    _, _, password = registry.add("yot-n", "YOT N", now=NOW)
    [entry] = [c for c in registry.nats_credentials() if c.agency_id == "yot-n"]
    assert entry.password_hash.startswith("$2a$") and password not in entry.password_hash
    assert bcrypt.checkpw(password.encode(), entry.password_hash.replace("$2a$", "$2b$", 1).encode())
    registry.revoke("yot-n", now=NOW)
    assert not [c for c in registry.nats_credentials() if c.agency_id == "yot-n"]


@pytest.mark.parametrize("reserved", ["intake", "risk", "scheduling", "operator", "admin"])
def test_a_service_or_operator_name_cannot_be_registered_as_an_agency(engine: Engine, reserved: str) -> None:
    with pytest.raises(AgencyError, match=f"agency id '{reserved}' is reserved for reroute itself"):
        AgencyRegistry(engine).add(reserved, "Impostor", now=NOW)


def test_ids_that_differ_only_in_dash_and_underscore_cannot_both_be_registered(engine: Engine) -> None:
    registry = AgencyRegistry(engine)
    first = f"yot-{uuid.uuid4().hex[:6]}"
    registry.add(first, "Youth offending team", now=NOW)
    with pytest.raises(AgencyError, match=f"too like the registered '{first}'"):
        registry.add(first.replace("-", "_"), "Look-alike", now=NOW)
