"""Checking agencies' API keys: a fast salted hash, old scrypt hashes upgraded on use, failed attempts limited per
client address, and that address read from X-Forwarded-For only behind a trusted proxy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select, update
from starlette.requests import Request

from services.intake.agencies import AgencyRegistry, FailedAttempts, hash_key, key_matches
from services.intake.settings import IntakeSettings
from services.intake.tables import AgencyRecord
from shared.proxies import client_address
from tests.support.databases import intake_database

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with intake_database(tmp_path) as (migrated, _):
        yield migrated


def stored_hash(engine: Engine, agency_id: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(AgencyRecord.key_hash).where(  # type: ignore[call-overload]
            AgencyRecord.agency_id == agency_id)).scalar_one())


def test_a_key_is_kept_as_a_prefixed_hmac_under_its_own_salt(engine: Engine) -> None:
    _, key, _ = AgencyRegistry(engine).add("yot-a", "YOT A", now=NOW)
    kept = stored_hash(engine, "yot-a")

    assert kept.startswith("hmac-sha256:") and len(kept) == len("hmac-sha256:") + 64
    assert hash_key(key, bytes(16)) != hash_key(key, bytes(range(16))), "the salt keys the hash"


async def test_an_old_scrypt_hash_lets_its_key_in_once_and_is_rewritten_as_the_fast_hash(engine: Engine) -> None:
    registry = AgencyRegistry(engine)
    _, key, _ = registry.add("yot-a", "YOT A", now=NOW)
    salt = bytes(range(16))
    old = hashlib.scrypt(key.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()
    with engine.begin() as conn:
        conn.execute(update(AgencyRecord).values(key_salt=salt.hex(), key_hash=old))

    assert key_matches(key, salt_hex=salt.hex(), hash_hex=old)
    assert await registry.authenticate(key, allow_slow=False) is None, "over budget: no scrypt spent"
    assert stored_hash(engine, "yot-a") == old
    assert await registry.authenticate(key[:-1] + ("B" if key[-1] == "A" else "A")) is None
    assert stored_hash(engine, "yot-a") == old, "a wrong key changes nothing"
    assert await registry.authenticate(key) == "yot-a"
    assert stored_hash(engine, "yot-a") == hash_key(key, salt)
    assert await registry.authenticate(key, allow_slow=False) == "yot-a", "the fast hash needs no permission"


async def test_unknown_revoked_and_malformed_keys_are_refused(engine: Engine) -> None:
    registry = AgencyRegistry(engine)
    _, key, _ = registry.add("yot-a", "YOT A", now=NOW)
    for wrong in ("", "rr1.nobody." + "A" * 43, "garbage", key + "x"):
        assert await registry.authenticate(wrong) is None
    registry.revoke("yot-a", now=NOW)
    assert await registry.authenticate(key) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_may_fail_its_budget_at_once_then_once_per_share_of_a_minute() -> None:
    clock = Clock()
    attempts = FailedAttempts(6, clock=clock)  # a burst of 6, then one every 10 s
    for _ in range(6):
        assert attempts.retry_after("192.0.2.1") is None
        attempts.failed("192.0.2.1")

    assert attempts.retry_after("192.0.2.1") == 10
    assert attempts.retry_after("192.0.2.2") is None, "another address has its own budget"
    clock.now += 4
    assert attempts.retry_after("192.0.2.1") == 6
    clock.now += 6
    assert attempts.retry_after("192.0.2.1") is None
    attempts.failed("192.0.2.1")
    assert attempts.retry_after("192.0.2.1") == 10
    clock.now += 3600
    for _ in range(6):
        assert attempts.retry_after("192.0.2.1") is None, "an idle address gets its whole budget back, no more"
        attempts.failed("192.0.2.1")
    assert attempts.retry_after("192.0.2.1") is not None


def test_ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    attempts = FailedAttempts(1, clock=Clock())
    attempts.failed("2001:db8:1:2::1")
    attempts.failed("::ffff:192.0.2.9")

    assert attempts.retry_after("2001:db8:1:2:ffff::7") is not None
    assert attempts.retry_after("2001:db8:1:3::1") is None
    assert attempts.retry_after("192.0.2.9") is not None


def test_the_addresses_remembered_are_bounded_forgetting_the_least_recently_failed() -> None:
    attempts = FailedAttempts(1, clock=Clock(), max_clients=3)
    for i in range(4):
        attempts.failed(f"192.0.2.{i}")

    assert attempts.retry_after("192.0.2.0") is None
    assert all(attempts.retry_after(f"192.0.2.{i}") is not None for i in (1, 2, 3))


def request_from(peer: str, forwarded: list[str]) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 50000)})


PROXIES = IntakeSettings(intake_trusted_proxies="10.0.0.1, 10.9.0.0/16, fd00::1").intake_trusted_proxies


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("198.51.100.1", ["203.0.113.7"], "198.51.100.1"),  # not a proxy of ours: its header is not read
    ("10.0.0.1", [], "10.0.0.1"),
    ("10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("10.0.0.1", ["1.1.1.1, 203.0.113.7"], "203.0.113.7"),  # what the client wrote itself is further left
    ("10.0.0.1", ["1.1.1.1", "203.0.113.7, 10.9.4.4"], "203.0.113.7"),  # two proxies, two header lines
    ("10.0.0.1", ["203.0.113.7:5123"], "203.0.113.7"),
    ("10.0.0.1", ["[2001:db8::5]:443"], "2001:db8::5"),
    ("10.0.0.1", ["10.9.4.4"], "10.0.0.1"),  # only proxies: the request is the proxy's
    ("10.0.0.1", ["203.0.113.7, not-an-address"], "10.0.0.1"),
    ("::ffff:10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("fd00::1", ["2001:db8::9"], "2001:db8::9"),
])
def test_the_client_is_the_nearest_address_that_is_not_a_trusted_proxy(peer: str, forwarded: list[str],
                                                                       client: str) -> None:
    assert client_address(request_from(peer, forwarded), PROXIES) == client


def test_without_trusted_proxies_the_forwarded_header_is_never_read() -> None:
    assert client_address(request_from("127.0.0.1", ["203.0.113.7"]), []) == "127.0.0.1"


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("intake_trusted_proxies", "10.0.0.1, proxy.local", "'proxy.local' is not an IP address or network"),
    ("intake_trusted_proxies", "10.0.0.1/24", "host bits must be zero"),
    ("intake_public_url", "api.example.org", "must be an http(s) URL"),
    ("intake_public_url", "https://api.example.org/?x=1", "without a query"),
    ("intake_auth_failures_per_minute", "0", "greater than or equal to 1"),
])
def test_bad_settings_are_refused_naming_what_is_wrong(setting: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        IntakeSettings(**{setting: value})


def test_the_public_url_loses_its_trailing_slash() -> None:
    assert IntakeSettings(intake_public_url="https://example.org/reroute/").intake_public_url == \
        "https://example.org/reroute"
