"""`reroute keys rematch` on intake's real database: a person stored before the confusables skeleton, or under a
matching key since rotated, is still recognised, is moved to the current key batch by batch (an interrupted run
loses no one), and two records of one young person spelt with look-alike letters become one. Runs on SQLite, and
on PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from opentelemetry import trace
from sqlalchemy import Engine, select, update
from sqlmodel import col

from services.intake.crypto import IntakeKeys, PersonalDataCipher, PersonMatcher
from services.intake.handlers import Submission, decide_submissions
from services.intake.people import normalise_name
from services.intake.privacy import erase_referrals
from services.intake.rematch import Rematching, rematch
from services.intake.tables import PersonRecord, ReferralRecord
from shared.subjects import Subjects
from tests.support.cluster import referral
from tests.support.databases import intake_database

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
FERNET = Fernet.generate_key()
OLD, NEW = secrets.token_bytes(32), secrets.token_bytes(32)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with intake_database(tmp_path) as (made, _):
        yield made


def keys(*matching: bytes) -> IntakeKeys:
    return IntakeKeys(PersonalDataCipher([FERNET]), PersonMatcher(*matching))


def refer(engine: Engine, k: IntakeKeys, given: str, family: str = "Mensah", born: str = "2010-05-17", *,
          agency: str = "yot", days: int = 0) -> str:
    """Submit one referral of this young person; the person intake filed it under."""
    body: dict[str, Any] = referral(f"R{secrets.token_hex(4)}", language="en")
    body["young_person"] |= {"given_name": given, "family_name": family, "date_of_birth": born}
    now = NOW + timedelta(days=days)
    with engine.begin() as conn:
        (decision,), _ = decide_submissions(conn, [Submission(agency, json.dumps(body).encode(), secrets.token_hex(4),
                                                              "submitted", trace.INVALID_SPAN)], now,
                                            subjects=Subjects(), keys=k)
    assert decision.outcome == "accepted", decision.errors
    with engine.connect() as conn:
        person: str = conn.execute(select(col(ReferralRecord.person_id))
                                   .where(col(ReferralRecord.referral_id) == decision.referral_id)).scalar_one()
    return person


def rematch_all(engine: Engine, k: IntakeKeys, *, limit: int = 2) -> Rematching:
    """Batch after batch, as `reroute keys rematch` asks for them; the counts added up."""
    total = Rematching(total=0)
    after = ""
    while True:
        with engine.begin() as conn:
            done = rematch(conn, k, after=after, limit=limit)
        for name in ("checked", "rematched", "current", "merged", "forgotten", "changed", "unreadable"):
            setattr(total, name, getattr(total, name) + getattr(done, name))
        if done.checked < limit or done.last is None:
            return total
        after = done.last


def as_before_the_skeleton(engine: Engine, person_id: str, given: str, family: str, born: str) -> None:
    """The person's hash as versions before the skeleton stored it: the letters of the names, under `OLD`."""
    legacy = PersonMatcher(OLD).match_key(normalise_name(given), normalise_name(family), born)
    with engine.begin() as conn:
        conn.execute(update(PersonRecord).where(col(PersonRecord.person_id) == person_id).values(match_key=legacy))


def people(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {p: k for p, k in conn.execute(select(col(PersonRecord.person_id), col(PersonRecord.match_key)))}


def test_after_the_upgrade_known_people_are_recognised_and_rematch_joins_look_alike_spellings(engine: Engine) -> None:
    before = keys(OLD)
    kwabena = refer(engine, before, "Kwabena")
    as_before_the_skeleton(engine, kwabena, "Kwabena", "Mensah", "2010-05-17")
    other = refer(engine, before, "Kwame")
    as_before_the_skeleton(engine, other, "Kwame", "Mensah", "2010-05-17")

    assert refer(engine, before, "KWABENA", days=1) == kwabena, "known before the upgrade, recognised after it"
    lookalike = refer(engine, before, "Кwаbеnа", "Меnsаh", days=2)  # Cyrillic К а е М
    assert lookalike != kwabena, "stored under the earlier comparison, so not found until rematched"

    done = rematch_all(engine, before)

    assert (done.rematched, done.merged, done.unreadable, done.changed) == (1, 1, 0, 0)
    assert set(people(engine)) == {kwabena, other}, "one person, the one intake knew first, and Kwame apart"
    with engine.connect() as conn:
        theirs = conn.execute(select(col(ReferralRecord.person_id))).scalars().all()
    assert sorted(theirs) == sorted([kwabena, kwabena, kwabena, other])
    assert refer(engine, before, "Кwаbеnа", "Меnsаh", days=3) == kwabena
    assert refer(engine, before, "Kwame", days=3) == other
    again = rematch_all(engine, before)
    assert (again.checked, again.current, again.rematched, again.merged) == (2, 2, 0, 0), "nothing left to do"


def test_a_new_matching_key_with_rematch_keeps_recognising_everyone_once_the_old_key_is_gone(engine: Engine) -> None:
    names = ["Amara", "Bilal", "Chidi", "Dara", "Esi"]
    known = {name: refer(engine, keys(OLD), name) for name in names}

    rotating = keys(NEW, OLD)  # step 1: the new key in front
    assert refer(engine, rotating, "Amara", days=1) == known["Amara"]
    newcomer = refer(engine, rotating, "Femi", days=1)  # stored under the new key already
    with engine.begin() as conn:  # step 2, interrupted after its first batch
        first = rematch(conn, rotating, after="", limit=2)
    assert first.checked == 2 and first.rematched >= 1 and first.last is not None
    for name in names:  # moved or not yet, everyone is still recognised while both keys are configured
        assert refer(engine, rotating, name, days=2) == known[name]

    done = rematch_all(engine, rotating)  # run again: it finishes the job

    assert first.rematched + done.rematched == 5, "each of the five moved once"
    assert (done.checked, done.merged, done.changed) == (6, 0, 0)
    only_new = keys(NEW)  # step 3: the old key dropped
    for name in names:
        assert refer(engine, only_new, name, days=3) == known[name]
    assert refer(engine, only_new, "Femi", days=3) == newcomer
    with engine.connect() as conn:
        referred = conn.execute(select(col(ReferralRecord.received_at))
                                .where(col(ReferralRecord.person_id) == known["Bilal"])).scalars().all()
    assert len(referred) == 3, "the earlier referrals are still this person's history (the repeat-referral factor)"


def test_a_person_with_no_referral_left_is_forgotten_and_an_unreadable_one_is_left_and_counted(engine: Engine) -> None:
    purged = refer(engine, keys(OLD), "Gift")
    unreadable = refer(engine, keys(OLD), "Hana")
    with engine.begin() as conn:
        ids = conn.execute(select(col(ReferralRecord.referral_id))
                           .where(col(ReferralRecord.person_id) == purged)).scalars().all()
        erase_referrals(conn, list(ids))  # the retention purge leaves the person's hash behind
        conn.execute(update(ReferralRecord).where(col(ReferralRecord.person_id) == unreadable)
                     .values(body=Fernet(Fernet.generate_key()).encrypt(b"{}").decode()))  # under a key long lost
    kept = people(engine)[unreadable]

    done = rematch_all(engine, keys(NEW, OLD))

    assert (done.forgotten, done.unreadable, done.rematched) == (1, 1, 0)
    assert people(engine) == {unreadable: kept}
