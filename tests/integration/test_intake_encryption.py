"""Intake's store on a real database: equality answers stored in plain by an earlier version are encrypted by
replicas sweeping at once while answers are written again. Runs on SQLite, and on PostgreSQL when DATABASE_URL is
set."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert, select, text

from services.intake.crypto import IntakeKeys, PersonalDataCipher, PersonMatcher
from services.intake.store import (
    ReferralStore,
    encrypt_plain_answers,
    equality_answers,
)
from services.intake.tables import EqualityRecord
from shared.db import make_engine
from shared.migrations import schema_of, upgrade
from shared.settings import ServiceSettings

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = ServiceSettings(data_dir=tmp_path, db_schema_prefix=f"enc{uuid.uuid4().hex[:8]}",
                               DATABASE_URL=os.environ.get("DATABASE_URL"))  # type: ignore[call-arg]
    made = make_engine("intake", settings)
    upgrade(made, "intake")
    yield made
    if made.dialect.name == "postgresql":
        with made.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_of(made)}" CASCADE'))
    made.dispose()


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
