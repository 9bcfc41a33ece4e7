"""Week calendars, for schedulers: a mentor's week (sessions, venues, a rotl mentor's licence window and `return_by`
on each day) and a borough's (every mentor covering it, and how many of each venue's rooms its sessions take at the
busiest time of each day), navigable by week and read as tables; a session confirmed,
cancelled, or recorded attended or missed; a mentor's leave recorded, with what moved; a mentor's calendar feed issued
or revoked. The same contracts as `reroute calendar`, `session`, `mentors leave` and `calendar --feed`. Case
references only: no child's name."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, get_args

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from apps.console.areas import area
from apps.console.auth import Me, MySession, local_path
from apps.console.client import Person, ServicesClient
from apps.console.rendering import LONDON, render
from apps.console.state import state_of
from shared.contracts import scheduling_rpc as sched
from shared.contracts.codes import canonical_borough
from shared.contracts.rpc import Empty, ErrorCode, Role, ServiceError
from shared.contracts.scheduling import SessionStatus

AREA = area("calendar", "Calendar", {Role.SCHEDULER})
MENTOR_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SESSION_ID = re.compile(r"[A-Za-z0-9:._-]{1,100}")
ACTIONS: tuple[str, ...] = get_args(sched.SessionAction)
DONE = {"confirm": "confirmed", "cancel": "cancelled", "attended": "recorded attended", "missed": "recorded missed"}
LEAVE_DAYS_MAX = 366


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _week(week: str | None) -> tuple[date, str | None]:
    """The Monday of the week asked for (`YYYY-MM-DD`, any day of it), or of this week, with what was wrong."""
    today = datetime.now(LONDON).date()
    if not week:
        return monday_of(today), None
    try:
        return monday_of(date.fromisoformat(week)), None
    except ValueError:
        return monday_of(today), f"“{week[:40]}” is not a date like 2026-12-07: this week is shown instead."


@dataclass(frozen=True)
class Day:
    """One day of a week, with its sessions and, for a rotl mentor, what their licence allows that day."""

    day: date
    sessions: list[tuple[sched.ListedMentor | None, sched.CalendarSession]]
    licence: str | None
    leave: bool = False


def _licence_on(mentor: sched.ListedMentor, day: date) -> str | None:
    """A rotl mentor's licence on `day` in words: when they may start, when they must be back, or why not at all."""
    licence = mentor.licence
    if licence is None:
        return None
    if licence.suspended:
        return "licence suspended: no sessions"
    if (licence.valid_from and day < licence.valid_from) or (licence.valid_to and day > licence.valid_to):
        return "outside the licence's dates: no sessions"
    if licence.days is not None and day.strftime("%a").lower() not in licence.days:
        return "not a licence day: no sessions"
    start = f"from {licence.window_start}, " if licence.window_start else ""
    travel = f" ({licence.travel_minutes} min travel back)" if licence.travel_minutes else ""
    return f"licence: {start}back by {licence.return_by}{travel}"


def _days(monday: date, found: Sequence[tuple[sched.ListedMentor | None, sched.CalendarSession]],
          rotl: sched.ListedMentor | None, leave: Sequence[sched.LeaveDays] = ()) -> list[Day]:
    by_day: dict[date, list[tuple[sched.ListedMentor | None, sched.CalendarSession]]] = {}
    for mentor, s in sorted(found, key=lambda f: f[1].start):
        by_day.setdefault(s.start.astimezone(LONDON).date(), []).append((mentor, s))
    return [Day(d, by_day.get(d, []), _licence_on(rotl, d) if rotl else None,
                any(away.first_day <= d <= away.last_day for away in leave))
            for d in (monday + timedelta(days=i) for i in range(7))]


@dataclass(frozen=True)
class RoomsOnDay:
    """A venue's day: how many of its rooms are taken at the busiest time, and from when."""

    taken: int
    at: datetime | None
    rooms: int

    @property
    def full(self) -> bool:
        return self.taken >= self.rooms


@dataclass(frozen=True)
class VenueDays:
    venue: sched.VenueRooms
    days: list[RoomsOnDay]


def busiest(sessions: Sequence[tuple[datetime, datetime]]) -> tuple[int, datetime | None]:
    """The most sessions held at once, and the start of the first time it happens (the most that overlap always
    includes a session just starting)."""
    most, at = 0, None
    for start, _ in sorted(sessions):
        held = sum(1 for s, e in sessions if s <= start < e)
        if held > most:
            most, at = held, start
    return most, at


def _rooms(monday: date, venues: Sequence[sched.VenueRooms]) -> list[VenueDays]:
    """Each venue's week, day by day (Europe/London): the rooms taken at the busiest time, of how many."""
    found = []
    for venue in venues:
        by_day: dict[date, list[tuple[datetime, datetime]]] = {}
        for s in venue.sessions:
            by_day.setdefault(s.start.astimezone(LONDON).date(), []).append((s.start, s.end))
        days = [RoomsOnDay(*busiest(by_day.get(d, [])), rooms=venue.rooms)
                for d in (monday + timedelta(days=i) for i in range(7))]
        found.append(VenueDays(venue, days))
    return found


async def _mentors(client: ServicesClient, person: Person) -> list[sched.ListedMentor]:
    return (await client.ask(person, sched.MENTORS, Empty())).mentors


@AREA.router.get("")
async def choose(request: Request, me: Me, session: MySession) -> Response:
    """Whose week: a mentor's or a borough's."""
    try:
        mentors, problem = await _mentors(state_of(request).client, me), None
    except ServiceError as exc:
        mentors, problem = [], f"The mentors cannot be listed just now: {exc.message}."
    boroughs = sorted({b for m in mentors for b in m.boroughs})
    return render(request, "calendar/choose.html", session=session, area=AREA, mentors=mentors, boroughs=boroughs,
                  problem=problem)


def _navigation(monday: date) -> dict[str, Any]:
    return {"monday": monday, "sunday": monday + timedelta(days=6), "previous": monday - timedelta(weeks=1),
            "next": monday + timedelta(weeks=1)}


@AREA.router.get("/mentors/{mentor_id}")
async def mentor_week(request: Request, me: Me, session: MySession, mentor_id: str, week: str | None = None) -> Response:
    """One mentor's week."""
    monday, problem = _week(week)
    if not MENTOR_ID.fullmatch(mentor_id):
        return render(request, "calendar/missing.html", session=session, area=AREA, status_code=404,
                      said="That is not a mentor id: letters, digits, dots, dashes and underscores, at most 64.")
    client = state_of(request).client
    try:
        cal, mentors = await asyncio.gather(
            client.ask(me, sched.CALENDAR, sched.CalendarRequest(mentor_id=mentor_id, start=monday, days=7)),
            _mentors(client, me))
    except ServiceError as exc:
        return render(request, "calendar/missing.html", session=session, area=AREA,
                      status_code=404 if exc.code == ErrorCode.NOT_FOUND else 503,
                      said=f"No calendar for {mentor_id}: {exc.message}.")
    record = next((m for m in mentors if m.id == mentor_id), None)
    rotl = record if record is not None and record.kind == "rotl" else None
    return render(request, "calendar/mentor.html", session=session, area=AREA, cal=cal, record=record,
                  days=_days(monday, [(record, s) for s in cal.sessions], rotl, cal.leave), problem=problem,
                  actions=ACTIONS, **_navigation(monday))


@AREA.router.get("/boroughs/{borough}")
async def borough_week(request: Request, me: Me, session: MySession, borough: str, week: str | None = None) -> Response:
    """The week of every mentor who covers a borough, merged."""
    monday, problem = _week(week)
    name = canonical_borough(borough[:60])
    if name is None:
        return render(request, "calendar/missing.html", session=session, area=AREA, status_code=404,
                      said=f"“{borough[:60]}” is not a London borough.")
    client = state_of(request).client

    async def rooms() -> list[VenueDays] | str:  # the sessions are shown even when the rooms cannot be
        try:
            week = await client.ask(me, sched.VENUES_WEEK, sched.VenuesWeekRequest(borough=name, start=monday))
        except ServiceError as exc:
            return exc.message
        return _rooms(monday, week.venues)

    asked_rooms = asyncio.ensure_future(rooms())
    try:
        covering = [m for m in await _mentors(client, me) if name in m.boroughs]
        calendars = await asyncio.gather(*(client.ask(me, sched.CALENDAR, sched.CalendarRequest(
            mentor_id=m.id, start=monday, days=7)) for m in covering))
    except ServiceError as exc:
        asked_rooms.cancel()
        return render(request, "calendar/missing.html", session=session, area=AREA, status_code=503,
                      said=f"No calendar for {name}: {exc.message}.")
    found = [(m, s) for m, cal in zip(covering, calendars, strict=True) for s in cal.sessions]
    venues = await asked_rooms
    return render(request, "calendar/borough.html", session=session, area=AREA, borough=name, mentors=covering,
                  days=_days(monday, found, None), problem=problem, actions=ACTIONS,
                  venues=venues if isinstance(venues, list) else None,
                  rooms_problem=venues if isinstance(venues, str) else None, **_navigation(monday))


@AREA.router.post("/sessions/{session_id}")
async def change_session(request: Request, me: Me, session: MySession, session_id: str,
                         action: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                         back: Annotated[str, Form()] = AREA.href) -> Response:
    """Confirm or cancel a session, or record it attended or missed; back to the page the form was on."""
    if not SESSION_ID.fullmatch(session_id):
        said = "Nothing changed: that is not a session id."
    elif action not in ACTIONS:
        said = f"Nothing changed: “{action[:20]}” is not one of {', '.join(ACTIONS)}."
    elif len(reason) > 2000:
        said = "Nothing changed: the reason may have at most 2000 characters."
    else:
        asked = sched.SessionRequest.model_validate({"session_id": session_id, "action": action,
                                                     "reason": reason.strip()})
        try:
            done = await state_of(request).client.ask(me, sched.SESSION, asked)
        except ServiceError as exc:
            said = f"Session {session_id} not {DONE[action]}: {exc.message}."
        else:
            said = f"Session {session_id} (referral {done.referral_id}) is now {done.status}."
            if done.follow_up == "escalate":
                said += (" Three missed sessions in a row with wellbeing high or above: a disengagement escalation "
                         "was raised to the safeguarding lead.")
            elif done.follow_up == "close":
                said += " Three missed sessions in a row: the case is closed and its sessions cancelled."
    session.notices.append(said)
    return RedirectResponse(local_path(back), status_code=303)


@dataclass(frozen=True)
class Touched:
    """A session the leave fell on, and where its case stands now."""

    before: sched.CalendarSession
    now: sched.SchedulingStatus | None


@AREA.router.post("/mentors/{mentor_id}/leave")
async def record_leave(request: Request, me: Me, session: MySession, mentor_id: str,
                       first_day: Annotated[str, Form()] = "", last_day: Annotated[str, Form()] = "") -> Response:
    """Record a mentor's leave and show what moved: each session it fell on, and where that case stands now."""
    back = f"{AREA.href}/mentors/{mentor_id}"
    if not MENTOR_ID.fullmatch(mentor_id):
        session.notices.append("No leave recorded: that is not a mentor id.")
        return RedirectResponse(AREA.href, status_code=303)
    try:
        first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    except ValueError:
        session.notices.append("No leave recorded: give the first and the last day of leave as dates.")
        return RedirectResponse(back, status_code=303)
    if last < first or (last - first).days >= LEAVE_DAYS_MAX:
        session.notices.append(f"No leave recorded: the last day must be on or after the first, and within "
                               f"{LEAVE_DAYS_MAX} days of it.")
        return RedirectResponse(back, status_code=303)
    client = state_of(request).client
    try:
        during = await client.ask(me, sched.CALENDAR, sched.CalendarRequest(
            mentor_id=mentor_id, start=first, days=(last - first).days + 1))
        recorded = await client.ask(me, sched.LEAVE, sched.LeaveRequest(mentor_id=mentor_id, first_day=first,
                                                                        last_day=last))
    except ServiceError as exc:
        session.notices.append(f"No leave recorded for {mentor_id}: {exc.message}.")
        return RedirectResponse(back, status_code=303)
    holding = [s for s in during.sessions if s.status in (SessionStatus.BOOKED, SessionStatus.CONFIRMED)]
    now = await asyncio.gather(*(client.ask(me, sched.STATUS, sched.ReferralRequest(referral_id=s.case))
                                 for s in holding), return_exceptions=True)
    touched = [Touched(s, n if isinstance(n, sched.SchedulingStatus) else None)
               for s, n in zip(holding, now, strict=True)]
    return render(request, "calendar/leave.html", session=session, area=AREA, mentor=during.mentor,
                  first=first, last=last, recorded=recorded, touched=touched, week=monday_of(first))


@AREA.router.post("/mentors/{mentor_id}/feed")
async def feed(request: Request, me: Me, session: MySession, mentor_id: str, do: Annotated[str, Form()] = "",
               show_venues: Annotated[str, Form()] = "") -> Response:
    """Issue a new calendar-feed link for the mentor (the old one stops working), or revoke it."""
    back = f"{AREA.href}/mentors/{mentor_id}" if MENTOR_ID.fullmatch(mentor_id) else AREA.href
    if back == AREA.href or do not in ("issue", "revoke"):
        session.notices.append("Nothing changed: issue or revoke a feed of a mentor.")
        return RedirectResponse(back, status_code=303)
    asked = sched.FeedRequest(mentor_id=mentor_id, revoke=do == "revoke", show_venues=do == "issue" and
                              show_venues == "yes")
    try:
        done = await state_of(request).client.ask(me, sched.CALENDAR_FEED, asked)
    except ServiceError as exc:
        session.notices.append(f"Feed of {mentor_id} not {'revoked' if asked.revoke else 'issued'}: {exc.message}.")
        return RedirectResponse(back, status_code=303)
    if asked.revoke:
        session.notices.append(f"Revoked {done.revoked} feed link{'s' if done.revoked != 1 else ''} of {mentor_id}: "
                               "their calendar app stops updating.")
    else:
        shows = "case references and the staffed venues" if asked.show_venues else "case references only"
        session.notices.append(f"New calendar feed for {mentor_id} (the old link stops working; it shows {shows}; "
                               f"share it only with them): {done.ics_url}")
    return RedirectResponse(back, status_code=303)
