"""Intake's one store of referrals and people, as one transaction sees them: loaded once, decided on, saved once.

Both doors (NATS batches and HTTP requests) go through it. Referral bodies and equality-monitoring answers are
encrypted here on the way in and decrypted on the way out, so no other module touches ciphertext; so is their
re-encryption under a new key (`reencrypt`).
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, bindparam, delete, func, insert, select, tuple_, update
from sqlmodel import col

from services.intake.crypto import IntakeKeys, PersonalDataCipher, UnreadablePersonalData
from services.intake.people import new_person_id
from services.intake.tables import (
    ConsoleCredentialRecord,
    EqualityRecord,
    PersonRecord,
    ReferralRecord,
    RejectionRecord,
    as_utc,
)
from shared.contracts.codes import WithdrawalReason
from shared.contracts.intake_rpc import EncryptedTable
from shared.deadletters import DeadLetterRow

log = logging.getLogger(__name__)
V = TypeVar("V", str, bytes)
EQUALITY_FIELDS = ("ethnicity", "religion", "disability")


@dataclass
class StoredReferral:
    """A referral as this transaction sees it; `body` is the plain validated JSON, held in memory only."""

    referral_id: str
    agency_id: str
    agency_referral_id: str
    received_at: datetime
    body: str
    revision: int
    submissions: int
    person_id: str
    cloudevent: str | None = None
    trace_context: str | None = None
    """The traceparent it was first accepted under (shared/telemetry.referral_trace)."""
    withdrawn_at: datetime | None = None
    withdrawal_reason: WithdrawalReason | None = None
    withdrawal_note: str | None = None
    """Plain, in memory only, like `body`."""
    new: bool = False
    changed: bool = False


class ReferralStore:
    """Referrals by (agency, agency_referral_id), people by match key, and each person's referral history."""

    def __init__(self, conn: Connection, keys: IntakeKeys) -> None:
        self._conn = conn
        self._keys = keys
        self._referrals: dict[tuple[str, str], StoredReferral] = {}
        self._people: dict[str, str] = {}  # match key -> person id
        self._new_people: dict[str, str] = {}
        self._history: dict[str, list[tuple[datetime, str]]] = {}  # person id -> sorted (received_at, referral id)
        self._rejections: list[dict[str, object]] = []
        self._monitoring: dict[str, dict[str, object]] = {}

    def load(self, referral_keys: set[tuple[str, str]], match_keys: set[str]) -> None:
        """Read what the coming decisions need, in three queries whatever the batch size."""
        if referral_keys:
            rows = self._conn.execute(select(ReferralRecord).where(
                tuple_(col(ReferralRecord.agency_id), col(ReferralRecord.agency_referral_id)).in_(list(referral_keys))
            )).all()
            for r in rows:
                self._referrals[(r.agency_id, r.agency_referral_id)] = StoredReferral(
                    r.referral_id, r.agency_id, r.agency_referral_id, as_utc(r.received_at),
                    self._keys.cipher.decrypt(r.body), r.revision, r.submissions, r.person_id,
                    trace_context=r.trace_context, withdrawn_at=r.withdrawn_at and as_utc(r.withdrawn_at),
                    withdrawal_reason=cast("WithdrawalReason | None", r.withdrawal_reason),  # only ours are stored
                    withdrawal_note=r.withdrawal_note and self._keys.cipher.decrypt(r.withdrawal_note))
        if match_keys:
            found = self._conn.execute(select(col(PersonRecord.match_key), col(PersonRecord.person_id)).where(
                col(PersonRecord.match_key).in_(list(match_keys)))).all()
            self._people.update({k: p for k, p in found})
        people = set(self._people.values()) | {s.person_id for s in self._referrals.values()}
        if people:
            history = self._conn.execute(
                select(col(ReferralRecord.person_id), col(ReferralRecord.received_at), col(ReferralRecord.referral_id))
                .where(col(ReferralRecord.person_id).in_(list(people)))
            ).all()
            for person_id, received_at, referral_id in history:
                self._history.setdefault(person_id, []).append((as_utc(received_at), referral_id))
            for entries in self._history.values():
                entries.sort()

    def find(self, agency_id: str, agency_referral_id: str) -> StoredReferral | None:
        return self._referrals.get((agency_id, agency_referral_id))

    def add(self, referral: StoredReferral) -> None:
        referral.new = True
        self._referrals[(referral.agency_id, referral.agency_referral_id)] = referral
        self._history.setdefault(referral.person_id, []).append((referral.received_at, referral.referral_id))

    def person_for(self, match_keys: list[str]) -> str:
        """The person stored under one of these match keys (the current one first), created under the first if
        intake has never seen them."""
        person_id = next((self._people[k] for k in match_keys if k in self._people), None)
        if person_id is None:
            person_id = self._people[match_keys[0]] = self._new_people[match_keys[0]] = new_person_id()
        return person_id

    def move(self, referral: StoredReferral, person_id: str) -> None:
        """An update changed who the referral is about (names or birth date corrected)."""
        old = self._history.get(referral.person_id, [])
        entry = (referral.received_at, referral.referral_id)
        if entry in old:
            old.remove(entry)
        bisect.insort(self._history.setdefault(person_id, []), entry)
        referral.person_id = person_id

    def earlier_referrals(self, referral: StoredReferral) -> list[datetime]:
        """When this person's other referrals, received before this one, were received."""
        entries = self._history.get(referral.person_id, [])
        entry = (referral.received_at, referral.referral_id)
        before = entries[: entries.index(entry)] if entry in entries else entries
        return [received for received, rid in before if rid != referral.referral_id]

    def reject(self, row: dict[str, object]) -> None:
        self._rejections.append(row)

    def keep_monitoring(self, referral_id: str, answers: Mapping[str, object], *, now: datetime) -> None:
        self._monitoring[referral_id] = {"referral_id": referral_id, "recorded_at": now,
                                         "answers": seal_answers(self._keys.cipher, answers)}

    def save(self, *, now: datetime) -> None:
        """Write everything decided in this transaction, bodies and equality answers encrypted."""
        if self._new_people:
            self._conn.execute(insert(PersonRecord), [
                {"person_id": p, "match_key": k, "created_at": now} for k, p in self._new_people.items()])
            self._new_people.clear()
        new = [self._row(s, now=now) for s in self._referrals.values() if s.new]
        changed = [
            {"rid": s.referral_id, "body": self._keys.cipher.encrypt(s.body), "revision": s.revision,
             "submissions": s.submissions, "person_id": s.person_id, "updated_at": now,
             "trace_context": s.trace_context, **self._withdrawal(s)}
            for s in self._referrals.values() if s.changed and not s.new
        ]
        if new:
            self._conn.execute(insert(ReferralRecord), new)
        if changed:
            self._conn.execute(
                update(ReferralRecord)
                .where(col(ReferralRecord.referral_id) == bindparam("rid"))
                .values(body=bindparam("body"), revision=bindparam("revision"), submissions=bindparam("submissions"),
                        person_id=bindparam("person_id"), updated_at=bindparam("updated_at"),
                        trace_context=bindparam("trace_context"), withdrawn_at=bindparam("withdrawn_at"),
                        withdrawal_reason=bindparam("withdrawal_reason"), withdrawal_note=bindparam("withdrawal_note")),
                changed,
            )
        for s in self._referrals.values():
            s.new = s.changed = False
        if self._rejections:
            self._conn.execute(insert(RejectionRecord), self._rejections)
            self._rejections = []
        if self._monitoring:
            ids = list(self._monitoring)
            self._conn.execute(delete(EqualityRecord).where(col(EqualityRecord.referral_id).in_(ids)))
            self._conn.execute(insert(EqualityRecord), list(self._monitoring.values()))
            self._monitoring = {}

    def _row(self, s: StoredReferral, *, now: datetime) -> dict[str, object]:
        return {
            "referral_id": s.referral_id, "agency_id": s.agency_id, "agency_referral_id": s.agency_referral_id,
            "received_at": s.received_at, "updated_at": now, "body": self._keys.cipher.encrypt(s.body),
            "revision": s.revision, "submissions": s.submissions, "cloudevent": s.cloudevent,
            "person_id": s.person_id, "trace_context": s.trace_context, **self._withdrawal(s),
        }

    def _withdrawal(self, s: StoredReferral) -> dict[str, object]:
        """The withdrawal columns (all null until it is withdrawn), the note encrypted with the body's key."""
        note = None if s.withdrawal_note is None else self._keys.cipher.encrypt(s.withdrawal_note)
        return {"withdrawn_at": s.withdrawn_at, "withdrawal_reason": s.withdrawal_reason, "withdrawal_note": note}


def seal_answers(cipher: PersonalDataCipher, answers: Mapping[str, object]) -> str:
    """Equality-monitoring answers as the `answers` column holds them: one JSON object, encrypted."""
    return cipher.encrypt(json.dumps({name: answers.get(name) for name in EQUALITY_FIELDS}))


def equality_answers(conn: Connection, keys: IntakeKeys,
                     referral_ids: list[str] | None = None) -> dict[str, dict[str, str | None]]:
    """Each referral's equality answers (of these referrals, or all), decrypted in memory. A row a version before
    migration 0003 stored in plain, and intake has not encrypted yet, is read as it stands."""
    query = select(EqualityRecord)
    if referral_ids is not None:
        query = query.where(col(EqualityRecord.referral_id).in_(referral_ids))
    found: dict[str, dict[str, str | None]] = {}
    for r in conn.execute(query):
        if r.answers is not None:
            found[r.referral_id] = json.loads(keys.cipher.decrypt(r.answers))
        else:
            found[r.referral_id] = _plain(r)
    return found


def encrypt_plain_answers(conn: Connection, keys: IntakeKeys, *, limit: int) -> int:
    """Encrypt up to `limit` rows of equality answers stored in plain (by a version before migration 0003) and
    clear their plain columns; returns how many. A row is changed only if it still holds what was read, so
    replicas doing this at once, and a referral's answers written again meanwhile, are safe."""
    rows = conn.execute(select(EqualityRecord).where(col(EqualityRecord.answers).is_(None))
                        .order_by(col(EqualityRecord.referral_id)).limit(limit)).all()
    return sum(_encrypt_plain_row(conn, keys.cipher, r.referral_id, _plain(r)) for r in rows)


def _plain(r: Any) -> dict[str, str | None]:
    return {name: getattr(r, name) for name in EQUALITY_FIELDS}


def _encrypt_plain_row(conn: Connection, cipher: PersonalDataCipher, referral_id: str,
                       plain: dict[str, str | None]) -> int:
    """1 when the row still held these plain answers and now holds them encrypted, else 0."""
    changed = conn.execute(
        update(EqualityRecord)
        .where(col(EqualityRecord.referral_id) == referral_id, col(EqualityRecord.answers).is_(None),
               *(getattr(EqualityRecord, name).is_not_distinct_from(value) for name, value in plain.items()))
        .values(answers=seal_answers(cipher, plain), ethnicity=None, religion=None, disability=None))
    return changed.rowcount


@dataclass
class Reencryption:
    """What one batch of `reencrypt` did."""

    total: int  # rows of the table holding an encrypted value (or a plain equality answer)
    checked: int = 0
    reencrypted: int = 0  # were under an older key, now under the first
    encrypted: int = 0  # equality answers stored in plain, now encrypted
    current: int = 0  # under the first key already
    changed: int = 0  # written again by intake meanwhile (so under its first key): left as they are
    unreadable: int = 0  # no configured key opens them: left as they are
    last: str | None = None  # the key of the last row checked


def reencrypt(conn: Connection, cipher: PersonalDataCipher, table: EncryptedTable, *, after: str,
              limit: int) -> Reencryption:
    """Re-encrypt under the first key the values of up to `limit` rows of `table` after `after` (in key order):
    referral bodies, equality answers (a plain one is encrypted), sealed dead letters or console authenticator
    secrets. Each row is written only
    if it still holds what was read (compare-and-set), so a value intake writes again meanwhile is kept."""
    if table == "referral":
        return _reencrypt_referrals(conn, cipher, after=after, limit=limit)
    if table == "equality_monitoring":
        return _reencrypt_answers(conn, cipher, after=after, limit=limit)
    if table == "console_credential":
        return _reencrypt_totp_secrets(conn, cipher, after=after, limit=limit)
    return _reencrypt_dead_letters(conn, cipher, after=after, limit=limit)


def _reencrypt_referrals(conn: Connection, cipher: PersonalDataCipher, *, after: str, limit: int) -> Reencryption:
    """A withdrawal's note is written with the body, under the same key, so it is re-encrypted with it."""
    key, body, note = col(ReferralRecord.referral_id), col(ReferralRecord.body), col(ReferralRecord.withdrawal_note)
    stored = body != ""  # an erased referral keeps an empty body
    done = Reencryption(total=conn.execute(select(func.count()).select_from(ReferralRecord).where(stored)).scalar_one())
    for referral_id, token, note_token in conn.execute(select(key, body, note).where(key > after, stored).order_by(key)
                                                       .limit(limit)).all():
        done.checked, done.last = done.checked + 1, referral_id
        if (new := _rotated(done, cipher.rotate, token, f"referral {referral_id}")) is not None:
            new_note = None if note_token is None else cipher.rotate(note_token) or note_token
            _count_write(done, conn.execute(update(ReferralRecord).where(key == referral_id, body == token)
                                            .values(body=new, withdrawal_note=new_note)).rowcount)
    return done


def _reencrypt_answers(conn: Connection, cipher: PersonalDataCipher, *, after: str, limit: int) -> Reencryption:
    key, answers = col(EqualityRecord.referral_id), col(EqualityRecord.answers)
    done = Reencryption(total=conn.execute(select(func.count()).select_from(EqualityRecord)).scalar_one())
    for r in conn.execute(select(EqualityRecord).where(key > after).order_by(key).limit(limit)).all():
        done.checked, done.last = done.checked + 1, r.referral_id
        if r.answers is None:  # stored in plain by a version before migration 0003
            if _encrypt_plain_row(conn, cipher, r.referral_id, _plain(r)):
                done.encrypted += 1
            else:
                done.changed += 1
        elif (new := _rotated(done, cipher.rotate, r.answers, f"equality answers of {r.referral_id}")) is not None:
            _count_write(done, conn.execute(update(EqualityRecord).where(key == r.referral_id, answers == r.answers)
                                            .values(answers=new)).rowcount)
    return done


def _reencrypt_dead_letters(conn: Connection, cipher: PersonalDataCipher, *, after: str, limit: int) -> Reencryption:
    key, body = col(DeadLetterRow.id), col(DeadLetterRow.body)
    done = Reencryption(total=conn.execute(select(func.count()).select_from(DeadLetterRow)).scalar_one())
    for dead_letter_id, sealed in conn.execute(select(key, body).where(key > after).order_by(key).limit(limit)).all():
        done.checked, done.last = done.checked + 1, dead_letter_id
        if (new := _rotated(done, cipher.rotate_sealed, sealed, f"dead letter {dead_letter_id}")) is not None:
            _count_write(done, conn.execute(update(DeadLetterRow).where(key == dead_letter_id, body == sealed)
                                            .values(body=new)).rowcount)
    return done


def _reencrypt_totp_secrets(conn: Connection, cipher: PersonalDataCipher, *, after: str,
                            limit: int) -> Reencryption:
    key, secret = col(ConsoleCredentialRecord.person_id), col(ConsoleCredentialRecord.totp_secret)
    kept = secret.is_not(None)
    done = Reencryption(total=conn.execute(select(func.count()).select_from(ConsoleCredentialRecord)
                                           .where(kept)).scalar_one())
    for person_id, token in conn.execute(select(key, secret).where(key > after, kept).order_by(key)
                                         .limit(limit)).all():
        done.checked, done.last = done.checked + 1, person_id
        assert token is not None  # selected only where kept
        if (new := _rotated(done, cipher.rotate, token, f"the authenticator secret of {person_id}")) is not None:
            _count_write(done, conn.execute(update(ConsoleCredentialRecord).where(key == person_id, secret == token)
                                            .values(totp_secret=new)).rowcount)
    return done


def _rotated(done: Reencryption, rotate: Callable[[V], V | None], old: V, what: str) -> V | None:
    """The value under the first key, or None (counted) when it is under it already or no key opens it."""
    try:
        new = rotate(old)
    except UnreadablePersonalData:
        done.unreadable += 1
        log.warning("%s cannot be decrypted with any configured key: left as it is", what)
        return None
    if new is None:
        done.current += 1
    return new


def _count_write(done: Reencryption, rowcount: int) -> None:
    if rowcount:
        done.reencrypted += 1
    else:
        done.changed += 1


def rejection_row(event_id: str, agency_id: str, agency_referral_id: str | None, errors: list[dict[str, str]], *,
                  now: datetime) -> dict[str, object]:
    """A refused submission: its reasons only, never its body."""
    return {"event_id": event_id, "agency_id": agency_id, "agency_referral_id": agency_referral_id,
            "received_at": now, "errors": json.dumps(errors)}
