"""A batch's new sessions are stored as given, in one statement, and change the booking version that other replicas
read to know that their kept mentors and rooms are out of date; on PostgreSQL the version's row is updated once for
the batch, not once per session (migration 0007's statement trigger)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from services.scheduling import store
from shared.contracts.common import SessionSlot
from shared.contracts.scheduling import SessionStatus
from shared.db import is_postgres
from shared.migrations import schema_of
from tests.support.databases import service_database
from tests.support.matching import NOW


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with service_database("scheduling", tmp_path) as made:
        yield made


def _rows(referral_id: str, count: int) -> list[dict[str, object]]:
    """`count` hour-long sessions a day apart, every other one at a venue with both routes."""
    rows = []
    for i in range(count):
        start = NOW + timedelta(days=i)
        slot = SessionSlot(session_id=f"ses_{uuid.uuid4().hex[:16]}", start=start, end=start + timedelta(hours=1))
        row = store.session_row(referral_id, "m-ayo", slot, NOW, None)
        if i % 2:
            row |= {"venue_id": "v-hall", "route": '["Hackney"]', "mentor_route": '["Islington", "Hackney"]'}
        rows.append(row)
    return rows


def test_a_batch_of_sessions_is_stored_as_given_and_changes_the_booking_version(engine: Engine) -> None:
    referral_id = f"r{uuid.uuid4().hex[:8]}"
    rows = _rows(referral_id, 300)
    with engine.begin() as conn:
        before = store.booking_version(conn)
    with engine.begin() as conn:
        store.add_sessions(conn, rows)
    with engine.begin() as conn:
        stored = store.case_sessions(conn, referral_id, [SessionStatus.BOOKED])
        after = store.booking_version(conn)
    assert after != before  # another replica's kept mentors and rooms no longer count as current
    given = sorted(rows, key=lambda r: str(r["start"]))
    assert [r.model_dump() for r in stored] == given


def test_an_empty_batch_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        before = store.booking_version(conn)
        store.add_sessions(conn, [])
        assert store.booking_version(conn) == before


def test_a_batch_of_sessions_updates_the_booking_version_row_once_on_postgresql(engine: Engine) -> None:
    if not is_postgres(engine):
        pytest.skip("the statement trigger and its row updates are PostgreSQL's (SQLite's triggers fire per row)")
    with engine.begin() as conn:
        before = _version_updates(conn)
        store.add_sessions(conn, _rows(f"r{uuid.uuid4().hex[:8]}", 500))
        assert _version_updates(conn) - before == 1


def _version_updates(conn: Connection) -> int:
    """The booking version row's updates this backend has counted and not yet reported (this transaction's with
    them), so a difference within one transaction counts its own."""
    return int(conn.execute(text("SELECT n_tup_upd FROM pg_stat_xact_user_tables "
                                 "WHERE schemaname = :schema AND relname = 'booking_version'"),
                            {"schema": schema_of(conn.engine)}).scalar_one())
