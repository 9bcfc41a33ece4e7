"""Scheduling's handlers on a real database: a withdrawal closes the case whatever scheduling held of it, and a case
closed before its referral's facts arrive (a withdrawal, or a scheduler's closure, while the facts were held as a dead
letter) is never booked when they do; a referral's update in the same batch as its first facts is what is kept. Runs
on SQLite, and on PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from sqlalchemy import Engine

from services.scheduling.handlers import handle_assessed, handle_intake
from services.scheduling.store import load_case
from shared.contracts.common import Event
from shared.contracts.intake import ReferralWithdrawn
from shared.messaging import Delivery
from shared.outbox import Outgoing
from shared.subjects import Subjects
from tests.support.scheduling_cases import NOW, assessed, facts, with_one_mentor

S = Subjects()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with with_one_mentor(tmp_path) as made:
        yield made



def withdrawn(referral_id: str) -> ReferralWithdrawn:
    return ReferralWithdrawn(event_id=f"withdrawn-{referral_id}", occurred_at=NOW, referral_id=referral_id,
                             agency_id="yot", agency_referral_id=f"A-{referral_id}", reason="consent_withdrawn",
                             withdrawn_at=NOW)


def delivered(engine: Engine, subject: str, event: Event) -> list[Outgoing]:
    """One event through the consumer that reads its subject, in a transaction of its own."""
    d = Delivery(subject, event.model_dump_json().encode(), {}, event.event_id, trace.INVALID_SPAN)
    handler = handle_assessed if subject == S.assessed("yot") else handle_intake
    with engine.begin() as conn:
        return handler(conn, [d], NOW, subjects=S)


def test_a_case_closed_before_its_facts_arrive_is_not_booked_when_they_do(engine: Engine) -> None:
    booked, kept_closed = "ref_booked", "ref_withdrawn"
    for rid in (booked, kept_closed):
        assert delivered(engine, S.assessed("yot"), assessed(rid)) == [], "no facts yet: nothing to book"

    closing = delivered(engine, S.recorded_withdrawal("yot"), withdrawn(kept_closed))
    later = {rid: delivered(engine, S.recorded("yot"), facts(rid)) for rid in (booked, kept_closed)}

    assert [o.subject for o in closing] == [S.cancelled("yot")], "told as a closure, with nothing to cancel"
    assert json.loads(closing[0].payload)["cancelled"] == []
    assert [o.subject for o in later[booked]] == [S.scheduled("yot")], "the same facts book an open case"
    assert later[kept_closed] == []
    with engine.connect() as conn:
        case = load_case(conn, kept_closed)
    assert case is not None and (case.status, case.reason) == (
        "closed", "withdrawn by the referring agency (yot): consent withdrawn")


def test_a_withdrawal_scheduling_never_heard_of_closes_a_case_nothing_later_books(engine: Engine) -> None:
    rid = "ref_unknown"

    first = delivered(engine, S.recorded_withdrawal("yot"), withdrawn(rid))
    after = delivered(engine, S.assessed("yot"), assessed(rid)) + delivered(engine, S.recorded("yot"), facts(rid))
    again = delivered(engine, S.recorded_withdrawal("yot"), withdrawn(rid).model_copy(update={"event_id": "w2"}))

    assert first == after == again == []
    with engine.connect() as conn:
        case = load_case(conn, rid)
    assert case is not None and case.status == "closed"
    assert case.agency_reason == "withdrawn by your agency (consent withdrawn): its remaining sessions are cancelled"


def test_an_update_in_the_same_batch_as_the_referrals_first_facts_is_the_one_kept(engine: Engine) -> None:
    """Under a backlog a referral and its update arrive in one batch: scheduling books from the update (here the young
    person moved borough). Before, the update's facts went to a row not yet inserted and the first facts were kept."""
    r = f"ref_{uuid.uuid4().hex[:16]}"
    first = facts(r)
    moved = first.model_copy(update={"event_id": f"recorded-{r}-1", "revision": 1,
                                     "person": first.person.model_copy(update={"borough": "Camden"})})
    batch = [Delivery(S.recorded("yot"), e.model_dump_json().encode(), {}, e.event_id, trace.INVALID_SPAN)
             for e in (first, moved)]

    with engine.begin() as conn:
        handle_intake(conn, batch, NOW, subjects=S)

    with engine.connect() as conn:
        kept = load_case(conn, r)
    assert kept is not None and kept.facts is not None
    assert json.loads(kept.facts)["revision"] == 1 and json.loads(kept.facts)["person"]["borough"] == "Camden"
