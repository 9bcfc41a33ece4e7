"""Scheduling's request-reply endpoints (`reroute.rpc.scheduling.<verb>`): mentors, venues, calendars, cases and
sessions, for schedulers and the other services.

Implemented in `services/scheduling/rpc.py`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from shared.contracts.codes import Tier, london_borough
from shared.contracts.common import Contract, LondonTime
from shared.contracts.rpc import CASEWORK, Empty, Endpoint, Role
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionStatus

SessionAction = Literal["confirm", "cancel", "attended", "missed"]

_SCHEDULING = ("scheduling",)
_SCHEDULER = frozenset({Role.SCHEDULER})


class ReferralRequest(Contract):
    referral_id: str = Field(max_length=100)


class BookedSession(Contract):
    session_id: str
    start: LondonTime = Field(description="Europe/London, with offset.")
    end: LondonTime


class CaseSession(Contract):
    """One session of a referral and what became of it."""

    session_id: str
    mentor_id: str
    start: LondonTime
    end: LondonTime
    status: SessionStatus


class SchedulingStatus(Contract):
    """Where a referral stands in scheduling: its mentor and booked sessions, or why it waits."""

    status: CaseStatus
    tier: Tier | None
    mentor_id: str | None
    mentor_first_name: str | None
    deadline_met: bool | None = Field(description="Whether the first session is within the tier's deadline.")
    first_session_due: LondonTime | None = Field(default=None, description=(
        "When the first session is due: the tier's deadline, counted from when intake accepted the referral (or "
        "its latest update). Europe/London, with offset; absent until the referral is assessed."))
    reason: str | None = Field(description="Why it waits, or why it was suspended or closed, in full: for schedulers.")
    agency_reason: str | None = Field(
        default=None, description="The same as the referring agency is told it: no mentor's vetting or licence "
        "status, no operator's name or note.")
    sessions: list[BookedSession] = Field(description="Booked and confirmed sessions, soonest first.")
    history: list[CaseSession] = Field(default_factory=list, description=(
        "Every session of the referral, past and future, whatever became of it (attended, missed, cancelled, ...), "
        "in order of start."))


class ClosedBeforeRequest(Contract):
    days: float = Field(ge=0)


class ReferralIdList(Contract):
    referral_ids: list[str]


class ImportProblem(Contract):
    """One problem with one imported record: nothing is imported while any remain."""

    index: int = Field(description="Position in the list, from 0.")
    id: Any = Field(description="The record's id, when it has one.")
    field: str
    message: str


class MentorsImportRequest(Contract):
    mentors: list[dict[str, Any]] = Field(max_length=10_000, description="Mentor records (checked one by one).")


class MentorsImported(Contract):
    imported: int
    created: int = 0
    updated: int = 0
    cases_moved: int = Field(default=0, description="Cases moved off mentors who can no longer mentor.")
    waitlisted_retried: int = 0
    without_check: list[str] = Field(default_factory=list, description=(
        "Mentors imported with no enhanced check in force (none recorded, or expired): they take no case until "
        "one is recorded."))
    errors: list[ImportProblem] = Field(description="Every problem found; when any, nothing was imported.")


class VenuesImportRequest(Contract):
    venues: list[dict[str, Any]] = Field(max_length=10_000)


class VenuesImported(Contract):
    imported: int
    created: int = 0
    updated: int = 0
    errors: list[ImportProblem]


class LeaveRequest(Contract):
    mentor_id: str = Field(max_length=64)
    first_day: date
    last_day: date


class LeaveRecorded(Contract):
    mentor_id: str
    moved: int = Field(description="Sessions moved to another time or mentor.")
    cancelled: int = Field(description="Sessions that could not be moved.")
    cases: int = Field(description="Cases touched.")


class CalendarRequest(Contract):
    mentor_id: str = Field(max_length=64)
    names_for: str | None = Field(default=None, max_length=200,
                                  description="Who is asking, to show first names (each look-up is logged by intake).")
    start: date | None = Field(default=None, description="First day (default today, Europe/London).")
    days: int = Field(default=28, ge=1, le=366)


class MentorSummary(Contract):
    id: str
    name: str
    kind: str
    max_caseload: int


class CalendarSession(Contract):
    session_id: str
    case: str = Field(description="The referral id (no names unless asked for).")
    first_name: str | None = Field(default=None, description="Only when names were asked for.")
    start: datetime
    end: datetime
    status: SessionStatus
    venue: str | None
    route: list[str] | None = Field(description="The young person's journey to the venue, when planned.")
    mentor_route: list[str] | None = Field(description="A rotl mentor's route round their exclusion zones.")


class LeaveDays(Contract):
    first_day: date = Field(description="Europe/London.")
    last_day: date = Field(description="Europe/London, inclusive.")


class MentorCalendar(Contract):
    mentor: MentorSummary
    starts: datetime
    ends: datetime
    sessions: list[CalendarSession]
    leave: list[LeaveDays] = Field(default_factory=list, description="The mentor's leave on any of these days.")


class VenuesWeekRequest(Contract):
    borough: str = Field(max_length=60, description="A London borough, matched case-insensitively.")
    start: date | None = Field(default=None, description="First day (default today, Europe/London).")
    days: int = Field(default=7, ge=1, le=31)

    @field_validator("borough")
    @classmethod
    def _borough(cls, value: str) -> str:
        return london_borough(value)


class VenueSession(Contract):
    """A session that holds (or held) a room at a venue: ids only."""

    session_id: str
    mentor_id: str
    start: LondonTime = Field(description="Europe/London, with offset.")
    end: LondonTime
    status: SessionStatus = Field(description="Booked, confirmed, attended or missed: cancelled sessions, and those "
                                  "suspended while the young person is missing, hold no room.")


class VenueRooms(Contract):
    """A venue of the borough, its rooms, and the sessions held there in the days asked for."""

    id: str
    name: str
    staffed: bool
    rooms: int = Field(description="How many sessions it can hold at once.")
    default_office: bool = Field(default=False, description=(
        "The borough's staffed office, used where no venue is registered (not imported as a venue)."))
    sessions: list[VenueSession] = Field(description="In order of start.")


class VenuesWeek(Contract):
    borough: str
    starts: LondonTime
    ends: LondonTime
    venues: list[VenueRooms] = Field(description="Every venue in the borough, by name.")


class CloseRequest(Contract):
    referral_id: str = Field(max_length=100)
    reason: str = Field(default="", max_length=2000)
    by: str = Field(default="", max_length=200)


class Closed(Contract):
    referral_id: str
    status: CaseStatus


class SessionRequest(Contract):
    session_id: str = Field(max_length=100)
    action: SessionAction
    reason: str = Field(default="", max_length=2000)


class SessionChanged(Contract):
    session_id: str
    status: SessionStatus
    referral_id: str
    follow_up: Literal["escalate", "close"] | None = Field(
        description="After misses: escalate (a safeguarding alert was raised) or close (the case was closed).")


class MentorOption(Contract):
    mentor_id: str
    first_start: datetime
    first_end: datetime
    deadline_met: bool
    score: float
    breakdown: dict[str, float] = Field(description="The score's parts, by criterion.")
    venue: str
    route: list[str]
    mentor_route: list[str] | None


class ExcludedMentor(Contract):
    mentor_id: str
    reason: str


class Recommendation(Contract):
    referral_id: str
    tier: Tier
    current_mentor: str | None
    options: list[MentorOption] = Field(description="The best three, best first.")
    excluded: list[ExcludedMentor] = Field(description="Every other mentor, with why.")


class AssignRequest(Contract):
    referral_id: str = Field(max_length=100)
    mentor_id: str = Field(max_length=64)
    start: datetime | None = Field(default=None, description="The first session's start; default the earliest fit.")
    reason: str = Field(default="", max_length=2000)
    by: str = Field(default="", max_length=200)


class Assigned(Contract):
    referral_id: str
    mentor_id: str
    sessions: int
    first: datetime


class RoundResult(Contract):
    """What one re-optimisation round did."""

    considered: int
    pinned: int = Field(description=(
        "Cases left as they are: a session the young person confirmed, or a mentor a scheduler chose by hand "
        "(`reroute assign`), which the round never undoes for a better score or its horizon."))
    waitlisted_before: int
    placed: int
    moved: int = Field(description=(
        "Young people with a mentor moved to another: only to make room or because their mentor can no longer keep "
        "them (the two counts below), never for a better score."))
    moved_to_make_room: int = Field(default=0, description=(
        "Of those moved, how many moved so that someone else could be placed: a waiting young person, or one whose "
        "mentor can no longer keep them."))
    moved_mentor_cannot_keep: int = Field(default=0, description=(
        "Of those moved, how many moved because their mentor can no longer keep them: no longer eligible for them "
        "(a check, a licence, a rule), no free time within the horizon, or a caseload cut below the young people "
        "they have."))
    solve_seconds: float


class WaitingReferral(Contract):
    referral_id: str
    agency_id: str
    tier: Tier
    waiting_since: datetime
    days: int
    reason: str | None
    would_place: str = Field(description="What capacity would place it.")


class Waitlist(Contract):
    waiting: list[WaitingReferral]


class FeedRequest(Contract):
    mentor_id: str = Field(max_length=64)
    revoke: bool = False
    show_venues: bool = Field(default=False, description=(
        "The mentor opts in to seeing where sessions are: the venue's name as LOCATION, only for the "
        "organisation's staffed premises (never a young person's address or route). Off by default: the feed syncs "
        "to third-party clouds, and a place and time there could expose a child hiding from exploiters."))


class CalendarFeed(Contract):
    revoked: int = Field(default=0, description="Links revoked (when revoking).")
    ics_url: str | None = Field(default=None, description="The new iCalendar link (when issuing).")
    json_url: str | None = None


class ListedMentor(MentorRecord):
    problems: list[str] = Field(description="What a scheduler should fix: vetting, licence.")


class Mentors(Contract):
    mentors: list[ListedMentor]


STATUS = Endpoint("status", ReferralRequest, SchedulingStatus,
                  "Where a referral stands in scheduling: mentor and sessions, or why it waits.", _SCHEDULING, roles=CASEWORK)
CLOSED_BEFORE = Endpoint("closed.before", ClosedBeforeRequest, ReferralIdList,
                         "Referrals closed more than `days` ago: due for purging under the retention policy.",
                         _SCHEDULING)
MENTORS_IMPORT = Endpoint("mentors.import", MentorsImportRequest, MentorsImported,
                          "Create or update mentors (re-importing never duplicates); move the cases of a mentor who can "
                          "no longer mentor; then retry waitlisted referrals.", _SCHEDULING, roles=_SCHEDULER)
VENUES_IMPORT = Endpoint("venues.import", VenuesImportRequest, VenuesImported,
                         "Create or update venues (where sessions are held).", _SCHEDULING, roles=_SCHEDULER)
LEAVE = Endpoint("mentors.leave", LeaveRequest, LeaveRecorded,
                 "Record a mentor's leave (Europe/London dates, inclusive) and move the sessions it touches.",
                 _SCHEDULING, roles=_SCHEDULER)
MENTORS = Endpoint("mentors.list", Empty, Mentors,
                   "Every mentor, each with the problems a scheduler should fix (vetting, licence).", _SCHEDULING, roles=_SCHEDULER)
CALENDAR = Endpoint("calendar", CalendarRequest, MentorCalendar,
                    "A mentor's booked sessions (case references only, unless names are asked for and logged).",
                    _SCHEDULING, roles=_SCHEDULER, acts_as="names_for")
VENUES_WEEK = Endpoint("venues.week", VenuesWeekRequest, VenuesWeek,
                       "A borough's venues, each with its rooms and the sessions that hold one in the days asked for "
                       "(ids only): how full each venue is.", _SCHEDULING, roles=_SCHEDULER)
CALENDAR_FEED = Endpoint("calendar.feed", FeedRequest, CalendarFeed,
                         "Issue a new feed link for a mentor (the old one stops working), or revoke it.", _SCHEDULING, roles=_SCHEDULER)
CLOSE = Endpoint("close", CloseRequest, Closed,
                 "Close a referral: its future sessions are cancelled and the mentor's place is freed.", _SCHEDULING, roles=_SCHEDULER, acts_as="by")
SESSION = Endpoint("session", SessionRequest, SessionChanged,
                   "Confirm or cancel a session, or record it attended or missed.", _SCHEDULING, roles=_SCHEDULER)
RECOMMEND = Endpoint("recommend", ReferralRequest, Recommendation,
                     "The top three mentor and first-slot options with scores, and why each other mentor is out.",
                     _SCHEDULING, roles=_SCHEDULER)
ASSIGN = Endpoint("assign", AssignRequest, Assigned,
                  "Book the scheduler's chosen mentor (and slot), refused with the constraint it would break.",
                  _SCHEDULING, roles=_SCHEDULER, acts_as="by")
REOPTIMISE = Endpoint("plan", Empty, RoundResult,
                      "Run the re-optimisation round now: waitlisted referrals and unconfirmed assignments together.",
                      _SCHEDULING, roles=_SCHEDULER)
WAITLIST = Endpoint("waitlist", Empty, Waitlist,
                    "Who waits, how long, why, and what capacity would place them.", _SCHEDULING, roles=_SCHEDULER)
