"""People's web console passwords: issued once by an admin (one-time), replaced by the person's own at their first
log-in, checked here so that no hash ever leaves intake. Five wrong passwords in a row lock that person's console
log-in for 15 minutes (an admin's new one-time password lifts it). Kept apart from their NATS credentials
(services/intake/staff.py): a console password opens the console only.

Admins, safeguarding leads and data protection officers (`SECOND_FACTOR_ROLES`) give a code from an authenticator app too (TOTP, RFC 6238: six
digits, 30-second steps, one step either side for a clock off by a little), once they have set one up; each code is
accepted once. Its secret is kept encrypted with intake's keys (`reroute keys reencrypt` rotates it with the rest).
A wrong code counts as a wrong password, and the refusal does not say which was wrong.

argon2id (argon2-cffi's defaults, RFC 9106's second recommendation) is slow on purpose, so it runs off the event loop
and off the database thread: the database work before and after it is short."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update
from sqlmodel import col

from services.intake.tables import ConsoleCredentialRecord, StaffRecord, as_utc
from shared.contracts.intake_rpc import SECOND_FACTOR_ROLES, ConsoleLogin
from shared.contracts.rpc import NotFound, Refused, Role

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
WRONG = "wrong person id, password or authenticator code"
"""The same words for an unknown person, a removed one, a wrong password and a wrong code: the answer tells an
attacker nothing."""
ISSUER = "reroute console"
STEP_SECONDS = 30

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Checked against when there is no hash, so an unknown person takes as long to refuse as a wrong password. Made
    on first use, not at import: hashing holds argon2's 64 MiB, which would otherwise stay in every intake's peak RSS
    from start-up. Two threads racing here each make one; either serves."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches (always doing the slow work, even without a hash)."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
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


def needs_second_factor(roles: list[Role]) -> bool:
    return bool(SECOND_FACTOR_ROLES & set(roles))


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, person_id: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=person_id, issuer_name=ISSUER)


def code_step(secret: str, code: str, *, now: datetime, after: int | None) -> int | None:
    """The 30-second step whose code `code` is (this one or the one either side), if it is later than `after` (a code
    already accepted, or an earlier one, is not accepted again); None otherwise."""
    code = "".join(code.split())
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp, current = pyotp.TOTP(secret), int(now.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if pyotp.utils.strings_equal(totp.at(step * STEP_SECONDS), code) and (after is None or step > after):
            return step
    return None


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
    totp_secret: str | None = None
    """Encrypted."""
    totp_in_use: bool = False
    totp_last_step: int | None = None


class ConsoleLogins:
    """The console_credential table: issue, look up, record an attempt, replace."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def issue(self, person_id: str, *, now: datetime) -> str:
        """A new one-time password for an active person (replacing any they had, lifting a lock); only its hash is
        kept."""
        password = secrets.token_urlsafe(12)
        values = {"password_hash": hash_password(password), "one_time": True, "failed_logins": 0,
                  "locked_until": None, "changed_at": now, "totp_secret": None, "totp_confirmed_at": None,
                  "totp_last_step": None}
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
                       col(ConsoleCredentialRecord.one_time), col(ConsoleCredentialRecord.locked_until),
                       col(ConsoleCredentialRecord.totp_secret), col(ConsoleCredentialRecord.totp_confirmed_at),
                       col(ConsoleCredentialRecord.totp_last_step))
                .select_from(StaffRecord)
                .outerjoin(ConsoleCredentialRecord,
                           col(ConsoleCredentialRecord.person_id) == col(StaffRecord.person_id))
                .where(col(StaffRecord.person_id) == person_id, col(StaffRecord.status) == "active")).first()
        if row is None:
            return None
        roles, password_hash, one_time, locked_until, totp_secret, totp_confirmed_at, totp_last_step = row
        return Stored([Role(r) for r in roles.split(",") if r], password_hash, bool(one_time),
                      as_utc(locked_until) if locked_until is not None else None, totp_secret,
                      totp_confirmed_at is not None, totp_last_step)

    def begin_second_factor(self, person_id: str, encrypted_secret: str) -> None:
        """Keep a new (not yet confirmed) authenticator secret; refused while one is in use (an admin's one-time
        password clears it)."""
        with self._engine.begin() as conn:
            done = conn.execute(update(ConsoleCredentialRecord).where(
                col(ConsoleCredentialRecord.person_id) == person_id,
                col(ConsoleCredentialRecord.totp_confirmed_at).is_(None)).values(totp_secret=encrypted_secret,
                                                                                  totp_last_step=None))
        if done.rowcount == 0:
            raise Refused(f"{person_id} has an authenticator in use already, or no console password: an admin's "
                          "`reroute people console-password` starts both afresh")

    def confirm_second_factor(self, person_id: str, encrypted_secret: str, *, step: int, now: datetime) -> bool:
        """Put the secret in use (the one the code was checked against, if it is still the one kept)."""
        with self._engine.begin() as conn:
            done = conn.execute(update(ConsoleCredentialRecord).where(
                col(ConsoleCredentialRecord.person_id) == person_id,
                col(ConsoleCredentialRecord.totp_secret) == encrypted_secret,
                col(ConsoleCredentialRecord.totp_confirmed_at).is_(None)).values(totp_confirmed_at=now,
                                                                                  totp_last_step=step))
        return done.rowcount == 1

    def record(self, person_id: str, *, right: bool, now: datetime, step: int | None = None) -> datetime | None:
        """Count the attempt (in the database, so every replica and a restart see it), and the step of the code it
        used; the lock it set, if any."""
        with self._engine.begin() as conn:
            failed = conn.execute(select(col(ConsoleCredentialRecord.failed_logins))
                                  .where(col(ConsoleCredentialRecord.person_id) == person_id)).scalar()
            if failed is None:
                return None
            failed, locked_until = after_attempt(failed, right=right, now=now)
            conn.execute(update(ConsoleCredentialRecord).where(col(ConsoleCredentialRecord.person_id) == person_id)
                         .values(failed_logins=failed, locked_until=locked_until,
                                 **({"totp_last_step": step} if step is not None else {})))
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
    second: Literal["not_needed", "done", "enrol"] = (
        "not_needed" if not needs_second_factor(stored.roles) else "done" if stored.totp_in_use else "enrol")
    return ConsoleLogin(person_id=person_id, roles=stored.roles, one_time=stored.one_time, second_factor=second)
