"""A borough's rooms taken (`venues.week`), asked of scheduling's own endpoint on a real database: every venue of the
borough with its rooms and the sessions that hold one that week; cancelled sessions hold none, and another borough's
venues are not shown. Who may ask it (schedulers only) is checked with every other request, in
test_people_permissions.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from services.scheduling.rpc import Scheduling, venues_week
from services.scheduling.slots import LONDON
from services.scheduling.store import save_venues
from services.scheduling.tables import SessionRow
from shared.contracts.scheduling import VenueRecord
from shared.contracts.scheduling_rpc import VenuesWeekRequest
from tests.support.scheduling_endpoints import scheduling_endpoints

MONDAY = date(2026, 3, 2)


@pytest.fixture
async def scheduling(tmp_path: Path) -> AsyncIterator[Scheduling]:
    async with scheduling_endpoints(tmp_path) as endpoints:
        yield endpoints


def _at(day: int, hour: int) -> datetime:
    return datetime.combine(MONDAY + timedelta(days=day), datetime.min.time(), tzinfo=LONDON).replace(hour=hour)


async def test_a_boroughs_venues_with_the_sessions_that_hold_their_rooms(scheduling: Scheduling) -> None:
    venues = [VenueRecord(id="v-hub", name="Deptford Hub", borough="Lewisham", rooms=3),
              VenueRecord(id="v-lib", name="Catford Library", borough="lewisham", rooms=1, staffed=False),
              VenueRecord(id="v-far", name="Brixton Centre", borough="Lambeth", rooms=2)]
    sessions = [("s-1", "v-hub", _at(1, 10), "booked"), ("s-2", "v-hub", _at(1, 10), "confirmed"),
                ("s-3", "v-hub", _at(1, 10), "cancelled"), ("s-4", "v-hub", _at(0, 9), "attended"),
                ("s-5", "v-hub", _at(7, 10), "booked"),  # the next week
                ("s-6", "v-far", _at(1, 10), "booked")]
    now = datetime.now(LONDON)
    with scheduling.host.engine.begin() as conn:
        save_venues(conn, venues, now=now)
        conn.execute(insert(SessionRow), [
            {"session_id": sid, "referral_id": f"r-{sid}", "mentor_id": f"m-{sid}", "venue_id": venue, "start": start,
             "end": start + timedelta(hours=1), "status": status, "created_at": now, "updated_at": now}
            for sid, venue, start, status in sessions])

    week = await venues_week(VenuesWeekRequest(borough="LEWISHAM", start=MONDAY), scheduling)

    assert week.borough == "Lewisham" and week.starts == _at(0, 0) and week.ends == _at(7, 0)
    assert [(v.id, v.rooms, v.staffed) for v in week.venues] == [("v-lib", 1, False), ("v-hub", 3, True)]
    hub = week.venues[1]
    assert [(s.session_id, s.mentor_id, s.start, s.end, s.status) for s in sorted(hub.sessions, key=lambda s: (s.start, s.session_id))] == [
        ("s-4", "m-s-4", _at(0, 9), _at(0, 10), "attended"),
        *((sid, f"m-{sid}", _at(1, 10), _at(1, 11), status) for sid, status in (("s-1", "booked"), ("s-2", "confirmed")))]
    assert week.venues[0].sessions == []

    elsewhere = await venues_week(VenuesWeekRequest(borough="Hackney", start=MONDAY, days=7), scheduling)
    assert [(v.id, v.default_office, v.sessions) for v in elsewhere.venues] == [("office-hackney", True, [])]


async def test_a_venue_changed_by_another_replica_shows_at_the_next_ask(scheduling: Scheduling) -> None:
    with scheduling.host.engine.begin() as conn:
        save_venues(conn, [VenueRecord(id="v-one", name="Peckham Hub", borough="Southwark", rooms=1)],
                    now=datetime.now(LONDON))
    first = await venues_week(VenuesWeekRequest(borough="Southwark", start=MONDAY), scheduling)
    with scheduling.host.engine.begin() as conn:  # as another replica's import would: this process is not told
        save_venues(conn, [VenueRecord(id="v-one", name="Peckham Hub", borough="Southwark", rooms=2)],
                    now=datetime.now(LONDON))

    second = await venues_week(VenuesWeekRequest(borough="Southwark", start=MONDAY), scheduling)

    assert [v.rooms for v in first.venues] == [1] and [v.rooms for v in second.venues] == [2]
