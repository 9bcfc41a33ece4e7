"""Scheduling's reads stay as fast after years of sessions as on the first day (issue 15; docs/performance.md, "As
history grows"): no query booking, the batch round, status or the calendars make reads the whole session, leave or
case table; each goes through an index to the window it asks for. SQLite's query plans, on an empty database: its
planner chooses without statistics, so the plan is what a year of history gets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from services.scheduling import store
from services.scheduling.reoptimisation import read_round
from services.scheduling.tables import CaseRow
from shared.contracts.scheduling import CaseStatus, SessionStatus
from shared.db import make_engine
from shared.migrations import upgrade
from shared.settings import ServiceSettings
from tests.support.matching import NOW

HISTORY = ("session", "mentor_leave", "sched_case")  # the tables that grow with every referral


def test_no_read_of_scheduling_scans_a_table_that_grows_with_history(tmp_path: Path) -> None:
    engine = make_engine("scheduling", ServiceSettings(data_dir=tmp_path, DATABASE_URL=None))  # type: ignore[call-arg]
    upgrade(engine, "scheduling")
    asked: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _asked(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, _many: bool) -> None:
        if sql.lstrip().startswith("SELECT"):
            asked.append((sql, params))

    case = CaseRow(referral_id="r1", agency_id="a", person_id="p1", status=CaseStatus.SCHEDULED, updated_at=NOW)
    with engine.connect() as conn:
        store.booking_state(conn, now=NOW)  # every mentor's sessions, leave and caseload, and the rooms taken
        read_round(conn, now=NOW)
        store.previous_mentors(conn, [case])
        store.load_case(conn, "r1"), store.case_sessions(conn, "r1", list(SessionStatus))  # status
        store.mentor_calendar(conn, "m1", NOW, NOW + timedelta(days=7))
        store.venue_sessions(conn, ["v1", "office-lewisham"], NOW, NOW + timedelta(days=7), list(SessionStatus))
        store.mentor_leave(conn, "m1", NOW.date(), NOW.date() + timedelta(days=6))
        store.mentor_feed(conn, "m1", ending_after=NOW - timedelta(days=30))
        store.sessions_during(conn, "m1", (NOW, NOW + timedelta(days=3)), now=NOW)
        store.upcoming_sessions(conn, ["r1"], [SessionStatus.BOOKED], now=NOW)
        event.remove(engine, "before_cursor_execute", _asked)
        plans = {sql: [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                 for sql, params in asked}
    assert len(plans) >= 13
    for sql, plan in plans.items():
        scans = [step for step in plan if any(step.split()[:2] == ["SCAN", table] for table in HISTORY)]
        assert not scans, f"{' '.join(sql.split())} reads a whole table: {plan}"
    engine.dispose()
