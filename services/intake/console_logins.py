"""People's web console passwords: issued once by an admin (one-time), replaced by the person's own at their first
log-in, checked here so that no hash ever leaves intake. Five wrong passwords in a row lock that person's console
log-in for 15 minutes (an admin's new one-time password lifts it). Kept apart from their NATS credentials
(services/intake/staff.py): a console password opens the console only.

argon2id (argon2-cffi's defaults, RFC 9106's second recommendation) is slow on purpose, so it runs off the event loop
and off the database thread: the database work before and after it is short."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update
from sqlmodel import col

from services.intake.tables import ConsoleCredentialRecord, StaffRecord, as_utc
from shared.contracts.intake_rpc import ConsoleLogin
from shared.contracts.rpc import NotFound, Refused, Role

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
WRONG = "wrong person id or password"
"""The same words for an unknown person, a removed one and a wrong password: the answer tells an attacker nothing."""

_hasher = PasswordHasher()
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))
"""Checked against when there is no hash, so an unknown person takes as long to refuse as a wrong password."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches (always doing the slow work, even without a hash)."""
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def after_attempt(failed: int, *, right: bool, now: datetime) -> tuple[int, datetime | None]:
    """Wrong tries in a row and the lock after one attempt: a right password clears both; the fifth wrong one in a
    row locks for `LOCK_FOR` and starts the count again."""
    if right:
        return 0, None
    failed += 1
    if failed >= MAX_FAILURES:
        return 0, now + LOCK_FOR
    return failed, None


def locked_message(until: datetime) -> str:
    return (f"too many wrong passwords: this log-in is locked until {as_utc(until):%H:%M} UTC; try again then, or ask "
            "an admin for a new one-time password")


@dataclass(frozen=True)
class Stored:
    """What a log-in attempt needs to know before the slow check."""

    roles: list[Role]
    password_hash: str | None
    one_time: bool
    locked_until: datetime | None


class ConsoleLogins:
    """The console_credential table: issue, look up, record an attempt, replace."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def issue(self, person_id: str, *, now: datetime) -> str:
        """A new one-time password for an active person (replacing any they had, lifting a lock); only its hash is
        kept."""
        password = secrets.token_urlsafe(12)
        values = {"password_hash": hash_password(password), "one_time": True, "failed_logins": 0,
                  "locked_until": None, "changed_at": now}
        with self._engine.begin() as conn:
            status = conn.execute(select(col(StaffRecord.status)).where(col(StaffRecord.person_id) == person_id)).scalar()
            if status != "active":
                raise NotFound(f"no active person '{person_id}' (see `reroute people list`)")
            done = conn.execute(update(ConsoleCredentialRecord)
                                .where(col(ConsoleCredentialRecord.person_id) == person_id).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(ConsoleCredentialRecord).values(person_id=person_id, **values))
        return password

    def stored(self, person_id: str) -> Stored | None:
        """The person's roles and console credential; None when they are not an active person."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(col(StaffRecord.roles), col(ConsoleCredentialRecord.password_hash),
                       col(ConsoleCredentialRecord.one_time), col(ConsoleCredentialRecord.locked_until))
                .select_from(StaffRecord)
                .outerjoin(ConsoleCredentialRecord,
                           col(ConsoleCredentialRecord.person_id) == col(StaffRecord.person_id))
                .where(col(StaffRecord.person_id) == person_id, col(StaffRecord.status) == "active")).first()
        if row is None:
            return None
        roles, password_hash, one_time, locked_until = row
        return Stored([Role(r) for r in roles.split(",") if r], password_hash, bool(one_time),
                      as_utc(locked_until) if locked_until is not None else None)

    def record(self, person_id: str, *, right: bool, now: datetime) -> datetime | None:
        """Count the attempt (in the database, so every replica and a restart see it); the lock it set, if any."""
        with self._engine.begin() as conn:
            failed = conn.execute(select(col(ConsoleCredentialRecord.failed_logins))
                                  .where(col(ConsoleCredentialRecord.person_id) == person_id)).scalar()
            if failed is None:
                return None
            failed, locked_until = after_attempt(failed, right=right, now=now)
            conn.execute(update(ConsoleCredentialRecord).where(col(ConsoleCredentialRecord.person_id) == person_id)
                         .values(failed_logins=failed, locked_until=locked_until))
        return locked_until

    def replace(self, person_id: str, new_password_hash: str, *, now: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(ConsoleCredentialRecord).where(col(ConsoleCredentialRecord.person_id) == person_id)
                         .values(password_hash=new_password_hash, one_time=False, failed_logins=0, locked_until=None,
                                 changed_at=now))


def refused_unless_open(stored: Stored | None, *, now: datetime) -> None:
    """Refuse before the slow check when the log-in is locked."""
    if stored is not None and stored.locked_until is not None and stored.locked_until > now:
        raise Refused(locked_message(stored.locked_until))


def login(person_id: str, stored: Stored) -> ConsoleLogin:
    return ConsoleLogin(person_id=person_id, roles=stored.roles, one_time=stored.one_time)
