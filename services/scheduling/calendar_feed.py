"""Mentor calendars over HTTP: an iCalendar feed and JSON behind an unguessable, revocable token.

The feed carries case references only: no name, offence, risk or address of a young person. Mentors on
release on temporary licence get no feed (their sessions are arranged with the prison, not on a phone).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Response
from sqlalchemy import Connection, Engine, insert, select, update
from sqlmodel import col

from services.scheduling.ical import FeedSession, build_feed, feed_sessions_window
from services.scheduling.matching import LONDON
from services.scheduling.store import mentor_feed, mentor_record
from services.scheduling.tables import CalendarToken, MentorRow
from shared.contracts.scheduling import MentorRecord, SessionStatus

PAST_DAYS = 30


class FeedRefused(ValueError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(conn: Connection, mentor_id: str, *, now: datetime) -> str:
    """A new token for the mentor's feed; any earlier one stops working."""
    record = mentor_record(conn, mentor_id)
    if record is None:
        raise FeedRefused(f"no mentor {mentor_id}")
    if record.kind == "rotl":
        raise FeedRefused("mentors on temporary licence get no calendar feed; share their sessions with the prison")
    revoke_tokens(conn, mentor_id, now=now)
    token = secrets.token_urlsafe(32)
    conn.execute(insert(CalendarToken).values(token_hash=_hash(token), mentor_id=mentor_id, issued_at=now))
    return token


def revoke_tokens(conn: Connection, mentor_id: str, *, now: datetime) -> int:
    result = conn.execute(
        update(CalendarToken)
        .where(col(CalendarToken.mentor_id) == mentor_id, col(CalendarToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)


def _mentor_for(conn: Connection, token: str) -> MentorRecord:
    row = conn.execute(
        select(col(MentorRow.record))
        .join(CalendarToken, col(CalendarToken.mentor_id) == col(MentorRow.mentor_id))
        .where(col(CalendarToken.token_hash) == _hash(token), col(CalendarToken.revoked_at).is_(None))
    ).first()
    mentor = None if row is None else MentorRecord.model_validate_json(row[0])
    if mentor is None or mentor.kind == "rotl":
        raise HTTPException(status_code=404, detail="no such calendar (the link may have been revoked)")
    return mentor


def _sessions(conn: Connection, mentor_id: str, now: datetime) -> list[FeedSession]:
    sessions = [
        FeedSession(session_id=r.session_id, case_ref=r.referral_id, start=r.start, end=r.end,
                    status=SessionStatus.CANCELLED if r.status == SessionStatus.SUSPENDED else r.status,
                    sequence=r.sequence, updated_at=r.updated_at)
        for r in mentor_feed(conn, mentor_id, ending_after=now - timedelta(days=PAST_DAYS))
    ]
    return feed_sessions_window(sessions, now=now)


def calendar_api(engine: Engine) -> FastAPI:
    """The HTTP app: GET /v1/calendars/{token}.ics and /v1/calendars/{token}.json."""
    api = FastAPI(title="reroute mentor calendars", version="1.0.0",
                  description="A mentor's sessions (case references only) behind a revocable token.")

    @api.get("/v1/calendars/{token}.ics", response_class=Response)
    def ics(token: str) -> Response:
        now = datetime.now(UTC)
        with engine.connect() as conn:
            mentor = _mentor_for(conn, token)
            body = build_feed(mentor_id=mentor.id, mentor_name=mentor.name, sessions=_sessions(conn, mentor.id, now),
                              now=now)
        return Response(body, media_type="text/calendar; charset=utf-8")

    @api.get("/v1/calendars/{token}.json")
    def json_calendar(token: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        with engine.connect() as conn:
            mentor = _mentor_for(conn, token)
            sessions = _sessions(conn, mentor.id, now)
        return {"mentor": {"id": mentor.id, "name": mentor.name}, "sessions": [
            {"session_id": s.session_id, "case": s.case_ref, "start": s.start.astimezone(LONDON).isoformat(),
             "end": s.end.astimezone(LONDON).isoformat(), "status": s.status, "sequence": s.sequence}
            for s in sessions]}

    return api
