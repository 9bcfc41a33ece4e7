"""Scheduling's consumers driven directly on a real database: a store with one mentor, and the events of one
referral (intake's facts, risk's first assessment) as scheduling receives them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from services.risk.handlers import Case, next_assessment
from services.risk.shipped_rules import SHIPPED_RULES
from services.scheduling.store import save_mentors
from shared.contracts.intake import PersonFacts, Preferences, ReferralRecorded
from shared.contracts.risk import RiskAssessed
from shared.contracts.rules import load_rules
from shared.contracts.scheduling import MentorRecord
from tests.support.cluster import mentor
from tests.support.databases import service_database

NOW = datetime.now(UTC)
"""The moment the events below are made at, unless another is given."""


@contextmanager
def with_one_mentor(tmp_path: Path, now: datetime = NOW) -> Iterator[Engine]:
    """Scheduling's database (SQLite, or PostgreSQL when DATABASE_URL is set) with mentor m-1 (English)."""
    with service_database("scheduling", tmp_path) as made:
        with made.begin() as conn:
            save_mentors(conn, [MentorRecord.model_validate(mentor("m-1", language="en"))], now=now)
        yield made


def facts(referral_id: str, now: datetime = NOW) -> ReferralRecorded:
    """Intake's facts of a referral in Hackney, English-speaking, with no indicators."""
    return ReferralRecorded(
        event_id=f"recorded-{referral_id}", occurred_at=now, referral_id=referral_id, agency_id="yot",
        agency_referral_id=f"A-{referral_id}", person_id="psn_1",
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Hackney", languages=["en"]),
        indicators=[], protective_factors=[], unsafe_areas=[], preferences=Preferences(), availability=[])


def assessed(referral_id: str, now: datetime = NOW) -> RiskAssessed:
    """Risk's first assessment of `facts(referral_id)`, by the shipped rules."""
    recorded = facts(referral_id, now)
    first = RiskAssessed.model_construct(referral_id=referral_id, number=0, escalations=[])  # no assessment yet
    return next_assessment(Case(recorded, first, new=True), recorded, rules=load_rules(SHIPPED_RULES), now=now,
                           cause="referral").assessed
