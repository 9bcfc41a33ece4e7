"""Risk's consumer handler on a real database, a batch at a time: each referral, and each revision of one, is
assessed once, and what is stored (the case's latest, the assessment's event) is what is published. Runs on SQLite,
and on PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from opentelemetry import trace
from sqlalchemy import Engine, select
from sqlmodel import col

from services.risk.handlers import handle_recorded
from services.risk.shipped_rules import SHIPPED_RULES
from services.risk.tables import AssessmentRecord, RiskCase
from shared.contracts.intake import Indicator, PersonFacts, Preferences, ReferralRecorded
from shared.contracts.rules import load_rules
from shared.messaging import Delivery
from shared.outbox import Outgoing
from shared.subjects import Subjects
from tests.support.databases import service_database

NOW = datetime.now(UTC)
S = Subjects()
RULES = load_rules(SHIPPED_RULES)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with service_database("risk", tmp_path) as made:
        yield made


def facts(referral_id: str, *, revision: int = 0, indicators: tuple[str, ...] = ()) -> ReferralRecorded:
    return ReferralRecorded(
        event_id=f"recorded-{referral_id}-{revision}", occurred_at=NOW, referral_id=referral_id, agency_id="yot",
        agency_referral_id=f"A-{referral_id}", person_id=f"psn_{referral_id}", revision=revision,
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Hackney", languages=["en"]),
        indicators=[Indicator(code=c, observed_at=date.today()) for c in indicators], protective_factors=[],
        unsafe_areas=[], preferences=Preferences(), availability=[])


def batch(engine: Engine, *events: ReferralRecorded | bytes) -> list[Outgoing]:
    deliveries = [Delivery(S.recorded("yot"), e if isinstance(e, bytes) else e.model_dump_json().encode(), {},
                           f"k-{uuid.uuid4().hex}", trace.INVALID_SPAN) for e in events]
    with engine.begin() as conn:
        return handle_recorded(conn, deliveries, NOW, rules=RULES, subjects=S)


def test_each_referral_and_revision_in_a_batch_is_assessed_once_and_stored_as_published(engine: Engine) -> None:
    r1, r2 = f"ref_{uuid.uuid4().hex[:16]}", f"ref_{uuid.uuid4().hex[:16]}"
    first = batch(engine, facts(r1), facts(r2, indicators=("weapon_carrying",)), facts(r1))  # r1 again: a repeat
    second = batch(engine, facts(r1, revision=1, indicators=("weapon_carrying",)), facts(r1, revision=1))

    published = {json.loads(o.payload)["event_id"]: o.payload.decode() for o in first + second
                 if o.subject == S.assessed("yot")}
    assert sorted(published) == sorted([f"assessed:{r1}:1", f"assessed:{r2}:1", f"assessed:{r1}:2"])
    with engine.connect() as conn:
        stored = dict(conn.execute(select(col(AssessmentRecord.event_id), col(AssessmentRecord.event))).all())
        latest = dict(conn.execute(select(col(RiskCase.referral_id), col(RiskCase.latest))).all())
    assert stored == published, "each assessment's row holds the event as published"
    assert latest == {r1: published[f"assessed:{r1}:2"], r2: published[f"assessed:{r2}:1"]}
    assert json.loads(latest[r1])["change"]["cause"] == "update"


def test_a_new_referral_and_its_update_in_one_batch_are_assessed_one_after_the_other(engine: Engine) -> None:
    """Under a backlog a referral and its update arrive in one batch: the update is the second assessment, with its
    change from the first (before, both were number 1, the batch failed on the duplicate event id and was retried
    one message at a time)."""
    r = f"ref_{uuid.uuid4().hex[:16]}"

    out = batch(engine, facts(r), facts(r, revision=1, indicators=("weapon_carrying",)))

    published = [json.loads(o.payload) for o in out if o.subject == S.assessed("yot")]
    assert [p["event_id"] for p in published] == [f"assessed:{r}:1", f"assessed:{r}:2"]
    assert published[1]["change"]["cause"] == "update"
    with engine.connect() as conn:
        numbers = sorted(conn.execute(select(col(AssessmentRecord.event_id))).scalars())
        (latest,) = conn.execute(select(col(RiskCase.latest)).where(col(RiskCase.referral_id) == r)).scalars()
    assert numbers == [f"assessed:{r}:1", f"assessed:{r}:2"]
    assert json.loads(latest)["event_id"] == f"assessed:{r}:2"
