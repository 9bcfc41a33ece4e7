"""The scheduling service: matches a suitable mentor and books sessions at the pace the risk tier sets."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from faststream import FastStream
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Connection

from services.scheduling import privacy, repository
from services.scheduling.booking import CaseTask, carry_out
from services.scheduling.calendar_feed import FeedRefused, calendar_api, issue_token, revoke_tokens
from services.scheduling.choices import AssignmentRefused, assign, recommend, waitlist
from services.scheduling.constraints import default_offices, mentor_problems
from services.scheduling.handlers import handle_accepted, handle_assessed
from services.scheduling.lifecycle import Action, LifecycleRefused
from services.scheduling.matching import LONDON
from services.scheduling.mentor_changes import move_cases_away, move_sessions_for_leave, why_cases_move
from services.scheduling.reoptimisation import reoptimise
from services.scheduling.sessions import change_session, close
from services.scheduling.tables import TABLES
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionStatus, VenueRecord
from shared.outbox import Outgoing
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class ImportRequest(BaseModel):
    mentors: list[dict[str, Any]]


class VenueImportRequest(BaseModel):
    venues: list[dict[str, Any]]


class LeaveRequest(BaseModel):
    mentor_id: str
    first_day: date
    last_day: date


class CalendarRequest(BaseModel):
    mentor_id: str
    names_for: str | None = Field(default=None, description="Who is asking, to show first names (logged by intake).")
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


class CloseRequest(BaseModel):
    referral_id: str
    reason: str = ""
    by: str = ""


class RetentionRequest(BaseModel):
    days: float = Field(ge=0)


class SessionRequest(BaseModel):
    session_id: str
    action: Action
    reason: str = ""


log = logging.getLogger(__name__)


class SchedulingSettings(ServiceSettings):
    calendar_port: int = Field(default=8082, ge=0, le=65535, description="Calendar feeds' HTTP port; 0: none.")
    calendar_url: str | None = Field(default=None, description="Public base URL of the feeds, when proxied.")
    plan_every_minutes: float = Field(default=0, ge=0,
                                      description="Run the re-optimisation round this often; 0: on request.")


class FeedRequest(BaseModel):
    mentor_id: str
    revoke: bool = False


R = TypeVar("R", MentorRecord, VenueRecord)


def _validated(model: type[R], items: list[dict[str, Any]]) -> tuple[list[R], list[dict[str, Any]]]:
    """Every record valid, or every problem (with its index, id and field): nothing is imported half-way."""
    records: list[R] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            records.append(model.model_validate(raw))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                errors.append({"index": index, "id": raw.get("id") if isinstance(raw, dict) else None,
                               "field": field, "message": err["msg"]})
    return records, errors


def create_app(settings: SchedulingSettings | None = None) -> FastStream:
    settings = settings or SchedulingSettings()
    host = ServiceHost("scheduling", settings, TABLES)
    host.serve_http(calendar_api(host.engine), port=settings.calendar_port, port_setting="REROUTE_CALENDAR_PORT")
    base_url = settings.calendar_url or f"http://{settings.http_host}:{settings.calendar_port}"
    s = host.subjects
    host.consume(stream=s.referrals_stream, subjects=[s.accepted()], what="accepted",
                 handler=partial(handle_accepted, subjects=s))
    host.consume(stream=s.risk_stream, subjects=[s.assessed()], what="assessed",
                 handler=partial(handle_assessed, subjects=s))

    @host.reply("mentors.import")
    async def import_mentors(request: ImportRequest) -> dict[str, Any]:
        """Create or update mentors (re-importing never duplicates); move the cases of a mentor whose check has
        expired or whose licence is suspended; then retry waitlisted referrals."""
        records, errors = _validated(MentorRecord, request.mentors)
        if errors:
            return {"imported": 0, "errors": errors}

        def save_move_and_retry(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            existing = repository.save_mentors(conn, records, now=now)
            out: list[Outgoing] = []
            moved = 0
            today = now.astimezone(LONDON).date()
            for record in records:
                why = why_cases_move(record, today)
                if why:
                    cases, events = move_cases_away(conn, record.id, why, now=now, subjects=s, tracer=host.tracer)
                    moved, out = moved + cases, out + events
            waiting = [CaseTask(row, host.tracer.start_span("scheduling retry waitlisted"))
                       for row in repository.cases_in(conn, CaseStatus.WAITLISTED)]
            for w in waiting:
                w.span.set_attribute("referral.id", w.row.referral_id)
            out += carry_out(conn, waiting, now=now, subjects=s)
            for w in waiting:
                w.span.end()
            created = sum(1 for r in records if r.id not in existing)
            return {"imported": len(records), "created": created, "updated": len(records) - created,
                    "cases_moved": moved, "waitlisted_retried": len(waiting), "errors": []}, out

        return await host.transact(save_move_and_retry)

    @host.reply("venues.import")
    async def import_venues(request: VenueImportRequest) -> dict[str, Any]:
        """Create or update venues (where sessions are held)."""
        records, errors = _validated(VenueRecord, request.venues)
        if errors:
            return {"imported": 0, "errors": errors}

        def save(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            existing = repository.save_venues(conn, records, now=now)
            created = sum(1 for r in records if r.id not in existing)
            return {"imported": len(records), "created": created, "updated": len(records) - created,
                    "errors": []}, []

        return await host.transact(save)

    @host.reply("mentors.leave")
    async def leave(request: LeaveRequest) -> dict[str, Any]:
        """Record a mentor's leave (Europe/London dates, inclusive) and move the sessions it touches."""
        def record_leave(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            try:
                return move_sessions_for_leave(conn, request.mentor_id, request.first_day, request.last_day, now=now,
                                               subjects=s, tracer=host.tracer)
            except (LookupError, ValueError) as exc:
                return {"error": str(exc).strip("'")}, []

        return await host.transact(record_leave)

    @host.reply("calendar")
    async def calendar(request: CalendarRequest) -> dict[str, Any]:
        """A mentor's booked sessions (case references only: no names or risk details)."""
        start_day = request.start or datetime.now(LONDON).date()
        start = datetime.combine(start_day, datetime.min.time(), tzinfo=LONDON)
        end = start + timedelta(days=request.days)
        with host.engine.connect() as conn:
            record = repository.mentor_record(conn, request.mentor_id)
            if record is None:
                return {"found": False}
            rows = repository.mentor_calendar(conn, request.mentor_id, start, end)
            venue_names = {v.id: v.name for v in repository.venue_records(conn)}
        for office in default_offices(tuple(record.boroughs)):  # where no venues are registered
            venue_names.setdefault(office.id, office.name)
        names: dict[str, str] = {}
        if request.names_for:
            for case in sorted({r.referral_id for r in rows}):
                answer = await host.request("intake", "first_name", {
                    "referral_id": case, "asked_by": request.names_for,
                    "purpose": f"scheduler's calendar view of mentor {record.id}"})
                if answer.get("found"):
                    names[case] = answer["first_name"]
        return {
            "found": True,
            "mentor": {"id": record.id, "name": record.name, "kind": record.kind, "max_caseload": record.max_caseload},
            "from": start.isoformat(),
            "to": end.isoformat(),
            "sessions": [
                {
                    "session_id": r.session_id,
                    "case": r.referral_id,
                    **({"first_name": names[r.referral_id]} if r.referral_id in names else {}),
                    "start": r.start.astimezone(LONDON).isoformat(),
                    "end": r.end.astimezone(LONDON).isoformat(),
                    "status": r.status,
                    "venue": venue_names.get(r.venue_id or "", r.venue_id),
                    "route": json.loads(r.route) if r.route else None,
                    "mentor_route": json.loads(r.mentor_route) if r.mentor_route else None,
                }
                for r in rows
            ],
        }

    @host.reply("close")
    async def close_case(request: CloseRequest) -> dict[str, Any]:
        """Close a referral: its future sessions are cancelled and the mentor's place is freed."""
        def close_if_open(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            if not request.reason.strip() or not request.by.strip():
                return {"error": "say who closes it (by) and why (reason): it is recorded"}, []
            row = repository.load_case(conn, request.referral_id)
            if row is None:
                return {"error": f"no referral {request.referral_id} in scheduling"}, []
            if row.status == CaseStatus.CLOSED:
                return {"error": f"{request.referral_id} is already closed"}, []
            out = close(conn, request.referral_id, row.agency_id, now=now, subjects=s,
                        reason=f"closed by {request.by.strip()}: {request.reason.strip()}")
            return {"referral_id": request.referral_id, "status": CaseStatus.CLOSED}, out

        return await host.transact(close_if_open)

    @host.reply("closed.before")
    async def closed_before(request: RetentionRequest) -> dict[str, Any]:
        """Referrals closed more than `days` ago: due for purging under the retention policy."""
        cutoff = datetime.now(UTC) - timedelta(days=request.days)
        with host.engine.connect() as conn:
            return {"referral_ids": repository.closed_before(conn, cutoff)}

    @host.reply("status")
    async def status(request: ReferralRequest) -> dict[str, Any]:
        """Where a referral stands in scheduling: mentor and sessions, or why it waits."""
        with host.engine.connect() as conn:
            case = repository.load_case(conn, request.referral_id)
            if case is None:
                return {"found": False}
            mentor = repository.mentor_record(conn, case.mentor_id) if case.mentor_id is not None else None
            sessions = repository.case_sessions(conn, request.referral_id, [SessionStatus.BOOKED])
        names = mentor.name.split() if mentor else []
        mentor_first_name = names[0] if names else None
        return {
            "found": True,
            "status": case.status,
            "tier": case.tier,
            "mentor_id": case.mentor_id,
            "mentor_first_name": mentor_first_name,
            "deadline_met": case.deadline_met,
            "reason": case.reason,
            "sessions": [
                {"session_id": r.session_id, "start": r.start.astimezone(LONDON).isoformat(),
                 "end": r.end.astimezone(LONDON).isoformat()}
                for r in sessions
            ],
        }

    @host.reply("session")
    async def session(request: SessionRequest) -> dict[str, Any]:
        """Confirm or cancel a session, or record it attended or missed."""
        def apply_action(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            try:
                return change_session(conn, request.session_id, request.action, reason=request.reason, now=now,
                                      subjects=s)
            except (LifecycleRefused, LookupError) as exc:
                return {"error": str(exc).strip("'")}, []

        return await host.transact(apply_action)

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
        def book_choice(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            try:
                return assign(conn, request.referral_id, request.mentor_id, start=request.start,
                              reason=request.reason, by=request.by, now=now, subjects=s)
            except (AssignmentRefused, LookupError) as exc:
                return {"error": str(exc).strip("'")}, []

        return await host.transact(book_choice)

    async def reoptimisation_round() -> dict[str, Any]:
        def run(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            return reoptimise(conn, now=now, subjects=s, tracer=host.tracer)

        return await host.transact(run)

    @host.reply("plan")
    async def reoptimise_now() -> dict[str, Any]:
        """Run the re-optimisation round now: waitlisted referrals and unconfirmed assignments placed together."""
        return await reoptimisation_round()

    async def reoptimise_periodically() -> None:
        log.info("batch round: %s", await reoptimisation_round())

    host.every(settings.plan_every_minutes * 60, reoptimise_periodically, name="batch-round")

    @host.reply("waitlist")
    async def waiting() -> dict[str, Any]:
        """Who waits, how long, why, and what capacity would place them."""
        with host.engine.connect() as conn:
            return {"waiting": waitlist(conn, now=datetime.now(UTC))}

    @host.reply("calendar.feed")
    async def feed(request: FeedRequest) -> dict[str, Any]:
        """Issue a new feed link for a mentor (the old one stops working), or revoke it."""
        def issue_or_revoke(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            if request.revoke:
                return {"revoked": revoke_tokens(conn, request.mentor_id, now=now)}, []
            try:
                token = issue_token(conn, request.mentor_id, now=now)
            except FeedRefused as exc:
                return {"error": str(exc)}, []
            return {"ics": f"{base_url}/v1/calendars/{token}.ics", "json": f"{base_url}/v1/calendars/{token}.json"}, []

        return await host.transact(issue_or_revoke)

    @host.reply("mentors.list")
    async def list_mentors() -> dict[str, Any]:
        """Every mentor, each with the problems a scheduler should fix (vetting, licence)."""
        today = datetime.now(LONDON).date()
        with host.engine.connect() as conn:
            records = repository.mentor_records(conn)
        return {"mentors": [{**record.model_dump(mode="json"), "problems": mentor_problems(record, today)}
                            for record in records]}

    host.serve_personal_data(privacy.export, privacy.erase)

    host.finish_routes()
    return host.app
