"""The scheduling service: matches a suitable mentor and books sessions at the pace the risk tier sets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from faststream import FastStream
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Connection, insert, select, update

from services.scheduling.calendar_feed import FeedRefused, calendar_api, issue_token, revoke_tokens
from services.scheduling.choices import AssignmentRefused, assign, recommend, waitlist
from services.scheduling.handlers import Work, handle_accepted, handle_assessed, plan
from services.scheduling.lifecycle import Action, LifecycleRefused
from services.scheduling.matching import LONDON
from services.scheduling.sessions import change_session
from services.scheduling.tables import TABLES, CaseRow, MentorRow, SessionRow
from shared.contracts.scheduling import MentorRecord
from shared.outbox import Outgoing, add_to_outbox
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class ImportRequest(BaseModel):
    mentors: list[dict[str, Any]]


class CalendarRequest(BaseModel):
    mentor_id: str
    start: date | None = None
    days: int = Field(default=28, ge=1, le=366)


class ReferralRequest(BaseModel):
    referral_id: str


class AssignRequest(BaseModel):
    referral_id: str
    mentor_id: str
    start: datetime | None = None
    reason: str = ""
    by: str = ""


class SessionRequest(BaseModel):
    session_id: str
    action: Action
    reason: str = ""


class SchedulingSettings(ServiceSettings):
    calendar_port: int = Field(default=8082, ge=0, le=65535, description="Calendar feeds' HTTP port; 0: none.")
    calendar_url: str | None = Field(default=None, description="Public base URL of the feeds, when proxied.")


class FeedRequest(BaseModel):
    mentor_id: str
    revoke: bool = False


def create_app(settings: SchedulingSettings | None = None) -> FastStream:
    settings = settings or SchedulingSettings()
    host = ServiceHost("scheduling", settings, TABLES)
    host.serve_http(calendar_api(host.engine), port=settings.calendar_port)
    base_url = settings.calendar_url or f"http://{settings.http_host}:{settings.calendar_port}"
    s = host.subjects
    host.consume(stream=s.referrals_stream, subjects=[s.accepted()], what="accepted",
                 handler=partial(handle_accepted, subjects=s))
    host.consume(stream=s.risk_stream, subjects=[s.assessed()], what="assessed",
                 handler=partial(handle_assessed, subjects=s))

    @host.reply("mentors.import")
    async def import_mentors(request: ImportRequest) -> dict[str, Any]:
        """Create or update mentors (re-importing never duplicates), then retry waitlisted referrals."""
        errors: list[dict[str, Any]] = []
        records: list[MentorRecord] = []
        for index, raw in enumerate(request.mentors):
            try:
                records.append(MentorRecord.model_validate(raw))
            except ValidationError as exc:
                for err in exc.errors():
                    field = ".".join(str(p) for p in err["loc"])
                    errors.append({"index": index, "id": raw.get("id"), "field": field, "message": err["msg"]})
        if errors:
            return {"imported": 0, "errors": errors}
        now = datetime.now(UTC)
        with host.engine.begin() as conn:
            existing = set(conn.execute(select(MentorRow.mentor_id)).scalars())
            for record in records:
                values = {"record": record.model_dump_json(), "updated_at": now}
                if record.id in existing:
                    conn.execute(update(MentorRow).where(MentorRow.mentor_id == record.id).values(**values))  # type: ignore[arg-type]
                else:
                    conn.execute(insert(MentorRow).values(mentor_id=record.id, **values))
            waiting = [
                Work(CaseRow.model_validate(r._mapping), host.tracer.start_span("scheduling retry waitlisted"))
                for r in conn.execute(select(CaseRow).where(CaseRow.status == "waitlisted"))
            ]
            for w in waiting:
                w.span.set_attribute("referral.id", w.row.referral_id)
            out = plan(conn, waiting, now=now, subjects=s)
            add_to_outbox(conn, out, now=now)
        await host.relay.publish(out)
        for w in waiting:
            w.span.end()
        created = sum(1 for r in records if r.id not in existing)
        return {"imported": len(records), "created": created, "updated": len(records) - created,
                "waitlisted_retried": len(waiting), "errors": []}

    @host.reply("calendar")
    async def calendar(request: CalendarRequest) -> dict[str, Any]:
        """A mentor's booked sessions (case references only: no names or risk details)."""
        start_day = request.start or datetime.now(LONDON).date()
        start = datetime.combine(start_day, datetime.min.time(), tzinfo=LONDON)
        end = start + timedelta(days=request.days)
        with host.engine.connect() as conn:
            mentor = conn.execute(select(MentorRow.record).where(MentorRow.mentor_id == request.mentor_id)).first()
            if mentor is None:
                return {"found": False}
            rows = conn.execute(
                select(SessionRow)
                .where(SessionRow.mentor_id == request.mentor_id, SessionRow.start >= start, SessionRow.start < end)
                .order_by(SessionRow.start)  # type: ignore[arg-type]
            ).all()
        record = MentorRecord.model_validate_json(mentor[0])
        return {
            "found": True,
            "mentor": {"id": record.id, "name": record.name, "kind": record.kind, "max_caseload": record.max_caseload},
            "from": start.isoformat(),
            "to": end.isoformat(),
            "sessions": [
                {
                    "session_id": r.session_id,
                    "case": r.referral_id,
                    "start": r.start.astimezone(LONDON).isoformat(),
                    "end": r.end.astimezone(LONDON).isoformat(),
                    "status": r.status,
                }
                for r in rows
            ],
        }

    @host.reply("status")
    async def status(request: ReferralRequest) -> dict[str, Any]:
        """Where a referral stands in scheduling: mentor and sessions, or why it waits."""
        with host.engine.connect() as conn:
            case = conn.execute(select(CaseRow).where(CaseRow.referral_id == request.referral_id)).first()
            if case is None:
                return {"found": False}
            sessions = conn.execute(
                select(SessionRow.session_id, SessionRow.start, SessionRow.end)
                .where(SessionRow.referral_id == request.referral_id, SessionRow.status == "booked")
                .order_by(SessionRow.start)  # type: ignore[arg-type]
            ).all()
        return {
            "found": True,
            "status": case.status,
            "tier": case.tier,
            "mentor_id": case.mentor_id,
            "deadline_met": case.deadline_met,
            "reason": case.reason,
            "sessions": [
                {"session_id": sid, "start": st.astimezone(LONDON).isoformat(), "end": en.astimezone(LONDON).isoformat()}
                for sid, st, en in sessions
            ],
        }

    @host.reply("session")
    async def session(request: SessionRequest) -> dict[str, Any]:
        """Confirm or cancel a session, or record it attended or missed."""
        def decide(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            try:
                return change_session(conn, request.session_id, request.action, reason=request.reason, now=now,
                                      subjects=s)
            except (LifecycleRefused, LookupError) as exc:
                return {"error": str(exc).strip("'")}, []

        return await host.transact(decide)

    @host.reply("recommend")
    async def recommend_options(request: ReferralRequest) -> dict[str, Any]:
        """The top three mentor and first-slot options with scores, and why each other mentor is out."""
        with host.engine.connect() as conn:
            try:
                return recommend(conn, request.referral_id, now=datetime.now(UTC))
            except LookupError as exc:
                return {"error": str(exc).strip("'")}

    @host.reply("assign")
    async def assign_mentor(request: AssignRequest) -> dict[str, Any]:
        """Book the scheduler's chosen mentor (and slot), refused with the constraint it would break."""
        def decide(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            try:
                return assign(conn, request.referral_id, request.mentor_id, start=request.start,
                              reason=request.reason, by=request.by, now=now, subjects=s)
            except (AssignmentRefused, LookupError) as exc:
                return {"error": str(exc).strip("'")}, []

        return await host.transact(decide)

    @host.reply("waitlist")
    async def waiting() -> dict[str, Any]:
        """Who waits, how long, why, and what capacity would place them."""
        with host.engine.connect() as conn:
            return {"waiting": waitlist(conn, now=datetime.now(UTC))}

    @host.reply("calendar.feed")
    async def feed(request: FeedRequest) -> dict[str, Any]:
        """Issue a new feed link for a mentor (the old one stops working), or revoke it."""
        def decide(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            if request.revoke:
                return {"revoked": revoke_tokens(conn, request.mentor_id, now=now)}, []
            try:
                token = issue_token(conn, request.mentor_id, now=now)
            except FeedRefused as exc:
                return {"error": str(exc)}, []
            return {"ics": f"{base_url}/v1/calendars/{token}.ics", "json": f"{base_url}/v1/calendars/{token}.json"}, []

        return await host.transact(decide)

    @host.reply("mentors.list")
    async def list_mentors() -> dict[str, Any]:
        with host.engine.connect() as conn:
            rows = conn.execute(select(MentorRow.record).order_by(MentorRow.mentor_id)).scalars().all()
        return {"mentors": [MentorRecord.model_validate_json(r).model_dump() for r in rows]}

    host.finish_routes()
    return host.app
