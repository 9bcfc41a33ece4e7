"""Loading the mentors for each batch reuses what it worked out last time only where the stored rows read the same:
after bookings, cancellations, leave, a changed record, a booking that was never stored (a rolled-back batch, or
another replica's view) and another replica's booking, every state equals one worked out from nothing.

And booking reuses the mentors and rooms its last batch left it with, whole, only while the booking version reads
the same: every change to a session, a leave, a mentor, a venue or a case holding a place, by anyone, and a batch
rolled back, make it load again; on PostgreSQL no one can change them while a booking holds the lock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select, text, update
from sqlmodel import col

from services.scheduling import store
from services.scheduling.constraints import MentorIndex, MentorState, SafeVenue
from services.scheduling.lifecycle import HOLDING_A_PLACE
from services.scheduling.matching import _day_slots, with_booking
from services.scheduling.privacy import erase
from services.scheduling.rooms import Rooms
from services.scheduling.slots import LONDON
from services.scheduling.tables import CaseRow, SessionRow
from shared.contracts.codes import Tier
from shared.contracts.common import SessionSlot
from shared.contracts.scheduling import CaseStatus, SessionStatus, VenueRecord
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
        assert state.places == other.places  # where each session is held: the travel rule reads it
        assert state.venues == other.venues
        for day, slots in state.day_slots.items():  # what was kept is what working it out again gives
            assert slots == tuple(other.own_calendar.mentor_side(day)), (mentor_id, day)


def _session(conn: Connection, mentor_id: str, start: datetime, referral_id: str | None = None) -> str:
    slot = SessionSlot(session_id=f"ses_{uuid.uuid4().hex[:16]}", start=start, end=start + timedelta(hours=1))
    store.add_sessions(conn, [store.session_row(referral_id or f"r{uuid.uuid4().hex[:8]}", mentor_id, slot, NOW,
                                                None)])
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


MONDAY_10 = datetime(2026, 3, 9, 10, 0, tzinfo=LONDON)
HALL = VenueRecord(id="hall", name="Hackney Hall", borough="Hackney", staffed=True, rooms=2)


def _holds(rooms: Rooms) -> dict[str, list[tuple[datetime, datetime]]]:
    return {venue: held for venue, held in rooms._held.items() if held}


def _case(conn: Connection, referral_id: str, status: CaseStatus, mentor_id: str | None = None) -> None:
    store.add_cases(conn, [{"referral_id": referral_id, "agency_id": "a1", "status": status, "tier": "low",
                            "cadence_tier": "low", "mentor_id": mentor_id, "updated_at": NOW}])


def _book(conn: Connection, mentor_id: str, start: datetime) -> tuple[MentorIndex, Rooms]:
    """A batch that books one session at the hall, as booking does: under the lock, stored, the state kept."""
    store.lock_bookings(conn)
    mentors, rooms = store.booking_state(conn, now=NOW)
    referral_id = f"r{uuid.uuid4().hex[:8]}"
    _case(conn, referral_id, CaseStatus.SCHEDULED, mentor_id)
    slot = SessionSlot(session_id=f"ses_{uuid.uuid4().hex[:16]}", start=start, end=start + timedelta(hours=1))
    place = next(v for v in store.load_mentor_states(conn, now=NOW)[mentor_id].venues or () if v.id == HALL.id)
    store.add_sessions(conn, [{**store.session_row(referral_id, mentor_id, slot, NOW, None), "venue_id": place.id}])
    mentors[mentor_id] = with_booking(mentors[mentor_id], [(slot.start, slot.end)], Tier.LOW,
                                      venues=[SafeVenue(place, ("Hackney",))])
    rooms.hold(place.id, slot.start, slot.end)
    store.remember(mentors)
    store.keep(conn, mentors, rooms, now=NOW)
    return mentors, rooms


def _reused(engine: Engine, kept: tuple[MentorIndex, Rooms]) -> bool:
    """Whether the next booking reuses what was kept, checking that what it gets equals what loading gives."""
    with engine.begin() as conn:
        store.lock_bookings(conn)
        mentors, rooms = store.booking_state(conn, now=NOW)
        _assert_same(mentors, _from_nothing(conn))
        assert _holds(rooms) == _holds(store.load_rooms(conn, now=NOW))
        store.keep(conn, mentors, rooms, now=NOW)  # as a batch booking nothing would leave them
    return mentors is kept[0] and rooms is kept[1]


@pytest.fixture
def registry(engine: Engine) -> Engine:
    weekdays = [window(d, "09:00", "17:00") for d in ("mon", "tue", "wed", "thu", "fri")]  # type: ignore[arg-type]
    with engine.begin() as conn:
        store.save_venues(conn, [HALL], now=NOW)
        store.save_mentors(conn, [mentor(f"m{i}", availability=weekdays).record for i in range(3)], now=NOW)
    store.forget_bookings()
    return engine


def test_booking_reuses_what_its_last_batch_left_while_nothing_changes(registry: Engine) -> None:
    with registry.begin() as conn:
        kept = _book(conn, "m0", MONDAY_10)
    assert _reused(registry, kept)
    with registry.begin() as conn:  # cases that hold no place change nothing booking reads
        _case(conn, f"r{uuid.uuid4().hex[:8]}", CaseStatus.AWAITING_ASSESSMENT)
        _case(conn, f"r{uuid.uuid4().hex[:8]}", CaseStatus.WAITLISTED)
        kept = _book(conn, "m1", MONDAY_10)
    assert _reused(registry, kept)


def _referral_of(conn: Connection, session_id: str) -> str:
    return str(conn.execute(select(col(SessionRow.referral_id)).where(col(SessionRow.session_id) == session_id))
               .scalar_one())


CHANGES = {
    "a session cancelled": lambda conn, booked: store.set_session_status(
        conn, [booked], SessionStatus.CANCELLED, now=NOW),
    "a session moved": lambda conn, booked: store.move_session(
        conn, booked, start=MONDAY_10 + timedelta(hours=2), end=MONDAY_10 + timedelta(hours=3), venue=None, now=NOW),
    "leave": lambda conn, _: store.add_leave(conn, "m2", date(2026, 3, 10), date(2026, 3, 11), now=NOW),
    "a mentor's record": lambda conn, _: store.save_mentors(conn, [mentor("m2", max_caseload=1).record], now=NOW),
    "a new mentor": lambda conn, _: store.save_mentors(conn, [mentor("m9").record], now=NOW),
    "a venue": lambda conn, _: store.save_venues(conn, [HALL.model_copy(update={"rooms": 1})], now=NOW),
    "another replica's booking": lambda conn, _: _session(conn, "m2", MONDAY_10 + timedelta(days=1)),
    "a case holding a place, closed": lambda conn, booked: conn.execute(
        update(CaseRow).where(col(CaseRow.referral_id) == _referral_of(conn, booked)).values(status="closed")),
    "a case holding a place, erased": lambda conn, booked: erase(conn, [_referral_of(conn, booked)]),
    "a case taking a place": lambda conn, _: _case(conn, f"r{uuid.uuid4().hex[:8]}", CaseStatus.SUSPENDED, "m2"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_to_what_booking_reads_makes_it_load_again(registry: Engine, change: str) -> None:
    with registry.begin() as conn:
        _book(conn, "m0", MONDAY_10)
    with registry.begin() as conn:
        kept = _book(conn, "m1", MONDAY_10)
        booked = str(conn.execute(select(col(SessionRow.session_id)).where(col(SessionRow.mentor_id) == "m1")).scalar())
    with registry.begin() as conn:
        CHANGES[change](conn, booked)
    assert not _reused(registry, kept)


def test_a_batch_rolled_back_leaves_nothing_to_reuse(registry: Engine) -> None:
    with registry.begin() as conn:
        _book(conn, "m0", MONDAY_10)
    with pytest.raises(RuntimeError), registry.begin() as conn:
        kept = _book(conn, "m1", MONDAY_10)  # kept, then the batch fails before its commit
        raise RuntimeError("the outbox could not be written")
    assert not _reused(registry, kept)


def test_the_triggers_watch_the_statuses_that_hold_a_place() -> None:
    import importlib

    migration = importlib.import_module("services.scheduling.migrations.versions.0007_booking_version")
    assert set(migration.HOLDING) == {status.value for status in HOLDING_A_PLACE}, (
        "HOLDING_A_PLACE changed: a new migration must recreate the booking_version triggers on sched_case")


def test_no_one_changes_what_booking_reads_while_it_holds_the_lock(registry: Engine) -> None:
    if not is_postgres(registry):
        pytest.skip("SQLite has one writer at a time already (every transaction begins IMMEDIATE)")
    with registry.begin() as conn:
        _book(conn, "m0", MONDAY_10)
        booked = str(conn.execute(select(col(SessionRow.session_id))).scalar())
    with registry.begin() as booking:
        store.lock_bookings(booking)
        with registry.connect() as other:
            other.execute(text("SET lock_timeout = '100ms'"))
            with pytest.raises(Exception, match="lock timeout"):
                store.set_session_status(other, [booked], SessionStatus.CANCELLED, now=NOW)
            other.rollback()
