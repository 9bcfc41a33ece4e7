"""Scheduling's consumers on a real database when one batch carries a new referral twice: the case the batch inserts is
the one the second message finds (its row is made only then), and a case read back is what was stored. Runs on
SQLite, and on PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from sqlalchemy import Engine, select
from sqlmodel import col

from services.scheduling import privacy, store
from services.scheduling.handlers import handle_assessed, handle_intake
from services.scheduling.store import case_row, cases_in, load_case, load_cases, waitlisted_cases
from services.scheduling.tables import CaseRow
from shared.contracts.common import Event
from shared.contracts.intake import ReferralWithdrawn
from shared.contracts.scheduling import CaseStatus
from shared.messaging import Delivery
from shared.subjects import Subjects
from tests.support.scheduling_cases import NOW, assessed, facts, with_one_mentor

S = Subjects()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with with_one_mentor(tmp_path) as made:
        yield made



def batch(subject: str, *events: Event) -> list[Delivery]:
    return [Delivery(subject, e.model_dump_json().encode(), {}, e.event_id, trace.INVALID_SPAN) for e in events]


def test_a_new_referrals_second_assessment_in_the_batch_is_the_one_kept(engine: Engine) -> None:
    r = f"ref_{uuid.uuid4().hex[:16]}"
    first = assessed(r)
    second = first.model_copy(update={"event_id": f"assessed-{r}-2", "number": first.number + 1})
    older = first.model_copy(update={"event_id": f"assessed-{r}-0"})

    with engine.begin() as conn:
        out = handle_assessed(conn, batch(S.assessed("yot"), first, second, older), NOW, subjects=S)

    assert out == [], "no facts yet: nothing to book"
    with engine.connect() as conn:
        kept = load_case(conn, r)
    assert kept is not None
    assert (kept.status, kept.assessment_number, kept.tier) == (
        CaseStatus.AWAITING_REFERRAL, second.number, second.tier.value)


def test_a_withdrawal_repeated_in_the_batch_of_a_referral_never_heard_of_closes_it_once(engine: Engine) -> None:
    r = f"ref_{uuid.uuid4().hex[:16]}"
    once = ReferralWithdrawn(event_id=f"withdrawn-{r}", occurred_at=NOW, referral_id=r, agency_id="yot",
                             agency_referral_id=f"A-{r}", reason="consent_withdrawn", withdrawn_at=NOW)
    again = once.model_copy(update={"event_id": f"withdrawn-{r}-again"})

    with engine.begin() as conn:
        out = handle_intake(conn, batch(S.recorded_withdrawal("yot"), once, again), NOW, subjects=S)

    assert out == []
    with engine.connect() as conn:
        kept = load_case(conn, r)
    assert kept is not None and kept.status == CaseStatus.CLOSED


def test_cases_read_back_are_the_rows_stored(engine: Engine) -> None:
    """The store loads cases without validating each row again: every column reads as validation would give it."""
    booked, waiting = f"ref_{uuid.uuid4().hex[:16]}", f"ref_{uuid.uuid4().hex[:16]}"
    with engine.begin() as conn:
        handle_intake(conn, batch(S.recorded("yot"), facts(booked)), NOW, subjects=S)
        handle_assessed(conn, batch(S.assessed("yot"), assessed(booked), assessed(waiting)), NOW, subjects=S)

    with engine.connect() as conn:
        validated = {r.referral_id: case_row(r._mapping) for r in conn.execute(select(CaseRow))}
        loaded = load_cases(conn, [booked, waiting])
        found = [load_case(conn, booked), *cases_in(conn, CaseStatus.SCHEDULED, CaseStatus.AWAITING_REFERRAL)]
        listed = waitlisted_cases(conn)
        assert conn.in_transaction(), "the loads leave the caller's transaction open"

    assert loaded[booked].status == CaseStatus.SCHEDULED and loaded[booked].mentor_id == "m-1"
    assert listed == []
    for row in [*loaded.values(), *found]:
        assert row is not None
        assert {name: getattr(row, name) for name in CaseRow.model_fields} == {
            name: getattr(validated[row.referral_id], name) for name in CaseRow.model_fields}


def test_a_request_whose_first_read_is_a_case_reads_the_rest_in_the_same_transaction(engine: Engine) -> None:
    """`status` reads the case, then its mentor and sessions: the load must not end the transaction it began, or a
    booking could commit between the reads and the answer mix two states."""
    rid = f"ref_{uuid.uuid4().hex[:16]}"
    with engine.begin() as conn:
        handle_intake(conn, batch(S.recorded("yot"), facts(rid)), NOW, subjects=S)

    with engine.connect() as conn:
        assert load_case(conn, rid) is not None
        assert conn.in_transaction(), "the first load began the reads' transaction and left it open"


def test_erasure_forgets_the_facts_scheduling_kept_in_memory(engine: Engine) -> None:
    rid = f"ref_{uuid.uuid4().hex[:16]}"
    with engine.begin() as conn:
        handle_intake(conn, batch(S.recorded("yot"), facts(rid)), NOW, subjects=S)
        stored = conn.execute(select(col(CaseRow.facts)).where(col(CaseRow.referral_id) == rid)).scalar_one()
    assert stored is not None
    assert store._digest(stored) in store._FACTS

    with engine.begin() as conn:
        assert privacy.erase(conn, [rid]) == {"referrals": 1}
    assert store._digest(stored) not in store._FACTS
