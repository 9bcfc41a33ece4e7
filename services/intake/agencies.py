"""Agencies and their HTTP API keys: a key is shown once, kept only as a salted scrypt hash, checked per request.

Changes are read from the database on every request, so `reroute agencies rotate|revoke` takes effect at once
on every replica, without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from services.intake.tables import AgencyRecord, as_utc
from shared.contracts.intake_rpc import Agency, AgencyNatsHash
from shared.nats_auth import RESERVED_IDS, hash_password, normalised_agency_id
from shared.subjects import AGENCY_ID

KEY_PREFIX = "rr1"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # ~16 MiB and tens of ms per check: slow for guessing, cached
_DUMMY_SALT = bytes(16)
_CACHE_LIMIT = 1024


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
    return hashlib.scrypt(api_key.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32).hex()


def key_matches(api_key: str, *, salt_hex: str, hash_hex: str) -> bool:
    return hmac.compare_digest(hash_key(api_key, bytes.fromhex(salt_hex)), hash_hex)


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
        self._verified: dict[str, str] = {}  # sha256 of a key that passed -> the hash it passed against

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
                    agency_id=agency_id, name=name.strip(), key_salt=salt.hex(), key_hash=hash_key(key, salt),
                    nats_password_hash=hash_password(nats_password), status="active", created_at=now))
        except IntegrityError:  # added at the same moment by another replica
            raise exists from None
        return self._public(agency_id), key, nats_password

    def rotate(self, agency_id: str, *, now: datetime) -> tuple[Agency, str, str]:
        """A new key and NATS password for the agency (re-activating a revoked one); the old ones stop at once."""
        key, nats_password = new_api_key(agency_id), secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        with self._engine.begin() as conn:
            done = conn.execute(update(AgencyRecord).where(col(AgencyRecord.agency_id) == agency_id).values(
                key_salt=salt.hex(), key_hash=hash_key(key, salt), nats_password_hash=hash_password(nats_password),
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

    async def authenticate(self, api_key: str | None) -> str | None:
        """The agency whose active key this is, or None (unknown, wrong, revoked or missing)."""
        if not api_key:
            return None
        agency_id = agency_of_key(api_key)
        row = None
        if agency_id is not None:
            with self._engine.connect() as conn:
                row = conn.execute(select(col(AgencyRecord.status), col(AgencyRecord.key_salt),
                                          col(AgencyRecord.key_hash)).where(col(AgencyRecord.agency_id) == agency_id)
                                   ).first()
        if row is None or row.status != "active":
            await asyncio.to_thread(hash_key, api_key, _DUMMY_SALT)  # the same cost as a real check
            return None
        fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
        if hmac.compare_digest(self._verified.get(fingerprint, ""), row.key_hash):
            return agency_id
        if not await asyncio.to_thread(key_matches, api_key, salt_hex=row.key_salt, hash_hex=row.key_hash):
            return None
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[fingerprint] = row.key_hash
        return agency_id

    def _public(self, agency_id: str) -> Agency:
        with self._engine.connect() as conn:
            row = conn.execute(select(AgencyRecord).where(col(AgencyRecord.agency_id) == agency_id)).one()
        return public(row)
