"""Scheduling's request-reply endpoints: each takes its typed request (shared/contracts/scheduling_rpc.py) and what
it needs, and returns its typed reply or raises a `ServiceError`. `app.create_app` wires them to the host."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy import Connection

from services.scheduling import mentor_changes, store
from services.scheduling.agency_reasons import CLOSED, Reason, stored_before
from services.scheduling.booking import CaseTask, carry_out, retry_freed
from services.scheduling.calendar_feed import FeedRefused, feed_base_url, issue_token, revoke_tokens
from services.scheduling.choices import AssignmentRefused, assign, recommend, waitlist
from services.scheduling.constraints import default_offices, mentor_problems, without_check
from services.scheduling.lifecycle import HOLDING_A_ROOM, LIVE, LifecycleRefused
from services.scheduling.matching import LONDON, deadline_for
from services.scheduling.mentor_changes import move_cases_away, move_sessions_for_leave, why_cases_move
from services.scheduling.planning import PlannerDied, Rounds
from services.scheduling.reoptimisation import (
    RoundInput,
    book_round,
    read_round,
    round_job,
    warn_if_urgent_level_dropped,
)
from services.scheduling.sessions import change_session, close
from services.scheduling.tables import AlertRow, CaseRow
from shared import alerts
from shared.contracts.codes import Tier, place_key
from shared.contracts.intake_rpc import FIRST_NAME, FirstNameRequest
from shared.contracts.rpc import Empty, ErrorCode, NotFound, Refused, ServiceError
from shared.contracts.safeguarding_rpc import Acknowledged, AcknowledgeRequest, AlertsRequest, SafeguardingAlerts
from shared.contracts.scheduling import IMPORTING, CaseStatus, MentorRecord, SessionStatus, VenueRecord
from shared.contracts.scheduling_rpc import (
    Assigned,
    AssignRequest,
    BookedSession,
    CalendarFeed,
    CalendarRequest,
    CalendarSession,
    CaseSession,
    Closed,
    ClosedBeforeRequest,
    CloseRequest,
    FeedRequest,
    ImportProblem,
    LeaveDays,
    LeaveRecorded,
    LeaveRequest,
    ListedMentor,
    MentorCalendar,
    Mentors,
    MentorsImported,
    MentorsImportRequest,
    MentorSummary,
    Recommendation,
    ReferralIdList,
    ReferralRequest,
    RoundResult,
    SchedulingStatus,
    SessionChanged,
    SessionRequest,
    VenueRooms,
    VenueSession,
    VenuesImported,
    VenuesImportRequest,
    VenuesWeek,
    VenuesWeekRequest,
    Waitlist,
)
from shared.outbox import Outgoing
from shared.service import ServiceHost
from shared.telemetry import referral_trace

R = TypeVar("R", MentorRecord, VenueRecord)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scheduling:
    """What scheduling's endpoints work with."""

    host: ServiceHost
    feed_url: str | None
    """Public base URL of the calendar feeds when proxied; else where the service serves them."""
    rounds: Rounds = field(default_factory=Rounds)


@contextmanager
def _refusals(*refused: type[Exception]) -> Iterator[None]:
    """An unknown id (LookupError) answers not_found; the domain's own refusals answer refused, with their words."""
    try:
        yield
    except LookupError as exc:
        raise NotFound(str(exc).strip("'")) from None
    except refused as exc:
        raise Refused(str(exc)) from None


@contextmanager
def _traced(host: ServiceHost, name: str, row: CaseRow | None, referral_id: str) -> Iterator[None]:
    """A person's decision on one referral as a span in the referral's own trace, current while its events are
    written (so they carry it, and what follows from them continues it)."""
    span = host.tracer.start_span(name, context=referral_trace(row.trace_context if row else None),
                                  kind=trace.SpanKind.SERVER, attributes={"referral.id": referral_id})
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        yield


def _validated(model: type[R], items: list[dict[str, Any]]) -> tuple[list[R], list[ImportProblem]]:
    """Every record valid, or every problem (with its index, id and field): nothing is imported half-way."""
    records: list[R] = []
    problems: list[ImportProblem] = []
    for index, raw in enumerate(items):
        try:
            records.append(model.model_validate(raw, context={IMPORTING: True}))
        except ValidationError as exc:
            problems += [ImportProblem(index=index, id=raw.get("id") if isinstance(raw, dict) else None,
                                       field=_path(err["loc"]), message=_said(err))
                         for err in exc.errors()]
    return records, problems


def _path(loc: tuple[int | str, ...]) -> str:
    """A field as referrals' rejections name one: `availability[1].start`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _said(err: Any) -> str:
    """Pydantic's message in the words a scheduler reads: no 'Value error,' and no 'Input should be'."""
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return "required"
    return message.replace("Input should be", "must be")


async def import_mentors(request: MentorsImportRequest, scheduling: Scheduling) -> MentorsImported:
    records, problems = _validated(MentorRecord, request.mentors)
    if problems:
        return MentorsImported(imported=0, errors=problems)
    host = scheduling.host

    def save_move_and_retry(conn: Connection, now: datetime) -> tuple[MentorsImported, list[Outgoing]]:
        existing = store.save_mentors(conn, records, now=now)
        # those waiting already; a case moved below has just been tried against these mentors (and a second try
        # in the same transaction would repeat its waitlisted event's id)
        waited = store.cases_in(conn, CaseStatus.WAITLISTED)
        out: list[Outgoing] = []
        moved = 0
        today = now.astimezone(LONDON).date()
        for record in records:
            if why := why_cases_move(record, today):
                cases, events = move_cases_away(conn, record.id, why, now=now, subjects=host.subjects,
                                                tracer=host.tracer)
                moved, out = moved + cases, out + events
        waiting = [CaseTask(row, host.tracer.start_span("scheduling retry waitlisted", attributes={
            "referral.id": row.referral_id}, context=referral_trace(row.trace_context))) for row in waited]
        out += carry_out(conn, waiting, now=now, subjects=host.subjects)
        for w in waiting:
            w.span.end()
        created = sum(1 for r in records if r.id not in existing)
        unvetted = sorted(r.id for r in records if without_check(r, today))
        return MentorsImported(imported=len(records), created=created, updated=len(records) - created,
                               cases_moved=moved, waitlisted_retried=len(waiting), without_check=unvetted,
                               errors=[]), out

    return await host.transact(save_move_and_retry)


async def hand_on_barred_cases(scheduling: Scheduling) -> int:
    """The vetting sweep: cases of mentors who may no longer mentor go to others (logged when any move)."""
    host = scheduling.host

    def sweep(conn: Connection, now: datetime) -> tuple[int, list[Outgoing]]:
        return mentor_changes.hand_on_barred_cases(conn, now=now, subjects=host.subjects, tracer=host.tracer)

    moved = await host.transact(sweep)
    if moved:
        log.warning("vetting sweep: %d cases moved from mentors who may no longer mentor", moved)
    return moved


async def import_venues(request: VenuesImportRequest, scheduling: Scheduling) -> VenuesImported:
    records, problems = _validated(VenueRecord, request.venues)
    if problems:
        return VenuesImported(imported=0, errors=problems)

    def save(conn: Connection, now: datetime) -> tuple[VenuesImported, list[Outgoing]]:
        existing = store.save_venues(conn, records, now=now)
        created = sum(1 for r in records if r.id not in existing)
        return VenuesImported(imported=len(records), created=created, updated=len(records) - created, errors=[]), []

    return await scheduling.host.transact(save)


async def record_leave(request: LeaveRequest, scheduling: Scheduling) -> LeaveRecorded:
    host = scheduling.host

    def move(conn: Connection, now: datetime) -> tuple[LeaveRecorded, list[Outgoing]]:
        with _refusals(ValueError):
            done, out = move_sessions_for_leave(conn, request.mentor_id, request.first_day, request.last_day,
                                                now=now, subjects=host.subjects, tracer=host.tracer)
        return LeaveRecorded.model_validate(done), out

    return await host.transact(move)


async def calendar(request: CalendarRequest, scheduling: Scheduling) -> MentorCalendar:
    host = scheduling.host
    start = datetime.combine(request.start or datetime.now(LONDON).date(), datetime.min.time(), tzinfo=LONDON)
    end = start + timedelta(days=request.days)

    def read() -> tuple[MentorRecord | None, list[Any], dict[str, str], list[tuple[date, date]]]:
        with host.engine.connect() as conn:
            record = store.mentor_record(conn, request.mentor_id)
            if record is None:
                return None, [], {}, []
            return (record, store.mentor_calendar(conn, request.mentor_id, start, end),
                    {v.id: v.name for v in store.venue_records(conn)},
                    store.mentor_leave(conn, request.mentor_id, start.date(), (end - timedelta(days=1)).date()))

    record, rows, venue_names, leave = await host.database.run(read)
    if record is None:
        raise NotFound(f"no mentor '{request.mentor_id}' (see `reroute mentors list`)")
    for office in default_offices(tuple(record.boroughs)):  # where no venues are registered
        venue_names.setdefault(office.id, office.name)
    names: dict[str, str] = {}
    if request.names_for:
        for case in sorted({r.referral_id for r in rows}):
            try:
                answer = await host.ask(FIRST_NAME, FirstNameRequest(
                    referral_id=case, asked_by=request.names_for,
                    purpose=f"scheduler's calendar view of mentor {record.id}"))
            except ServiceError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
                continue
            names[case] = answer.first_name
    return MentorCalendar(
        mentor=MentorSummary(id=record.id, name=record.name, kind=record.kind, max_caseload=record.max_caseload),
        starts=start, ends=end, leave=[LeaveDays(first_day=a, last_day=b) for a, b in leave],
        sessions=[CalendarSession(
            session_id=r.session_id, case=r.referral_id, first_name=names.get(r.referral_id),
            start=r.start.astimezone(LONDON), end=r.end.astimezone(LONDON), status=SessionStatus(r.status),
            venue=venue_names.get(r.venue_id or "", r.venue_id),
            route=json.loads(r.route) if r.route else None,
            mentor_route=json.loads(r.mentor_route) if r.mentor_route else None) for r in rows],
    )


async def venues_week(request: VenuesWeekRequest, scheduling: Scheduling) -> VenuesWeek:
    start = datetime.combine(request.start or datetime.now(LONDON).date(), datetime.min.time(), tzinfo=LONDON)
    end = start + timedelta(days=request.days)
    office = default_offices((request.borough,))[0]  # where no venue is registered, sessions are held there

    def read() -> tuple[list[VenueRecord], list[Any]]:
        with scheduling.host.engine.connect() as conn:
            venues = [v for v in store.venue_records(conn) if place_key(v.borough) == place_key(request.borough)]
            ids = [v.id for v in venues] + [office.id]
            return venues, store.venue_sessions(conn, ids, start, end, HOLDING_A_ROOM)

    venues, rows = await scheduling.host.database.run(read)
    held: dict[str, list[VenueSession]] = {}
    for r in rows:
        held.setdefault(r.venue_id, []).append(VenueSession(
            session_id=r.session_id, mentor_id=r.mentor_id, start=r.start.astimezone(LONDON),
            end=r.end.astimezone(LONDON), status=SessionStatus(r.status)))
    listed = [VenueRooms(id=v.id, name=v.name, staffed=v.staffed, rooms=v.rooms, sessions=held.get(v.id, []))
              for v in sorted(venues, key=lambda v: (v.name, v.id))]
    if not venues or office.id in held:
        listed.append(VenueRooms(id=office.id, name=office.name, staffed=True, rooms=office.rooms,
                                 default_office=True, sessions=held.get(office.id, [])))
    return VenuesWeek(borough=request.borough, starts=start, ends=end, venues=listed)


async def close_case(request: CloseRequest, scheduling: Scheduling) -> Closed:
    host = scheduling.host
    reason, by = request.reason.strip(), request.by.strip()
    if not reason or not by:
        raise ServiceError(ErrorCode.INVALID, "say who closes it (by) and why (reason): it is recorded")

    def close_if_open(conn: Connection, now: datetime) -> tuple[Closed, list[Outgoing]]:
        row = store.load_case(conn, request.referral_id)
        if row is None:
            raise NotFound(f"no referral {request.referral_id} in scheduling")
        if row.status == CaseStatus.CLOSED:
            raise Refused(f"{request.referral_id} is already closed")
        with _traced(host, "scheduling close referral", row, request.referral_id):
            out = close(conn, request.referral_id, row.agency_id, now=now, subjects=host.subjects,
                        reason=Reason(f"closed by {by}: {reason}", CLOSED))
        out += retry_freed(conn, [row.mentor_id], now=now, subjects=host.subjects, tracer=host.tracer)
        return Closed(referral_id=request.referral_id, status=CaseStatus.CLOSED), out

    return await host.transact(close_if_open)


async def closed_before(request: ClosedBeforeRequest, scheduling: Scheduling) -> ReferralIdList:
    cutoff = datetime.now(UTC) - timedelta(days=request.days)

    def read() -> list[str]:
        with scheduling.host.engine.connect() as conn:
            return store.closed_before(conn, cutoff)

    return ReferralIdList(referral_ids=await scheduling.host.database.run(read))


async def status(request: ReferralRequest, scheduling: Scheduling) -> SchedulingStatus:
    def read() -> SchedulingStatus | None:
        with scheduling.host.engine.connect() as conn:
            case = store.load_case(conn, request.referral_id)
            if case is None:
                return None
            mentor = store.mentor_record(conn, case.mentor_id) if case.mentor_id is not None else None
            sessions = store.case_sessions(conn, request.referral_id, LIVE)  # confirmed ones too
            every = store.case_sessions(conn, request.referral_id, list(SessionStatus))
        names = mentor.name.split() if mentor else []
        return SchedulingStatus(
            status=CaseStatus(case.status), tier=Tier(case.tier) if case.tier else None, mentor_id=case.mentor_id,
            mentor_first_name=names[0] if names else None, deadline_met=case.deadline_met, reason=case.reason,
            agency_reason=case.agency_reason or stored_before(CaseStatus(case.status)),
            first_session_due=deadline_for(store.case_from(case)) if case.facts and case.tier else None,
            sessions=[BookedSession(session_id=r.session_id, start=r.start.astimezone(LONDON),
                                    end=r.end.astimezone(LONDON)) for r in sessions],
            history=[CaseSession(session_id=r.session_id, mentor_id=r.mentor_id, start=r.start.astimezone(LONDON),
                                 end=r.end.astimezone(LONDON), status=SessionStatus(r.status)) for r in every])

    found = await scheduling.host.database.run(read)
    if found is None:
        raise NotFound(f"no referral {request.referral_id} in scheduling")
    return found


async def change(request: SessionRequest, scheduling: Scheduling) -> SessionChanged:
    host = scheduling.host

    def apply(conn: Connection, now: datetime) -> tuple[SessionChanged, list[Outgoing]]:
        session = store.load_session(conn, request.session_id)
        traced = nullcontext() if session is None else _traced(
            host, f"scheduling session {request.action}", store.load_case(conn, session.referral_id), session.referral_id)
        with _refusals(LifecycleRefused), traced:
            done, out = change_session(conn, request.session_id, request.action, reason=request.reason, now=now,
                                       subjects=host.subjects)
        if session is not None and done["follow_up"] == "close":  # the mentor's place is free
            out += retry_freed(conn, [session.mentor_id], now=now, subjects=host.subjects, tracer=host.tracer)
        return SessionChanged.model_validate(done), out

    return await host.transact(apply)


async def recommend_mentors(request: ReferralRequest, scheduling: Scheduling) -> Recommendation:
    def read() -> Recommendation:
        with scheduling.host.engine.connect() as conn, _refusals():
            return Recommendation.model_validate(recommend(conn, request.referral_id, now=datetime.now(UTC)))

    return await scheduling.host.database.run(read)


async def assign_mentor(request: AssignRequest, scheduling: Scheduling) -> Assigned:
    host = scheduling.host

    def book(conn: Connection, now: datetime) -> tuple[Assigned, list[Outgoing]]:
        row = store.load_case(conn, request.referral_id)
        with _refusals(AssignmentRefused), _traced(host, "scheduling assign mentor", row, request.referral_id):
            done, out = assign(conn, request.referral_id, request.mentor_id, start=request.start,
                               reason=request.reason, by=request.by, now=now, subjects=host.subjects)
        return Assigned.model_validate(done), out

    return await host.transact(book)


async def reoptimise_now(_: Empty, scheduling: Scheduling) -> RoundResult:
    """One batch round on this replica, refused while another runs here: a second round straight after would re-plan
    what the first has just booked."""
    rounds = scheduling.rounds
    if rounds.since is not None:
        raise Refused(f"a batch round is in progress on this replica (started {rounds.since:%H:%M:%S} UTC); ask "
                      "again once it has finished (whoever started it gets its result)")
    rounds.since = datetime.now(UTC)
    try:
        return await _round(scheduling.host, rounds)
    finally:
        rounds.since = None


async def _round(host: ServiceHost, rounds: Rounds) -> RoundResult:
    def read() -> RoundInput:
        with host.engine.connect() as conn:
            return read_round(conn, now=datetime.now(UTC))

    planned = await host.database.run(read)
    # The solve takes seconds of CPU at an organisation's size, and OR-Tools holds the GIL while it solves: it runs
    # in a process of its own, so the event loop (health, requests, the HTTP face) and the database thread (the
    # consumers) keep answering; the plan is checked again under the booking lock when it is booked.
    try:
        result = await rounds.planner.plan(round_job(planned))
    except PlannerDied as exc:
        log.error("batch round over %d referrals failed, nothing booked: %s", len(planned.cases), exc)
        raise ServiceError(ErrorCode.UNAVAILABLE, f"the batch round failed and booked nothing: {exc}; "
                                                  "ask again (the next round starts a new one)") from None
    warn_if_urgent_level_dropped(planned, result)

    def book(conn: Connection, now: datetime) -> tuple[RoundResult, list[Outgoing]]:
        done, out = book_round(conn, planned, result, now=now, subjects=host.subjects, tracer=host.tracer)
        return RoundResult.model_validate(done), out

    return await host.transact(book)


async def waiting(_: Empty, scheduling: Scheduling) -> Waitlist:
    def read() -> Waitlist:
        with scheduling.host.engine.connect() as conn:
            return Waitlist.model_validate({"waiting": waitlist(conn, now=datetime.now(UTC))})

    return await scheduling.host.database.run(read)


async def calendar_feed(request: FeedRequest, scheduling: Scheduling) -> CalendarFeed:
    if scheduling.host.http_url is None and not request.revoke:
        raise Refused("calendar feeds are off here (REROUTE_CALENDAR_PORT is 0): no link can be issued")

    def issue_or_revoke(conn: Connection, now: datetime) -> tuple[CalendarFeed, list[Outgoing]]:
        if request.revoke:
            return CalendarFeed(revoked=revoke_tokens(conn, request.mentor_id, now=now)), []
        try:
            served = feed_base_url(scheduling.feed_url, scheduling.host.http_url)
            token = issue_token(conn, request.mentor_id, now=now, show_venues=request.show_venues)
        except FeedRefused as exc:
            raise Refused(str(exc)) from None
        base = f"{served}/v1/calendars/{token}"
        return CalendarFeed(ics_url=f"{base}.ics", json_url=f"{base}.json"), []

    return await scheduling.host.transact(issue_or_revoke)


async def list_mentors(_: Empty, scheduling: Scheduling) -> Mentors:
    today = datetime.now(LONDON).date()

    def read() -> list[MentorRecord]:
        with scheduling.host.engine.connect() as conn:
            return store.mentor_records(conn)

    records = await scheduling.host.database.run(read)
    return Mentors(mentors=[ListedMentor(**dict(record), problems=mentor_problems(record, today))
                            for record in records])


async def alerts_list(request: AlertsRequest, scheduling: Scheduling) -> SafeguardingAlerts:
    def read() -> SafeguardingAlerts:
        with scheduling.host.engine.connect() as conn:
            return SafeguardingAlerts(service="scheduling", alerts=alerts.listing(
                conn, AlertRow, service="scheduling", now=datetime.now(UTC),
                acknowledged_days=request.acknowledged_days, limit=request.limit))

    return await scheduling.host.database.run(read)


async def alerts_ack(request: AcknowledgeRequest, scheduling: Scheduling) -> Acknowledged:
    def record(conn: Connection, now: datetime) -> tuple[Acknowledged, list[Outgoing]]:
        return Acknowledged(alert=alerts.acknowledge(conn, AlertRow, request.alert_id, service="scheduling",
                                                     by=request.by, note=request.note, now=now)), []

    acknowledged = await scheduling.host.transact(record)
    log.info("scheduling: safeguarding alert %s acknowledged by %s", request.alert_id,
             acknowledged.alert.acknowledged_by)
    return acknowledged
