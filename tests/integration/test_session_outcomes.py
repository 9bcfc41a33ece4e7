"""Three missed sessions in a row, against a real database: escalate when wellbeing is high, else close."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from services.scheduling.sessions import add_working_days, change_session
from services.scheduling.tables import AlertRow, CaseRow, SessionRow
from shared.db import make_engine
from shared.migrations import upgrade
from shared.settings import ServiceSettings
from shared.subjects import Subjects

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    import os
    import uuid

    settings = ServiceSettings(data_dir=tmp_path, db_schema_prefix=f"it{uuid.uuid4().hex[:8]}",
                               database_url=os.environ.get("DATABASE_URL"))
    eng = make_engine("scheduling", settings)
    upgrade(eng, "scheduling")
    yield eng
    if eng.dialect.name == "postgresql":
        from sqlalchemy import text

        with eng.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{settings.db_schema_prefix}_scheduling" CASCADE'))
    eng.dispose()


def _case(engine, wellbeing: str) -> list[str]:  # type: ignore[no-untyped-def]
    starts = [NOW - timedelta(days=21), NOW - timedelta(days=14), NOW - timedelta(days=7), NOW + timedelta(days=7)]
    with engine.begin() as conn:
        conn.execute(insert(CaseRow).values(referral_id="ref_x", agency_id="yot", facts="{}", tier="medium",
                                            cadence_tier="medium", wellbeing_tier=wellbeing, status="scheduled",
                                            mentor_id="m1", updated_at=NOW))
        conn.execute(insert(SessionRow), [
            {"session_id": f"s{i}", "referral_id": "ref_x", "mentor_id": "m1", "start": st,
             "end": st + timedelta(hours=1), "status": "booked", "created_at": NOW - timedelta(days=30),
             "updated_at": NOW - timedelta(days=30)}
            for i, st in enumerate(starts)
        ])
    return [f"s{i}" for i in range(4)]


def _miss(engine, session_id: str):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return change_session(conn, session_id, "missed", reason="", now=NOW, subjects=Subjects())


def test_three_misses_with_high_wellbeing_raise_the_disengagement_escalation(engine) -> None:  # type: ignore[no-untyped-def]
    s0, s1, s2, future = _case(engine, "high")
    assert _miss(engine, s0)[0]["follow_up"] is None
    assert _miss(engine, s1)[0]["follow_up"] is None
    reply, out = _miss(engine, s2)

    assert reply["follow_up"] == "escalate"
    alert = json.loads(out[0].payload)
    assert out[0].subject == "safeguarding.alert.yot" and alert["rule_id"] == "E12_disengagement_with_rising_risk"
    assert datetime.fromisoformat(alert["deadline"]) == add_working_days(NOW, 2)
    with engine.connect() as conn:
        assert conn.execute(select(CaseRow.status)).scalar() == "scheduled", "escalated, not closed"
        assert conn.execute(select(SessionRow.status).where(SessionRow.session_id == future)).scalar() == "booked"
        kept = conn.execute(select(AlertRow.event_id, AlertRow.agency_id, AlertRow.acknowledged_at)).all()
    assert [tuple(k) for k in kept] == [(alert["event_id"], "yot", None)], "kept with the event, for `reroute alerts`"


def test_three_misses_with_lower_wellbeing_close_the_case_and_cancel_what_is_left(engine) -> None:  # type: ignore[no-untyped-def]
    s0, s1, s2, future = _case(engine, "medium")
    _miss(engine, s0)
    _miss(engine, s1)
    reply, out = _miss(engine, s2)

    assert reply["follow_up"] == "close"
    event = json.loads(out[0].payload)
    assert out[0].subject == "sessions.cancelled.yot" and event["cancelled"] == [future]
    with engine.connect() as conn:
        assert conn.execute(select(CaseRow.status)).scalar() == "closed"
        assert conn.execute(select(SessionRow.status).where(SessionRow.session_id == future)).scalar() == "cancelled"


def test_working_days_skip_the_weekend() -> None:
    friday = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    assert add_working_days(friday, 2) == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
