"""Two risk replicas deciding one referral's tier at once, on PostgreSQL: a countersignature and the asker's
withdrawal of the same lowering never both succeed, and the tier in force is what the one that did decided.

On SQLite every transaction begins IMMEDIATE, so there is one writer at a time already; on PostgreSQL each decision
takes the referral's lock first. The countersigning replica is held just after it found the lowering pending, and
the other replica withdraws it then (and asks again)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from opentelemetry import trace
from sqlalchemy import Connection, Engine, select, text
from sqlmodel import col

from services.risk import pending, rpc
from services.risk.handlers import handle_recorded
from services.risk.shipped_rules import SHIPPED_RULES
from services.risk.tables import AssessmentRecord, PendingOverrideRecord, RiskCase
from shared.contracts.codes import Tier
from shared.contracts.intake import Indicator, PersonFacts, Preferences, ReferralRecorded
from shared.contracts.risk_rpc import (
    CountersignRequest,
    OverrideRequest,
    RefuseOverrideRequest,
    Reviewed,
    SeenLowering,
)
from shared.contracts.rpc import Refused, ServiceError
from shared.contracts.rules import load_rules
from shared.db import is_postgres
from shared.messaging import Delivery
from shared.outbox import Outgoing
from shared.service import ServiceHost
from shared.subjects import Subjects
from tests.support.databases import service_database
from tests.support.waiting import wait_until_sync

T = TypeVar("T")
RULES = load_rules(SHIPPED_RULES)


class Replica:
    """What risk's endpoints need of their host, on a connection of its own named `name` (as PostgreSQL lists it)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self.subjects = Subjects()
        self.tracer = trace.get_tracer(__name__)

    async def transact(self, decide: Callable[[Connection, datetime], tuple[T, list[Outgoing]]]) -> T:
        with self.engine.begin() as conn:
            conn.execute(text("SELECT set_config('application_name', :n, true)"), {"n": self.name})
            return decide(conn, datetime.now(UTC))[0]


def replica(engine: Engine, name: str) -> rpc.Risk:
    return rpc.Risk(host=cast(ServiceHost, Replica(engine, name)), rules=RULES)


@pytest.fixture
def any_engine(tmp_path: Path) -> Iterator[Engine]:
    with service_database("risk", tmp_path) as made:
        yield made


@pytest.fixture
def engine(any_engine: Engine) -> Iterator[Engine]:
    if not is_postgres(any_engine):
        pytest.skip("SQLite has one writer at a time already (every transaction begins IMMEDIATE)")
    yield any_engine


def recorded(rid: str, *, revision: int = 0) -> Delivery:
    """Intake's facts of a referral with ordinary indicators (computed low), as risk's consumer receives them."""
    facts = ReferralRecorded(
        event_id=f"recorded-{rid}-{revision}", occurred_at=datetime.now(UTC), referral_id=rid, agency_id="yot",
        agency_referral_id=f"A-{rid}", person_id=f"psn_{rid}", revision=revision,
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Hackney", languages=["en"]),
        indicators=[Indicator(code="peers_offending", observed_at=date.today())], protective_factors=[],
        unsafe_areas=[], preferences=Preferences(), availability=[])
    return Delivery(Subjects().recorded("yot"), facts.model_dump_json().encode(), {}, f"k-{rid}-{revision}",
                    trace.INVALID_SPAN)


def assessed(engine: Engine) -> str:
    """A referral risk has assessed."""
    rid = f"ref_{uuid.uuid4().hex[:16]}"
    with engine.begin() as conn:
        handle_recorded(conn, [recorded(rid)], datetime.now(UTC), rules=RULES, subjects=Subjects())
    return rid


def on_its_own(work: Callable[[], Any], *, name: str) -> tuple[threading.Thread, list[object]]:
    """`work` (a coroutine's maker) run on a thread of its own named `name`; what it returned or raised, once done."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(work()))
        except Exception as exc:  # noqa: BLE001 - the outcome the test reads, a refusal or a bug alike
            outcome.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, outcome


def held_countersignature(monkeypatch: pytest.MonkeyPatch, rid: str, shown: SeenLowering, signer: rpc.Risk,
                          ) -> tuple[threading.Thread, list[object], threading.Event]:
    """Sam Roy's countersignature of `shown`, on a thread of its own, held just after it found the lowering pending
    (holding the referral's locks) until the event returned is set; its thread and outcome."""
    checked, go = threading.Event(), threading.Event()
    waiting = rpc._waiting

    def held_after_the_check(*args: Any, **kwargs: Any) -> Any:
        found = waiting(*args, **kwargs)
        if threading.current_thread().name == "countersigning":
            checked.set()
            go.wait(timeout=60)
        return found

    monkeypatch.setattr(rpc, "_waiting", held_after_the_check)
    countersigning, signed = on_its_own(lambda: rpc.countersign(
        CountersignRequest(referral_id=rid, lowering=shown, by="Sam Roy"), signer), name="countersigning")
    assert checked.wait(timeout=30), f"the countersignature never reached its check: {signed}"
    return countersigning, signed, go


def waits_for_a_lock(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n AND "
                                      "wait_event_type = 'Lock'"), {"n": name}).scalar())


def test_a_withdrawal_while_another_replica_countersigns_leaves_one_decision_and_its_tier(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = assessed(engine)
    signer, asker = f"b-{uuid.uuid4().hex[:8]}", f"a-{uuid.uuid4().hex[:8]}"
    b, a = replica(engine, signer), replica(engine, asker)
    asyncio.run(rpc.override(OverrideRequest(referral_id=rid, tier=Tier.HIGH, reason="Knife seen", by="Ana Lee"), a))
    asked = asyncio.run(rpc.override(OverrideRequest(referral_id=rid, tier=Tier.MEDIUM, reason="Calmer at school",
                                                     by="Ana Lee"), a))
    assert asked.pending is not None
    shown = SeenLowering(tier=asked.pending.tier, requested_at=asked.pending.requested_at,
                         assessment_number=asked.assessment.number)

    countersigning, signed, go = held_countersignature(monkeypatch, rid, shown, b)

    async def withdraw_and_ask_again() -> Reviewed:
        await rpc.refuse_override(RefuseOverrideRequest(referral_id=rid, reason="Asked too soon",
                                                        lowering=shown, by="Ana Lee"), a)
        return await rpc.override(OverrideRequest(referral_id=rid, tier=Tier.LOW, reason="Moved school",
                                                  by="Ana Lee"), a)

    withdrawing, withdrawn = on_its_own(withdraw_and_ask_again, name="withdrawing")
    wait_until_sync(lambda: not withdrawing.is_alive() or waits_for_a_lock(engine, asker), timeout=30, every=0.05,
                    what="the withdrawal finishing or waiting for the countersignature's lock")
    go.set()
    countersigning.join(timeout=60)
    withdrawing.join(timeout=60)

    with engine.connect() as conn:
        tier = conn.execute(select(col(RiskCase.tier)).where(col(RiskCase.referral_id) == rid)).scalar()
        rows = [(r.tier, r.status, r.decided_by) for r in conn.execute(
            select(PendingOverrideRecord).where(col(PendingOverrideRecord.referral_id) == rid)
            .order_by(col(PendingOverrideRecord.id)))]
    assert isinstance(signed[0], Reviewed), signed
    assert isinstance(withdrawn[0], ServiceError), (
        f"the withdrawal was told {type(withdrawn[0]).__name__} while the countersignature was told it lowered the tier to "
        f"{signed[0].assessment.tier}; stored: tier {tier}, lowerings {rows}")
    assert "was countersigned already, by Sam Roy" in withdrawn[0].message
    assert tier == "medium" and rows == [("medium", "countersigned", "Sam Roy")]


def test_a_lowering_decided_already_is_never_decided_again(any_engine: Engine) -> None:
    """Whatever let it through, a second decision on one lowering is refused and its transaction rolled back."""
    rid = f"ref_{uuid.uuid4().hex[:16]}"
    now = datetime.now(UTC)
    with any_engine.begin() as conn:
        pending.ask(conn, referral_id=rid, tier=Tier.MEDIUM, reason="Calmer", by="Ana Lee", now=now,
                    lasts=timedelta(hours=72))
        found = pending.latest(conn, rid)
        assert found is not None
        row_id = found[0]
        pending.decide(conn, row_id, status="refused", by="Ana Lee", reason="Asked too soon", now=now)

    with pytest.raises(Refused, match="decided by someone else meanwhile"), any_engine.begin() as conn:
        pending.decide(conn, row_id, status="countersigned", by="Sam Roy", reason=None, now=now)

    with any_engine.connect() as conn:
        row = conn.execute(select(PendingOverrideRecord).where(col(PendingOverrideRecord.id) == row_id)).one()
    assert (row.status, row.decided_by, row.decision_reason) == ("refused", "Ana Lee", "Asked too soon")


def test_a_reassessment_while_another_replica_countersigns_builds_on_the_countersigned_tier(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agency's update reaching one replica while a second risk lead countersigns on another: the re-assessment
    waits for the countersignature and keeps the tier it set (the computed tier is unchanged), and both succeed.
    Before, both numbered their assessment the same and one failed."""
    rid = assessed(engine)
    signer, reassessing = f"b-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    a, b = replica(engine, f"a-{uuid.uuid4().hex[:8]}"), replica(engine, signer)
    asyncio.run(rpc.override(OverrideRequest(referral_id=rid, tier=Tier.HIGH, reason="Knife seen", by="Ana Lee"), a))
    asked = asyncio.run(rpc.override(OverrideRequest(referral_id=rid, tier=Tier.MEDIUM, reason="Calmer at school",
                                                     by="Ana Lee"), a))
    assert asked.pending is not None
    shown = SeenLowering(tier=asked.pending.tier, requested_at=asked.pending.requested_at,
                         assessment_number=asked.assessment.number)

    countersigning, signed, go = held_countersignature(monkeypatch, rid, shown, b)

    async def reassess() -> list[Outgoing]:
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('application_name', :n, true)"), {"n": reassessing})
            return handle_recorded(conn, [recorded(rid, revision=1)], datetime.now(UTC), rules=RULES,
                                   subjects=Subjects())

    updating, updated = on_its_own(reassess, name="reassessing")
    wait_until_sync(lambda: not updating.is_alive() or waits_for_a_lock(engine, reassessing), timeout=30,
                    every=0.05, what="the re-assessment finishing or waiting for the countersignature's lock")
    go.set()
    countersigning.join(timeout=60)
    updating.join(timeout=60)

    assert isinstance(signed[0], Reviewed), signed
    assert isinstance(updated[0], list), updated
    with engine.connect() as conn:
        tier = conn.execute(select(col(RiskCase.tier)).where(col(RiskCase.referral_id) == rid)).scalar()
        history = [(r.number, r.cause, r.final_tier) for r in conn.execute(
            select(AssessmentRecord).where(col(AssessmentRecord.referral_id) == rid)
            .order_by(col(AssessmentRecord.number)))]
    assert history == [(1, "referral", "low"), (2, "override", "high"), (3, "override", "medium"),
                       (4, "update", "medium")], history
    assert tier == "medium"
