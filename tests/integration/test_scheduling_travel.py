"""A scheduler's choice of mentor and start on a real database: refused, naming the travel time, when the mentor
has a session at a venue too far away just before; booked at a start that leaves the time, or at the same venue.
The sessions' venues are read back from the stored rows. Runs on SQLite, and on PostgreSQL when DATABASE_URL is
set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.scheduling import store
from services.scheduling.choices import AssignmentRefused, assign
from services.scheduling.constraints import SafeVenue
from services.scheduling.slots import LONDON, to_utc
from services.scheduling.travel import place_of
from shared.contracts.common import SessionSlot, WeeklyWindow
from shared.contracts.intake import PersonFacts, Preferences, ReferralRecorded
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionStatus, VenueRecord
from shared.subjects import Subjects
from tests.support.databases import service_database

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # a Monday
CROYDON = VenueRecord(id="croydon-hub", name="Croydon hub", borough="Croydon", rooms=2)
ENFIELD = VenueRecord(id="enfield-hub", name="Enfield hub", borough="Enfield", rooms=2)


def at(hh: int, mm: int = 0) -> datetime:
    return NOW.replace(hour=hh, minute=mm)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """m-jason covers Enfield and Croydon, free on Mondays 16:00-21:00, with a session at the Croydon hub until 17:00."""
    with service_database("scheduling", tmp_path) as made:
        with made.begin() as conn:
            store.save_venues(conn, [CROYDON, ENFIELD], now=NOW)
            store.save_mentors(conn, [MentorRecord.model_validate({
                "id": "m-jason", "name": "Jason", "kind": "staff", "boroughs": ["Enfield", "Croydon"],
                "languages": ["en"], "gender": "male", "max_caseload": 4,
                "availability": [{"day": "mon", "start": "16:00", "end": "21:00"}],
                "vetting": {"enhanced_check_expires": "2030-12-31"}})], now=NOW)
            slot = SessionSlot(session_id="ses_croydon", start=at(16), end=at(17))
            store.add_sessions(conn, [store.session_row("r-croydon", "m-jason", slot, NOW,
                                                        SafeVenue(CROYDON, ("Croydon",)))])
        yield made


def _waiting(engine: Engine, referral_id: str) -> None:
    """A low-tier young person in Enfield (Croydon unsafe for them), free on Mondays 17:00-20:30."""
    facts = ReferralRecorded(
        event_id=f"recorded-{referral_id}", occurred_at=NOW, referral_id=referral_id, agency_id="yot",
        agency_referral_id=f"A-{referral_id}", person_id=f"psn_{referral_id}",
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Enfield", languages=["en"]),
        indicators=[], protective_factors=[], unsafe_areas=["Croydon"], preferences=Preferences(),
        availability=[WeeklyWindow(day="mon", start="17:00", end="20:30")])
    with engine.begin() as conn:
        store.add_cases(conn, [{"referral_id": referral_id, "agency_id": "yot", "person_id": facts.person_id,
                                "facts": facts.model_dump_json(), "tier": "low", "status": CaseStatus.WAITLISTED,
                                "updated_at": NOW}])


def _assign(engine: Engine, referral_id: str, start: datetime) -> dict[str, object]:
    with engine.begin() as conn:
        done, _ = assign(conn, referral_id, "m-jason", start=start, reason="knows the family", by="sam", now=NOW,
                         subjects=Subjects())
        return done


def test_the_stored_sessions_venue_is_where_the_mentor_is(engine: Engine) -> None:
    with engine.connect() as conn:
        mentor = store.load_mentor_states(conn, now=NOW)["m-jason"]
    assert dict(mentor.places) == {to_utc(at(16)): (to_utc(at(16)), to_utc(at(17)), place_of(CROYDON))}


def test_a_schedulers_back_to_back_start_at_a_far_venue_is_refused_naming_the_travel_time(engine: Engine) -> None:
    _waiting(engine, "r1")
    with pytest.raises(AssignmentRefused) as refused:
        _assign(engine, "r1", at(17))
    assert str(refused.value) == ("m-jason cannot meet at Mon 02 Mar 17:00: they have a session in Croydon until "
                                  "17:00 and need 90 minutes to reach Enfield (the travel time between venues)")
    assert _assign(engine, "r1", at(18, 30))["first"] == at(18, 30).isoformat()
    with engine.connect() as conn:
        booked = store.case_sessions(conn, "r1", [SessionStatus.BOOKED])
    assert [(s.start.astimezone(LONDON), s.venue_id) for s in booked][:1] == [(at(18, 30), "enfield-hub")]


def test_the_same_venue_back_to_back_is_booked(engine: Engine) -> None:
    """After the 18:30 session at the Enfield hub, another young person there at 19:30 needs no gap."""
    _waiting(engine, "r1")
    _waiting(engine, "r2")
    _assign(engine, "r1", at(18, 30))
    assert _assign(engine, "r2", at(19, 30))["first"] == at(19, 30).isoformat()


def test_a_session_marked_attended_still_needs_the_travel_time_after_it(engine: Engine) -> None:
    """At 16:00 the Croydon session has started and is marked attended: the mentor is still in Croydon until 17:00,
    so an 18:00 start in Enfield (90 minutes away) stays refused, as it was while the session was booked."""
    started = at(16)
    _waiting(engine, "r1")
    for status in (None, SessionStatus.ATTENDED, SessionStatus.MISSED):
        if status is not None:
            with engine.begin() as conn:
                store.set_session_status(conn, ["ses_croydon"], status, now=started)
        with engine.begin() as conn, pytest.raises(AssignmentRefused, match="need 90 minutes to reach Enfield"):
            assign(conn, "r1", "m-jason", start=at(18), reason="r", by="sam", now=started, subjects=Subjects())
    with engine.begin() as conn:
        done, _ = assign(conn, "r1", "m-jason", start=at(18, 30), reason="r", by="sam", now=started,
                         subjects=Subjects())
    assert done["first"] == at(18, 30).isoformat()
