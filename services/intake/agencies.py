"""Agencies and their HTTP API keys: a key is shown once, kept only as a salted hash, checked per request.

Changes are read from the database on every request, so `reroute agencies rotate|revoke` takes effect at once
on every replica, without a restart.

**Why a fast hash.** A key is 256 random bits (`new_api_key`), not a password: there is no dictionary to try
and no way through 2**256 guesses, however fast each one is. A slow hash (scrypt, as keys were first kept)
multiplies the cost of such a search, which is already out of reach, and makes every request pay tens of
milliseconds of CPU for it, wrong keys included: anyone could fill the cores with made-up keys. So a key is kept
as HMAC-SHA256 under a random salt of its own (the `key_salt` column), written `hmac-sha256:<hex>`, and checked in
microseconds. A per-key salt rather than one per-installation secret (a "pepper"): a pepper only helps a
guessable secret, and it would be one more key that every replica must share and whose loss would lock out every
agency; the salt is already stored with each hash, and it keeps two installations' or two rotations' hashes of
anything unrelated. A hash without the prefix is the old scrypt one: it still authenticates, and the first
request it lets in rewrites it as the fast hash, so no agency has to rotate its key and no schema changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from services.intake.tables import AgencyRecord, as_utc
from shared.contracts.intake_rpc import Agency, AgencyNatsHash
from shared.db import reading
from shared.nats_auth import RESERVED_IDS, hash_password, normalised_agency_id
from shared.proxies import counted_as
from shared.subjects import AGENCY_ID

log = logging.getLogger(__name__)

KEY_PREFIX = "rr1"
HASH_SCHEME = "hmac-sha256"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # the old hashes: ~16 MiB and tens of ms per check
_DUMMY_SALT = bytes(16).hex()
_DUMMY_HASH = f"{HASH_SCHEME}:{'0' * 64}"


class AgencyError(ValueError):
    """A request about agencies that cannot be done; the message says why and what to do instead."""


def new_api_key(agency_id: str) -> str:
    """`rr1.<agency id>.<43 random url-safe characters>`: the agency id lets us find the hash to compare."""
    return f"{KEY_PREFIX}.{agency_id}.{secrets.token_urlsafe(32)}"


def agency_of_key(api_key: str) -> str | None:
    parts = api_key.split(".")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not AGENCY_ID.match(parts[1]):
        return None
    return parts[1]


def hash_key(api_key: str, salt: bytes) -> str:
    """How a key is kept: `hmac-sha256:<hex>`, keyed by the key's own salt (the module docstring says why)."""
    return f"{HASH_SCHEME}:{hmac.new(salt, api_key.encode(), hashlib.sha256).hexdigest()}"


def is_old_hash(hash_hex: str) -> bool:
    """A hash from before `hash_key`: bare hex of scrypt, without a scheme prefix."""
    return not hash_hex.startswith(f"{HASH_SCHEME}:")


def scrypt_hash(api_key: str, salt: bytes) -> str:
    """The old way a key was kept; read only to let such a key in once and rewrite it with `hash_key`."""
    return hashlib.scrypt(api_key.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32).hex()


def key_matches(api_key: str, *, salt_hex: str, hash_hex: str) -> bool:
    salt = bytes.fromhex(salt_hex)
    expected = scrypt_hash(api_key, salt) if is_old_hash(hash_hex) else hash_key(api_key, salt)
    return hmac.compare_digest(expected, hash_hex)


class FailedAttempts:
    """Failed API key attempts per client address, against a budget of `per_minute` refilled at that rate (a
    token bucket: a burst of `per_minute`, then one every 60/`per_minute` seconds).

    An address over its budget has its failures answered 429 with Retry-After instead of 401. Its keys are still
    checked, so a right key is served whatever the address did before: checking one costs microseconds, and an
    agency behind the same NAT or proxy as a misbehaving client is never locked out by it. Successes are not
    counted. IPv6 clients are counted by /64, the block one customer usually holds. Counts are per replica, kept
    in memory for at most `max_clients` addresses (the least recently failed are forgotten first).
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        self._rate = per_minute / 60
        self._burst = float(per_minute)
        self._clock = clock
        self._max_clients = max_clients
        self._clients: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (budget left, as of)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until the address may fail again; None while it is within its budget."""
        left = self._left(counted_as(address))
        return None if left >= 1 else max(1, math.ceil((1 - left) / self._rate))

    def failed(self, address: str) -> None:
        client = counted_as(address)
        self._clients[client] = (self._left(client) - 1, self._clock())
        self._clients.move_to_end(client)
        while len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)

    def _left(self, client: str) -> float:
        left, since = self._clients.get(client, (self._burst, 0.0))
        return min(self._burst, left + (self._clock() - since) * self._rate)


def public(row: AgencyRecord | Any) -> Agency:
    """An agency as operators see it: never its key or hash."""
    return Agency(agency_id=row.agency_id, name=row.name, status="revoked" if row.status == "revoked" else "active", created_at=as_utc(row.created_at),
                  rotated_at=as_utc(row.rotated_at) if row.rotated_at else None,
                  revoked_at=as_utc(row.revoked_at) if row.revoked_at else None)


class AgencyRegistry:
    """The agency table: add, rotate, revoke, list, and authenticate a bearer key.

    Each agency also gets NATS credentials (user `agency-<id>`): only a bcrypt hash is kept, which the NATS
    server configuration reads (`nats_credentials`, the `agencies.nats` request)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._slow_checks = asyncio.Semaphore(1)

    def add(self, agency_id: str, name: str, *, now: datetime) -> tuple[Agency, str, str]:
        """Register an agency; returns it, its API key and its NATS password (the only time they exist in clear)."""
        if not AGENCY_ID.match(agency_id):
            raise AgencyError(f"agency id '{agency_id}' is not valid: use lower-case letters, digits, - and _ "
                              "(at most 63), starting with a letter or digit")
        if agency_id in RESERVED_IDS:
            raise AgencyError(f"agency id '{agency_id}' is reserved for reroute itself: choose another (for example "
                              "the agency's initials and area, like yot-southwark)")
        if not name.strip() or len(name) > 200:
            raise AgencyError("give the agency's name (1 to 200 characters) with --name")
        key, nats_password = new_api_key(agency_id), secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        key_hash, password_hash = hash_key(key, salt), hash_password(nats_password)  # before the write lock
        exists = AgencyError(f"agency '{agency_id}' is already registered: `reroute agencies rotate {agency_id}` "
                             "issues it a new key")
        try:
            with self._engine.begin() as conn:
                if conn.execute(select(col(AgencyRecord.agency_id)).where(col(AgencyRecord.agency_id) == agency_id)).first():
                    raise exists
                ids = conn.execute(select(col(AgencyRecord.agency_id))).scalars()
                if alike := next((i for i in ids if normalised_agency_id(i) == normalised_agency_id(agency_id)), None):
                    raise AgencyError(f"agency id '{agency_id}' is too like the registered '{alike}' (they differ only "
                                      "in - and _): choose an id that differs in letters or digits")
                conn.execute(insert(AgencyRecord).values(
                    agency_id=agency_id, name=name.strip(), key_salt=salt.hex(), key_hash=key_hash,
                    nats_password_hash=password_hash, status="active", created_at=now))
        except IntegrityError:  # added at the same moment by another replica
            raise exists from None
        return self._public(agency_id), key, nats_password

    def rotate(self, agency_id: str, *, now: datetime) -> tuple[Agency, str, str]:
        """A new key and NATS password for the agency (re-activating a revoked one); the old ones stop at once."""
        key, nats_password = new_api_key(agency_id), secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        key_hash, password_hash = hash_key(key, salt), hash_password(nats_password)  # before the write lock
        with self._engine.begin() as conn:
            done = conn.execute(update(AgencyRecord).where(col(AgencyRecord.agency_id) == agency_id).values(
                key_salt=salt.hex(), key_hash=key_hash, nats_password_hash=password_hash,
                status="active", rotated_at=now, revoked_at=None))
        if done.rowcount == 0:
            raise AgencyError(f"no agency '{agency_id}': register it with `reroute agencies add {agency_id} --name ...`")
        return self._public(agency_id), key, nats_password

    def nats_credentials(self) -> list[AgencyNatsHash]:
        """Active agencies' NATS password hashes, for the server configuration."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(col(AgencyRecord.agency_id), col(AgencyRecord.nats_password_hash)).where(
                col(AgencyRecord.status) == "active", col(AgencyRecord.nats_password_hash).is_not(None)
            ).order_by(col(AgencyRecord.agency_id))).all()
        return [AgencyNatsHash(agency_id=agency_id, password_hash=hashed) for agency_id, hashed in rows
                if hashed is not None]

    def revoke(self, agency_id: str, *, now: datetime) -> Agency:
        """The agency's key stops working at once; `rotate` issues a new one."""
        with self._engine.begin() as conn:
            done = conn.execute(update(AgencyRecord).where(col(AgencyRecord.agency_id) == agency_id).values(
                status="revoked", revoked_at=now))
        if done.rowcount == 0:
            raise AgencyError(f"no agency '{agency_id}' (see `reroute agencies list`)")
        return self._public(agency_id)

    def all(self) -> list[Agency]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(AgencyRecord).order_by(col(AgencyRecord.agency_id))).all()
        return [public(r) for r in rows]

    async def authenticate(self, api_key: str | None, *, allow_slow: bool = True) -> str | None:
        """The agency whose active key this is, or None (unknown, wrong, revoked or missing).

        A key still kept under the old scrypt hash is checked (one at a time, so at most one core ever goes to
        it) and, when right, rewritten as the fast hash; with `allow_slow=False` it is not checked at all (None),
        so a client over its budget of failures cannot make us spend scrypt's CPU."""
        if not api_key:
            return None
        agency_id = agency_of_key(api_key)
        row = None
        if agency_id is not None:
            with reading(self._engine) as conn:  # on the event loop: never waits for the database thread's batch
                row = conn.execute(select(col(AgencyRecord.status), col(AgencyRecord.key_salt),
                                          col(AgencyRecord.key_hash)).where(col(AgencyRecord.agency_id) == agency_id)
                                   ).first()
        if agency_id is None or row is None or row.status != "active":
            key_matches(api_key, salt_hex=_DUMMY_SALT, hash_hex=_DUMMY_HASH)  # the same work as a real check
            return None
        if not is_old_hash(row.key_hash):
            return agency_id if key_matches(api_key, salt_hex=row.key_salt, hash_hex=row.key_hash) else None
        if not allow_slow:
            return None
        async with self._slow_checks:
            upgraded = await asyncio.to_thread(self._upgrade, agency_id, api_key, salt_hex=row.key_salt,
                                               old_hash=row.key_hash)
        return agency_id if upgraded else None

    def _upgrade(self, agency_id: str, api_key: str, *, salt_hex: str, old_hash: str) -> bool:
        """Check a key against its old scrypt hash and, if it matches, keep it as the fast hash from now on (unless
        the key was rotated meanwhile)."""
        if not key_matches(api_key, salt_hex=salt_hex, hash_hex=old_hash):
            return False
        with self._engine.begin() as conn:
            done = conn.execute(update(AgencyRecord).where(
                col(AgencyRecord.agency_id) == agency_id, col(AgencyRecord.key_hash) == old_hash,
            ).values(key_hash=hash_key(api_key, bytes.fromhex(salt_hex))))
        if done.rowcount:
            log.info("agency %s: API key now kept as %s (was scrypt)", agency_id, HASH_SCHEME)
        return True

    def _public(self, agency_id: str) -> Agency:
        with self._engine.connect() as conn:
            row = conn.execute(select(AgencyRecord).where(col(AgencyRecord.agency_id) == agency_id)).one()
        return public(row)
