"""Intake's store on a real database: equality answers stored in plain by an earlier version are encrypted by
replicas sweeping at once while answers are written again, and re-encryption goes batch by batch, counting what
it did. Runs on SQLite, and on PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert, select
from sqlmodel import col

from services.intake.crypto import IntakeKeys, PersonalDataCipher, PersonMatcher
from services.intake.store import (
    Reencryption,
    ReferralStore,
    encrypt_plain_answers,
    equality_answers,
    reencrypt,
    seal_answers,
)
from services.intake.tables import EqualityRecord, ReferralRecord
from shared.contracts.intake_rpc import ENCRYPTED_TABLES, EncryptedTable
from shared.deadletters import DeadLetterRow
from tests.support.databases import service_database

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with service_database("intake", tmp_path) as made:
        yield made


def keys(*fernet_keys: bytes) -> IntakeKeys:
    return IntakeKeys(PersonalDataCipher(list(fernet_keys)), PersonMatcher(b"m" * 32))


def test_two_replicas_encrypt_plain_answers_at_once_and_answers_written_meanwhile_are_kept(engine: Engine) -> None:
    k = keys(Fernet.generate_key())
    ids = [f"ref_{i:016x}" for i in range(240)]
    with engine.begin() as conn:  # as a version before migration 0003 stored them
        conn.execute(insert(EqualityRecord), [{"referral_id": rid, "ethnicity": f"E{i}", "disability": "D",
                                               "recorded_at": NOW} for i, rid in enumerate(ids)])
    rewritten = ids[::4]
    swept: list[int] = []

    def replica() -> None:
        while True:
            with engine.begin() as conn:
                done = encrypt_plain_answers(conn, k, limit=15)
            swept.append(done)
            if not done:
                return

    def handler() -> None:  # the same referrals' answers sent again, as the handler stores them
        for rid in rewritten:
            with engine.begin() as conn:
                store = ReferralStore(conn, k)
                store.keep_monitoring(rid, {"ethnicity": f"new {rid}"}, now=NOW)
                store.save(now=NOW)

    threads = [threading.Thread(target=t) for t in (replica, replica, handler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    with engine.connect() as conn:
        rows = conn.execute(select(EqualityRecord)).all()
        answers = equality_answers(conn, k)
    assert all(r.answers is not None and (r.ethnicity, r.religion, r.disability) == (None, None, None) for r in rows)
    assert answers == {rid: ({"ethnicity": f"new {rid}", "religion": None, "disability": None} if rid in rewritten
                             else {"ethnicity": f"E{i}", "religion": None, "disability": "D"})
                       for i, rid in enumerate(ids)}
    assert sum(swept) <= len(ids), "no row was encrypted twice"


def test_reencrypt_goes_batch_by_batch_and_says_what_it_did(engine: Engine) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before, after = keys(old), keys(new, old)
    with engine.begin() as conn:
        conn.execute(insert(ReferralRecord), [
            {"referral_id": rid, "agency_id": "a", "agency_referral_id": rid, "received_at": NOW, "updated_at": NOW,
             "person_id": "p", "body": body, "revision": 0, "submissions": 1,
             "withdrawal_note": before.cipher.encrypt("withdrawn: two") if rid == "ref_2" else None}
            for rid, body in [("ref_1", before.cipher.encrypt("one")), ("ref_2", before.cipher.encrypt("two")),
                              ("ref_3", after.cipher.encrypt("three")), ("ref_4", before.cipher.encrypt("four")),
                              ("erased_1", "")]])
        conn.execute(insert(EqualityRecord).values(referral_id="ref_1", recorded_at=NOW,
                                                   answers=seal_answers(before.cipher, {"ethnicity": "X"})))
        conn.execute(insert(EqualityRecord).values(referral_id="ref_2", recorded_at=NOW, religion="Y"))  # before 0003
        conn.execute(insert(DeadLetterRow), [
            {"id": did, "message_key": did, "consumer": "intake-submitted", "subject": "s", "headers": "{}",
             "body": body, "reason": "r", "deliveries": 5, "failed_at": NOW, "status": "open"}
            for did, body in [("intake-1", before.cipher.seal(b"poison")), ("intake-2", b"not sealed")]])

    done = {table: _all_batches(engine, after.cipher, table, limit=2) for table in ENCRYPTED_TABLES}

    assert (done["referral"].total, done["referral"].checked, done["referral"].reencrypted,
            done["referral"].current) == (4, 4, 3, 1), "the erased referral has nothing to re-encrypt"
    assert (done["equality_monitoring"].reencrypted, done["equality_monitoring"].encrypted) == (1, 1)
    assert (done["dead_letters"].reencrypted, done["dead_letters"].unreadable) == (1, 1)
    only_new = keys(new)
    with engine.connect() as conn:
        bodies = conn.execute(select(col(ReferralRecord.body)).where(col(ReferralRecord.body) != "")
                              .order_by(col(ReferralRecord.referral_id))).scalars().all()
        assert [only_new.cipher.decrypt(b) for b in bodies] == ["one", "two", "three", "four"]
        note = conn.execute(select(col(ReferralRecord.withdrawal_note)).where(col(ReferralRecord.referral_id) == "ref_2")
                            ).scalar_one()
        assert note is not None and only_new.cipher.decrypt(note) == "withdrawn: two", "the note goes with the body"
        assert equality_answers(conn, only_new) == {
            "ref_1": {"ethnicity": "X", "religion": None, "disability": None},
            "ref_2": {"ethnicity": None, "religion": "Y", "disability": None}}
        sealed = conn.execute(select(col(DeadLetterRow.body)).where(col(DeadLetterRow.id) == "intake-1")).scalar_one()
        assert only_new.cipher.unseal(sealed) == b"poison"
    again = {table: _all_batches(engine, after.cipher, table, limit=2) for table in ENCRYPTED_TABLES}
    assert sum(d.reencrypted + d.encrypted for d in again.values()) == 0, "a second run has nothing to do"


def _all_batches(engine: Engine, cipher: PersonalDataCipher, table: EncryptedTable, *, limit: int) -> Reencryption:
    """Every batch of one table, as `reroute keys reencrypt` asks for them, added up."""
    total, after = Reencryption(total=0), ""
    while True:
        with engine.begin() as conn:
            done = reencrypt(conn, cipher, table, after=after, limit=limit)
        total.total = done.total
        for count in ("checked", "reencrypted", "encrypted", "current", "changed", "unreadable"):
            setattr(total, count, getattr(total, count) + getattr(done, count))
        if done.checked < limit or done.last is None:
            return total
        after = done.last
