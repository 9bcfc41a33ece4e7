"""A mentor's iCalendar feed: stable UIDs, SEQUENCE, cancellations, Europe/London times, nothing personal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import pytest
from icalendar import Calendar, Event

from services.scheduling.ical import FeedSession, build_feed, feed_sessions_window
from services.scheduling.slots import LONDON
from shared.contracts.intake import YoungPerson

NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def session(
    session_id: str = "ses_0a1b2c3d4e5f6a7b",
    *,
    start: datetime = datetime(2026, 3, 24, 16, 0, tzinfo=LONDON),
    status: str = "booked",
    sequence: int = 0,
    updated_at: datetime = NOW - timedelta(days=1),
    case_ref: str = "ref_abc123",
    venue: str | None = "Peckham office",
) -> FeedSession:
    return FeedSession(
        session_id=session_id,
        case_ref=case_ref,
        start=start,
        end=start + HOUR,
        status=status,
        sequence=sequence,
        updated_at=updated_at,
        venue=venue,
    )


def feed(sessions: Sequence[FeedSession], *, now: datetime = NOW) -> bytes:
    return build_feed(mentor_id="mentor-17", mentor_name="Alex Mentor", sessions=sessions, now=now)


def parse(data: bytes) -> Calendar:
    return Calendar.from_ical(data)


def events(data: bytes) -> dict[str, Event]:
    return {str(e["UID"]): e for e in parse(data).events}


def only_event(data: bytes) -> Event:
    [event] = parse(data).events
    return event


def when(value: date | datetime) -> datetime:
    assert isinstance(value, datetime), value
    return value


def instant(value: date | datetime, zone: tzinfo) -> datetime:
    """The instant a wall-clock time names under `zone`'s rules."""
    return when(value).replace(tzinfo=zone).astimezone(UTC)


def unfolded(data: bytes) -> str:
    # iCalendar folds lines at 75 octets; a search for a word must not miss it across a fold.
    return data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"").decode()


def test_the_feed_is_a_published_calendar_named_for_the_mentor() -> None:
    calendar = parse(feed([session()]))

    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == "-//reroute//Mentoring sessions//EN"
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert "Alex Mentor" in str(calendar["X-WR-CALNAME"])
    assert calendar.refresh_interval == timedelta(minutes=15)
    assert calendar["REFRESH-INTERVAL"].params["VALUE"] == "DURATION"
    assert calendar["X-PUBLISHED-TTL"].to_ical() == b"PT15M"


def test_each_session_has_a_uid_from_its_id_that_survives_rebuilds() -> None:
    sessions = [session("ses_a"), session("ses_b", start=datetime(2026, 3, 31, 16, 0, tzinfo=LONDON))]

    first = feed(sessions)
    later = feed([*sessions, session("ses_c", start=datetime(2026, 4, 7, 16, 0, tzinfo=LONDON))], now=NOW + HOUR)

    assert set(events(first)) == {"ses_a@reroute", "ses_b@reroute"}
    assert set(events(later)) == {"ses_a@reroute", "ses_b@reroute", "ses_c@reroute"}
    assert feed(sessions) == first  # same sessions, same bytes: the feed can carry an ETag


def test_a_reschedule_keeps_the_uid_and_carries_the_new_time_and_sequence() -> None:
    before = session(sequence=2)
    moved = replace(
        before,
        start=before.start + timedelta(days=1),
        end=before.end + timedelta(days=1),
        sequence=3,
        updated_at=NOW - HOUR,
    )

    old, new = only_event(feed([before])), only_event(feed([moved]))

    assert str(new["UID"]) == str(old["UID"]) == "ses_0a1b2c3d4e5f6a7b@reroute"
    assert (old["SEQUENCE"], new["SEQUENCE"]) == (2, 3)
    assert new.start == datetime(2026, 3, 25, 16, 0, tzinfo=LONDON)
    assert new.end == datetime(2026, 3, 25, 17, 0, tzinfo=LONDON)
    assert new.stamp == new.last_modified == NOW - HOUR  # the change, not the build


def test_a_cancellation_is_published_as_cancelled_with_a_bumped_sequence() -> None:
    booked = session(sequence=1)
    cancelled = replace(booked, status="cancelled", sequence=2, updated_at=NOW)

    event = only_event(feed([cancelled]))

    assert str(event["UID"]) == booked.uid
    assert str(event["STATUS"]) == "CANCELLED"
    assert event["SEQUENCE"] == 2
    assert str(event["TRANSP"]) == "TRANSPARENT"  # frees the slot in free/busy
    assert "ref_abc123" in str(event["SUMMARY"]) and str(event["SUMMARY"]).startswith("Cancelled")


@pytest.mark.parametrize(
    ("status", "expected"),
    [("booked", "CONFIRMED"), ("confirmed", "CONFIRMED"), ("attended", "CONFIRMED"), ("missed", "CONFIRMED")],
)
def test_sessions_that_are_not_cancelled_are_confirmed_and_busy(status: str, expected: str) -> None:
    event = only_event(feed([session(status=status)]))

    assert str(event["STATUS"]) == expected
    assert str(event["TRANSP"]) == "OPAQUE"


@pytest.mark.parametrize(
    ("cancelled_days_ago", "kept"),
    [(0, True), (13, True), (14, True), (timedelta(days=14, seconds=1), False), (15, False), (90, False)],
)
def test_a_cancelled_session_stays_in_the_feed_for_fourteen_days(
    cancelled_days_ago: int | timedelta, kept: bool
) -> None:
    ago = cancelled_days_ago if isinstance(cancelled_days_ago, timedelta) else timedelta(days=cancelled_days_ago)
    cancelled = session(status="cancelled", sequence=1, updated_at=NOW - ago)

    assert feed_sessions_window([cancelled], now=NOW) == ([cancelled] if kept else [])
    assert set(events(feed([cancelled]))) == ({cancelled.uid} if kept else set())


def test_the_window_keeps_old_sessions_that_were_not_cancelled() -> None:
    long_ago = NOW - timedelta(days=60)
    sessions = [
        session(f"ses_{status}", start=long_ago, status=status, updated_at=long_ago)
        for status in ("booked", "confirmed", "attended", "missed")
    ]

    assert feed_sessions_window(sessions, now=NOW) == sessions


def test_the_window_counts_fourteen_real_days_across_the_clock_change() -> None:
    # Cancelled 13 days 23.5 hours before `now` in real time, but 14 days 0.5 hours by the London wall clock
    # (the clocks went forward on 29 March): kept.
    now = datetime(2026, 4, 5, 12, 30, tzinfo=LONDON)
    cancelled = session(status="cancelled", updated_at=datetime(2026, 3, 22, 12, 0, tzinfo=LONDON))

    assert now - cancelled.updated_at > timedelta(days=14)  # naive wall-clock arithmetic would drop it
    assert feed_sessions_window([cancelled], now=now) == [cancelled]


def test_times_are_europe_london_with_a_vtimezone_that_has_gmt_and_bst() -> None:
    data = feed([session()])
    calendar = parse(data)

    event = only_event(data)
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event["DTEND"].params["TZID"] == "Europe/London"
    assert "DTSTART;TZID=Europe/London:20260324T160000" in unfolded(data)
    [vtimezone] = calendar.timezones
    assert vtimezone.tz_name == "Europe/London"
    assert {str(c["TZNAME"]) for c in vtimezone.standard} == {"GMT"}
    assert {str(c["TZNAME"]) for c in vtimezone.daylight} == {"BST"}
    assert {c.TZOFFSETTO for c in vtimezone.daylight} == {HOUR}
    assert {c.TZOFFSETTO for c in vtimezone.standard} == {timedelta(0)}


def test_an_empty_feed_still_parses_and_carries_the_time_zone() -> None:
    calendar = parse(feed([]))

    assert calendar.events == []
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/London"]


@pytest.mark.parametrize(
    "starts",
    [
        # Saturday before the clocks go forward, the Sunday they do, and the Saturday after (late March 2026).
        [
            datetime(2026, 3, 28, 16, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 9, 0, tzinfo=UTC),
            datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
        ],
        # Across the clocks going back, and spanning a new year, given in London time.
        [
            datetime(2026, 10, 24, 16, 0, tzinfo=LONDON),
            datetime(2026, 10, 31, 16, 0, tzinfo=LONDON),
            datetime(2027, 3, 27, 16, 0, tzinfo=LONDON),
            datetime(2027, 4, 3, 16, 0, tzinfo=LONDON),
        ],
    ],
)
def test_sessions_either_side_of_a_clock_change_keep_their_london_wall_time(starts: list[datetime]) -> None:
    sessions = [session(f"ses_{i}", start=start) for i, start in enumerate(starts)]

    data = feed(sessions)
    calendar = parse(data)

    # As written: the London wall clock.
    for s in sessions:
        local = s.start.astimezone(LONDON)
        assert f"DTSTART;TZID=Europe/London:{local:%Y%m%dT%H%M%S}" in unfolded(data)
    # As a client that only trusts the VTIMEZONE it was sent would read it back: the same instants.
    [vtimezone] = calendar.timezones
    own_rules = vtimezone.to_tz(lookup_tzid=False)
    by_uid = events(data)
    for s in sessions:
        event = by_uid[s.uid]
        assert instant(event.start, own_rules) == s.start.astimezone(UTC)
        assert instant(event.end, own_rules) == s.end.astimezone(UTC)


def test_the_late_march_pair_reads_four_pm_both_times() -> None:
    before = session("ses_before", start=datetime(2026, 3, 28, 16, 0, tzinfo=UTC))  # GMT: 16:00 local
    after = session("ses_after", start=datetime(2026, 4, 4, 15, 0, tzinfo=UTC))  # BST: 16:00 local

    by_uid = events(feed([before, after]))

    assert by_uid[before.uid].start == datetime(2026, 3, 28, 16, 0, tzinfo=LONDON)
    assert by_uid[after.uid].start == datetime(2026, 4, 4, 16, 0, tzinfo=LONDON)
    assert when(by_uid[after.uid].start).utcoffset() == HOUR


def test_events_come_in_start_order() -> None:
    late = session("ses_late", start=datetime(2026, 3, 26, 16, 0, tzinfo=LONDON))
    early = session("ses_early", start=datetime(2026, 3, 24, 16, 0, tzinfo=LONDON))

    assert [str(e["UID"]) for e in parse(feed([late, early])).events] == [early.uid, late.uid]


@pytest.fixture
def person() -> YoungPerson:
    """The young person behind case ref_abc123, as intake knows them (fictional)."""
    return YoungPerson(
        given_name="Tyrese",
        family_name="Okonkwo-Example",
        date_of_birth=date(2010, 4, 12),
        gender="male",
        borough="Southwark",
        languages=["en"],
    )


def test_the_feed_names_the_case_never_the_young_person(person: YoungPerson) -> None:
    sessions = [session(), session("ses_gone", status="cancelled", sequence=1, updated_at=NOW)]

    data = feed(sessions)
    text = unfolded(data).lower()

    for secret in (
        person.given_name,
        person.family_name,
        person.date_of_birth.isoformat(),
        f"{person.date_of_birth:%Y%m%d}",
        f"{person.date_of_birth:%d/%m/%Y}",
    ):
        assert secret.lower() not in text
    for event in parse(data).events:
        assert "ref_abc123" in str(event["SUMMARY"])
        assert "ref_abc123" in str(event["DESCRIPTION"])
        assert "reroute" in str(event["DESCRIPTION"])
        assert str(event["CLASS"]) == "PRIVATE"


def test_the_venue_is_the_location_when_known() -> None:
    assert str(only_event(feed([session(venue="Peckham office")]))["LOCATION"]) == "Peckham office"
    assert "LOCATION" not in only_event(feed([session(venue=None)]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"case_ref": "Tyrese Okonkwo"}, "case_ref"),
        ({"case_ref": ""}, "case_ref"),
        ({"session_id": "ses 1"}, "session_id"),
        ({"status": "postponed"}, "status"),
        ({"sequence": -1}, "sequence"),
        ({"start": datetime(2026, 3, 24, 16, 0)}, "time zone"),
        ({"updated_at": datetime(2026, 3, 24, 16, 0)}, "time zone"),
        ({"end": datetime(2026, 3, 24, 16, 0, tzinfo=LONDON)}, "ends"),
    ],
)
def test_a_session_that_would_make_a_bad_feed_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(session(), **change)


def test_a_session_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        feed([session("ses_x"), session("ses_x", sequence=1)])


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        feed([session()], now=datetime(2026, 3, 20, 9, 0))
