"""A mentor's sessions as an iCalendar feed (RFC 5545) that calendar apps subscribe to.

The feed syncs to personal phones and third-party clouds, so a session carries only its case reference, a venue
name and its times: a young person's name, offence, risk or address never reaches this module, and the
reference is checked to be an id, not free text. Pure: no I/O, no clock (`now` is passed in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from icalendar import CLASS, STATUS, TRANSP, Calendar, Event, Timezone

from services.scheduling.slots import LONDON, to_utc
from shared.contracts.scheduling import SessionStatus

TZID: Final = "Europe/London"
PRODID: Final = "-//reroute//Mentoring sessions//EN"
UID_DOMAIN: Final = "reroute"
REFRESH: Final = timedelta(minutes=15)
CANCELLED_GRACE: Final = timedelta(days=14)

# A booked session already holds the mentor's time (scheduling offers it to no one else), so it is CONFIRMED
# too: TENTATIVE shows as "tentative" in free/busy and invites double-booking. Whether the young person has
# confirmed is a detail behind login. Attended and missed sessions took place as planned, calendar-wise.
EVENT_STATUS: Final[dict[str, STATUS]] = {
    SessionStatus.BOOKED: STATUS.CONFIRMED,
    SessionStatus.CONFIRMED: STATUS.CONFIRMED,
    SessionStatus.ATTENDED: STATUS.CONFIRMED,
    SessionStatus.MISSED: STATUS.CONFIRMED,
    SessionStatus.CANCELLED: STATUS.CANCELLED,
}

# Ids and references are tokens (e.g. ses_1a2b…, ref_3c4d…): no spaces, so a name can't be passed off as one.
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class FeedSession:
    """One session as its mentor's calendar shows it."""

    session_id: str  # stable for the session's life: the UID
    case_ref: str  # a case reference only, e.g. the referral id; never a name
    start: datetime  # aware
    end: datetime  # aware
    status: str  # booked | confirmed | cancelled | attended | missed
    sequence: int  # bumped by the caller on every change, including cancellation
    updated_at: datetime  # aware
    venue: str | None = None  # a venue name (an office), never the young person's address

    def __post_init__(self) -> None:
        for name in ("session_id", "case_ref"):
            if not _ID.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not an id (letters, digits, . _ : -; ≤64)")
        if to_utc(self.end) <= to_utc(self.start):  # to_utc also refuses naive datetimes
            raise ValueError(f"session {self.session_id} ends at or before its start")
        to_utc(self.updated_at)
        if self.status not in EVENT_STATUS:
            raise ValueError(f"session {self.session_id} has unknown status {self.status!r}")
        if self.sequence < 0:
            raise ValueError(f"session {self.session_id} has negative sequence {self.sequence}")

    @property
    def uid(self) -> str:
        return f"{self.session_id}@{UID_DOMAIN}"


def feed_sessions_window(sessions: Iterable[FeedSession], *, now: datetime) -> list[FeedSession]:
    """Drop sessions cancelled more than 14 days before `now`; keep everything else, in order."""
    # Clients that strike cancelled events through (Apple, Thunderbird) need to see the cancellation once;
    # after the grace period it is noise. Subtract in UTC: same-tzinfo subtraction is by wall clock.
    cutoff = to_utc(now) - CANCELLED_GRACE
    return [s for s in sessions if not (s.status == SessionStatus.CANCELLED and to_utc(s.updated_at) < cutoff)]


def build_feed(*, mentor_id: str, mentor_name: str, sessions: Sequence[FeedSession], now: datetime) -> bytes:
    """The mentor's feed as iCalendar bytes (serve as text/calendar); events sorted by start, then id."""
    if not _ID.fullmatch(mentor_id):
        raise ValueError(f"mentor_id {mentor_id!r} is not an id")
    if not mentor_name.strip():
        raise ValueError("mentor_name is empty")
    kept = sorted(feed_sessions_window(sessions, now=now), key=lambda s: (to_utc(s.start), s.session_id))
    seen: set[str] = set()
    for s in kept:
        if s.session_id in seen:
            raise ValueError(f"session {s.session_id} appears twice")
        seen.add(s.session_id)

    calendar = Calendar.new(
        prodid=PRODID,
        method="PUBLISH",  # a subscription feed; REQUEST/CANCEL are for e-mailed invitations only
        name=f"Mentoring sessions — {mentor_name}",  # written as NAME and X-WR-CALNAME
        refresh_interval=REFRESH,
        uid=f"feed-{mentor_id}@{UID_DOMAIN}",  # Calendar.new would otherwise make a random one per build
    )
    calendar["REFRESH-INTERVAL"].params["VALUE"] = "DURATION"  # RFC 7986 requires it; icalendar leaves it out
    # Outlook reads the older X-PUBLISHED-TTL; icalendar writes unknown X- values as TEXT, so pass the text.
    calendar.add("X-PUBLISHED-TTL", f"PT{REFRESH // timedelta(minutes=1)}M")
    calendar.add("X-WR-TIMEZONE", TZID)
    calendar.add_component(_london(kept, now=now))
    for s in kept:
        calendar.add_component(_event(s))
    feed: bytes = calendar.to_ical()
    return feed


def _london(sessions: Sequence[FeedSession], *, now: datetime) -> Timezone:
    """A VTIMEZONE for Europe/London covering whole years around the sessions, so it has both GMT and BST."""
    # Covering only the years in use keeps the feed small; icalendar's default span stops at 2038.
    years = [t.astimezone(LONDON).year for s in sessions for t in (s.start, s.end)] or [now.astimezone(LONDON).year]
    return Timezone.from_tzid(TZID, first_date=date(min(years), 1, 1), last_date=date(max(years) + 1, 1, 1))


def _event(s: FeedSession) -> Event:
    cancelled = s.status == SessionStatus.CANCELLED
    return Event.new(
        uid=s.uid,
        sequence=s.sequence,
        # DTSTAMP is the last change, not `now`: the bytes then change only when a session does (so the HTTP
        # layer can send an ETag), and at equal SEQUENCE the later revision still has the later DTSTAMP.
        stamp=to_utc(s.updated_at),
        last_modified=to_utc(s.updated_at),
        start=s.start.astimezone(LONDON),  # written as DTSTART;TZID=Europe/London:<local time>
        end=s.end.astimezone(LONDON),
        status=EVENT_STATUS[s.status],
        # Google and Outlook drop cancelled events and some clients ignore STATUS: the title says it as well.
        summary=f"{'Cancelled: ' if cancelled else ''}Mentoring session — case {s.case_ref}",
        description=f"Case reference: {s.case_ref}. The details are in reroute.",
        location=s.venue,
        classification=CLASS.PRIVATE,  # shown as busy only when the mentor shares the calendar
        transparency=TRANSP.TRANSPARENT if cancelled else TRANSP.OPAQUE,
    )
