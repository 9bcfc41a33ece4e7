"""Rooms at venues: counted by overlap, freed when a session moves, and kept in view when matching."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.scheduling.constraints import Case, MentorState, SafeVenue
from services.scheduling.matching import LONDON, Match, match, sessions_from
from services.scheduling.rooms import Rooms
from shared.contracts.codes import Tier
from shared.contracts.scheduling import MentorRecord, VenueRecord

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # a Monday
HOUR = timedelta(hours=1)
ONE_ROOM = VenueRecord(id="hub", name="Hackney hub", borough="Hackney", rooms=1)
HUB = SafeVenue(ONE_ROOM, ("Hackney",))


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=LONDON)


def test_a_room_is_in_use_only_while_a_session_overlaps_it() -> None:
    rooms = Rooms({"hub": [(at(3, 10), at(3, 11))]})
    assert rooms.in_use("hub", at(3, 10, 30), at(3, 11, 30)) == 1
    assert rooms.in_use("hub", at(3, 9), at(3, 10)) == 0  # ends as the other begins
    assert rooms.in_use("hub", at(3, 11), at(3, 12)) == 0
    assert rooms.in_use("elsewhere", at(3, 10), at(3, 11)) == 0


def test_placing_takes_the_first_venue_with_a_room_and_drops_a_session_with_none() -> None:
    second = SafeVenue(VenueRecord(id="annex", name="Annex", borough="Hackney", rooms=1), ("Hackney",))
    rooms = Rooms({"hub": [(at(3, 10), at(3, 11))]})
    placed = rooms.place([HUB, second], [(at(3, 10), at(3, 11)), (at(3, 12), at(3, 13))])
    assert [(interval[0], v.venue.id if v else None) for interval, v in placed] == [(at(3, 10), "annex"),
                                                                                   (at(3, 12), "hub")]
    assert rooms.place([HUB, second], [(at(3, 10), at(3, 11))]) == []  # both rooms now taken at 10:00


def test_a_released_room_is_free_again() -> None:
    rooms = Rooms({"hub": [(at(3, 10), at(3, 11))]})
    rooms.release("hub", at(3, 10), at(3, 11))
    assert rooms.room_free([HUB])(at(3, 10))
    rooms.release(None, at(3, 10), at(3, 11))  # a session that held no room: nothing to do


def _mentor(mentor_id: str, **changes: Any) -> MentorState:
    record = MentorRecord.model_validate({
        "id": mentor_id, "name": mentor_id, "kind": "staff", "boroughs": ["Hackney"], "languages": ["en"],
        "gender": "female", "max_caseload": 5,
        "availability": [{"day": d, "start": "16:00", "end": "18:00"} for d in ("mon", "tue", "wed", "thu", "fri")],
        **changes})
    return MentorState(record=record, caseload=0, busy=[], venues=(ONE_ROOM,))


def _case(referral_id: str) -> Case:
    return Case(referral_id=referral_id, tier=Tier.MEDIUM, borough="Hackney", languages=["en"], mentor_gender="any",
                preferred_language=None, availability=[], unsafe_areas=[], accepted_at=NOW)


def test_the_matcher_books_round_a_full_room_instead_of_waitlisting() -> None:
    rooms = Rooms()
    first = match(_case("r1"), [_mentor("m1")], now=NOW, rooms=rooms)
    assert isinstance(first, Match) and first.sessions[0][0] == at(2, 16)
    rooms.place([HUB], first.sessions)
    # Another mentor, free at the same time: the hub's one room is not, so the next free half hour is taken.
    second = match(_case("r2"), [_mentor("m2")], now=NOW, rooms=rooms)
    assert isinstance(second, Match)
    assert second.sessions[0][0] == at(2, 17)
    held = {start for start, _ in first.sessions}
    assert not held & {start for start, _ in second.sessions}
    assert len(rooms.place([HUB], second.sessions)) == len(second.sessions)


def test_without_rooms_in_view_the_matcher_would_clash() -> None:
    # What the service used to do: the same first time for both, so the second lost its sessions at placing.
    rooms = Rooms()
    first = match(_case("r1"), [_mentor("m1")], now=NOW)
    assert isinstance(first, Match)
    rooms.place([HUB], first.sessions)
    blind = sessions_from(_case("r2"), _mentor("m2"), first.sessions[0][0])
    assert rooms.place([HUB], blind) == []
