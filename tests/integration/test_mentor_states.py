"""Loading the mentors for each batch reuses what it worked out last time only where the stored rows read the same:
after bookings, cancellations, leave, a changed record, a booking that was never stored (a rolled-back batch, or
another replica's view) and another replica's booking, every state equals one worked out from nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from services.scheduling import store
from services.scheduling.constraints import MentorIndex, MentorState
from services.scheduling.matching import _day_slots, with_booking
from services.scheduling.slots import LONDON
from shared.contracts.codes import Tier
from shared.contracts.common import SessionSlot
from shared.contracts.scheduling import SessionStatus
from shared.db import is_postgres, make_engine
from shared.migrations import upgrade
from shared.settings import ServiceSettings
from tests.support.matching import NOW, mentor, window

DAYS = [NOW.date() + timedelta(days=i) for i in range(28)]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = ServiceSettings(data_dir=tmp_path, db_schema_prefix=f"tm{uuid.uuid4().hex[:12]}")  # type: ignore[call-arg]
    made = make_engine("scheduling", settings)
    upgrade(made, "scheduling")
    yield made
    if is_postgres(made):
        with made.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{settings.db_schema_prefix}_scheduling" CASCADE'))
    made.dispose()


def _worked_out(states: MentorIndex) -> None:
    """Every day's free starts of every mentor, as matching works them out and keeps them."""
    for state in states.values():
        for day in DAYS:
            _day_slots(state, day)


def _from_nothing(conn: Connection) -> MentorIndex:
    store._SEEN.clear()
    store._VENUES.clear()
    return store.load_mentor_states(conn, now=NOW)


def _assert_same(reused: MentorIndex, fresh: MentorIndex) -> None:
    assert list(reused) == list(fresh)
    for mentor_id, state in reused.items():
        other = fresh[mentor_id]
        assert state.record == other.record
        assert (state.caseload, state.points, state.without_check) == (other.caseload, other.points,
                                                                         other.without_check)
        assert state.busy_utc == other.busy_utc
        assert state.venues == other.venues
        for day, slots in state.day_slots.items():  # what was kept is what working it out again gives
            assert slots == tuple(other.own_calendar.mentor_side(day)), (mentor_id, day)


def _session(conn: Connection, mentor_id: str, start: datetime) -> str:
    slot = SessionSlot(session_id=f"ses_{uuid.uuid4().hex[:16]}", start=start, end=start + timedelta(hours=1))
    store.add_sessions(conn, [store.session_row(f"r{uuid.uuid4().hex[:8]}", mentor_id, slot, NOW, None)])
    return slot.session_id


def test_reused_states_equal_states_worked_out_from_nothing(engine: Engine) -> None:
    weekdays = [window(d, "09:00", "17:00") for d in ("mon", "tue", "wed", "thu", "fri")]  # type: ignore[arg-type]
    records = [mentor(f"m{i}", availability=weekdays).record for i in range(4)]
    monday_10 = datetime(2026, 3, 9, 10, 0, tzinfo=LONDON)
    with engine.begin() as conn:
        store.save_mentors(conn, records, now=NOW)
        first = store.load_mentor_states(conn, now=NOW)
        _worked_out(first)
        kept = _session(conn, "m0", monday_10)
        cancelled = _session(conn, "m1", monday_10 + timedelta(days=1))
        store.add_leave(conn, "m2", date(2026, 3, 11), date(2026, 3, 12), now=NOW)

    with engine.begin() as conn:
        second = store.load_mentor_states(conn, now=NOW)
        assert second["m3"] is first["m3"]  # nothing of m3's changed: the very state, with its days worked out
        assert second["m0"] is not first["m0"] and second["m0"].day_slots  # untouched days kept
        _assert_same(second, _from_nothing(conn))

    with engine.begin() as conn:
        again = store.load_mentor_states(conn, now=NOW)
        _worked_out(again)
        store.set_session_status(conn, [cancelled], SessionStatus.CANCELLED, now=NOW)
        store.save_mentors(conn, [mentor("m3", availability=weekdays[:2]).record], now=NOW)  # fewer days now
        # this batch books m2 in memory and remembers it, but its session is never stored (rolled back)
        booked = MentorIndex(again.values())
        booked["m2"] = with_booking(again["m2"], [(monday_10, monday_10 + timedelta(hours=1))], Tier.LOW)
        store.remember(booked)

    with engine.begin() as conn:
        third = store.load_mentor_states(conn, now=NOW)
        _assert_same(third, _from_nothing(conn))
        assert kept  # m0's session still stands in both

    with engine.begin() as conn:
        fourth = store.load_mentor_states(conn, now=NOW)
        _worked_out(fourth)
        booked = MentorIndex(fourth.values())
        booked["m1"] = with_booking(fourth["m1"], [(monday_10, monday_10 + timedelta(hours=1))], None)
        store.remember(booked)
        _session(conn, "m1", monday_10)  # this one is stored: the remembered state is the stored one
        _session(conn, "m0", monday_10 + timedelta(days=2))  # and another replica books m0 meanwhile

    with engine.begin() as conn:
        fifth = store.load_mentor_states(conn, now=NOW)
        assert fifth["m1"].busy_utc == booked["m1"].busy_utc
        _assert_same(fifth, _from_nothing(conn))


def test_a_state_reused_across_batches_is_a_mentor_state(engine: Engine) -> None:
    with engine.begin() as conn:
        store.save_mentors(conn, [mentor("solo").record], now=NOW)
        states = store.load_mentor_states(conn, now=NOW)
    assert isinstance(states["solo"], MentorState) and len(states) == 1
