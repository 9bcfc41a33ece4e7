"""Mentor calendars over HTTP: an iCalendar feed and JSON behind an unguessable, revocable token.

The feed carries case references only: no name, offence, risk or address of a young person. Where the mentor
opted in when the link was issued, a session at the organisation's staffed premises shows that venue's name as
LOCATION; no other place ever does (docs/security.md). Mentors on release on temporary licence get no feed (their
sessions are arranged with the prison, not on a phone).

Calendar apps poll: GET and HEAD are answered, with an ETag and Last-Modified that a conditional request
(If-None-Match, If-Modified-Since) turns into 304 Not Modified.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request, Response
from sqlalchemy import Connection, Engine, insert, select, update
from sqlmodel import col

from services.scheduling.constraints import default_offices
from services.scheduling.ical import FeedSession, build_feed, feed_sessions_window
from services.scheduling.matching import LONDON
from services.scheduling.store import mentor_feed, mentor_record, venue_records
from services.scheduling.tables import CalendarToken, MentorRow
from shared.contracts.scheduling import MentorRecord, SessionStatus, VenueRecord
from shared.db import reading

PAST_DAYS = 30


class FeedRefused(ValueError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_base_url(configured: str | None, served: str | None) -> str:
    """Where issued links point: the configured public base URL (REROUTE_CALENDAR_URL), or, for local use only,
    the face's own address when it listens on this machine's loopback interface."""
    if configured:
        return configured.rstrip("/")
    if served is not None and urlsplit(served).hostname in LOOPBACK:
        return served
    raise FeedRefused("set REROUTE_CALENDAR_URL to the public https:// address calendar apps reach the feeds at "
                      "(e.g. https://calendars.example.org): this face is not on a loopback address, so its own "
                      "address would not work from a phone or a calendar cloud")


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def check_feed_url(url: str) -> str:
    """REROUTE_CALENDAR_URL: https, or http on this machine only (a feed over plain HTTP leaks its token)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"REROUTE_CALENDAR_URL must be a base URL such as https://calendars.example.org, not {url!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ValueError("REROUTE_CALENDAR_URL must be https:// for any host but this machine: calendar apps send "
                         f"the feed's secret token in the URL ({url!r})")
    return url.rstrip("/")


def issue_token(conn: Connection, mentor_id: str, *, now: datetime, show_venues: bool = False) -> str:
    """A new token for the mentor's feed; any earlier one stops working. `show_venues`: the mentor opted in to
    seeing the venue of sessions at staffed premises."""
    record = mentor_record(conn, mentor_id)
    if record is None:
        raise FeedRefused(f"no mentor {mentor_id}")
    if record.kind == "rotl":
        raise FeedRefused("mentors on temporary licence get no calendar feed; share their sessions with the prison")
    revoke_tokens(conn, mentor_id, now=now)
    token = secrets.token_urlsafe(32)
    conn.execute(insert(CalendarToken).values(token_hash=_hash(token), mentor_id=mentor_id, issued_at=now,
                                              show_venues=show_venues))
    return token


def revoke_tokens(conn: Connection, mentor_id: str, *, now: datetime) -> int:
    result = conn.execute(
        update(CalendarToken)
        .where(col(CalendarToken.mentor_id) == mentor_id, col(CalendarToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)


@dataclass(frozen=True)
class Feed:
    mentor: MentorRecord
    sessions: list[FeedSession]
    issued_at: datetime  # when the link was issued: the feed's Last-Modified when it has no session yet


def _feed(conn: Connection, token: str, now: datetime) -> Feed:
    row = conn.execute(
        select(col(MentorRow.record), col(CalendarToken.show_venues), col(CalendarToken.issued_at))
        .join(CalendarToken, col(CalendarToken.mentor_id) == col(MentorRow.mentor_id))
        .where(col(CalendarToken.token_hash) == _hash(token), col(CalendarToken.revoked_at).is_(None))
    ).first()
    mentor = None if row is None else MentorRecord.model_validate_json(row[0])
    if row is None or mentor is None or mentor.kind == "rotl":
        raise HTTPException(status_code=404, detail="no such calendar (the link may have been revoked)")
    venues = _shown_venues(conn, mentor) if row[1] else {}
    sessions = [
        FeedSession(session_id=r.session_id, case_ref=r.referral_id, start=r.start, end=r.end,
                    status=SessionStatus.CANCELLED if r.status == SessionStatus.SUSPENDED else r.status,
                    sequence=r.sequence, updated_at=r.updated_at,
                    venue=venues[r.venue_id].name if r.venue_id in venues else None)
        for r in mentor_feed(conn, mentor.id, ending_after=now - timedelta(days=PAST_DAYS))
    ]
    return Feed(mentor, feed_sessions_window(sessions, now=now), _aware(row[2]))


def _shown_venues(conn: Connection, mentor: MentorRecord) -> dict[str, VenueRecord]:
    """The venues a feed that opted in may name: the organisation's staffed premises (its registered staffed
    venues, or with none registered its office in each of the mentor's boroughs). A venue that is not staffed,
    such as a community space, is never named."""
    venues = [*default_offices(tuple(mentor.boroughs)), *venue_records(conn)]
    return {v.id: v for v in venues if v.staffed}


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _last_modified(feed: Feed) -> datetime:
    return max([feed.issued_at, *(_aware(s.updated_at) for s in feed.sessions)]).replace(microsecond=0)


def _conditional(request: Request, body: bytes, media_type: str, last_modified: datetime) -> Response:
    """`body` with its validators, or 304 when the client's copy is current (If-None-Match wins over
    If-Modified-Since, RFC 9110 13.2.2)."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Last-Modified": format_datetime(last_modified.astimezone(UTC), usegmt=True),
               "Cache-Control": "private, no-cache"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
    elif (since := _http_date(request.headers.get("if-modified-since"))) is not None and last_modified <= since:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # an unreadable date is ignored, as RFC 9110 says
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def calendar_api(engine: Engine) -> FastAPI:
    """The HTTP app: GET and HEAD /v1/calendars/{token}.ics and /v1/calendars/{token}.json."""
    api = FastAPI(title="reroute mentor calendars", version="1.0.0",
                  description="A mentor's sessions (case references only) behind a revocable token.")

    @api.api_route("/v1/calendars/{token}.ics", methods=["GET", "HEAD"], response_class=Response)
    def ics(token: str, request: Request) -> Response:
        now = datetime.now(UTC)
        with reading(engine) as conn:
            feed = _feed(conn, token, now)
        body = build_feed(mentor_id=feed.mentor.id, mentor_name=feed.mentor.name, sessions=feed.sessions, now=now)
        return _conditional(request, body, "text/calendar; charset=utf-8", _last_modified(feed))

    @api.api_route("/v1/calendars/{token}.json", methods=["GET", "HEAD"], response_class=Response)
    def json_calendar(token: str, request: Request) -> Response:
        now = datetime.now(UTC)
        with reading(engine) as conn:
            feed = _feed(conn, token, now)
        body = json.dumps({"mentor": {"id": feed.mentor.id, "name": feed.mentor.name}, "sessions": [
            {"session_id": s.session_id, "case": s.case_ref, "start": s.start.astimezone(LONDON).isoformat(),
             "end": s.end.astimezone(LONDON).isoformat(), "status": s.status, "sequence": s.sequence,
             **({"venue": s.venue} if s.venue else {})}
            for s in feed.sessions]}).encode()
        return _conditional(request, body, "application/json", _last_modified(feed))

    return api
