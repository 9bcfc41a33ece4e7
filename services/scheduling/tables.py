"""Tables the scheduling service owns: mentors, cases awaiting or holding a mentor, and booked sessions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from shared.alerts import AlertColumns


class MentorRow(SQLModel, table=True):
    __tablename__ = "mentor"

    mentor_id: str = Field(primary_key=True, max_length=64)
    record: str = Field(description="The imported MentorRecord as JSON.")
    updated_at: datetime


class CaseRow(SQLModel, table=True):
    """One referral as scheduling sees it. Facts come from `intake.recorded`, the tier from `risk.assessed`;
    whichever arrives second triggers booking."""

    __tablename__ = "sched_case"

    referral_id: str = Field(primary_key=True, max_length=40)
    agency_id: str = Field(index=True, max_length=64)
    person_id: str | None = Field(default=None, index=True, max_length=40, description="Pseudonymous, from intake.")
    facts: str | None = Field(default=None, description="The ReferralRecorded event as JSON (pseudonymous).")
    tier: str | None = Field(default=None, max_length=16)
    assessment_number: int = Field(default=0, description="The latest risk.assessed number applied.")
    cadence_tier: str | None = Field(default=None, max_length=16, description="The tier whose cadence is booked.")
    lower_reviews: int = Field(default=0, description="Consecutive reviews below the cadence tier.")
    wellbeing_tier: str | None = Field(default=None, max_length=16)
    missing: bool = Field(default=False, description="The latest assessment says the young person is missing.")
    staffed_only: bool = Field(default=False, description="Harm high or above, or risk to staff.")
    needs: str | None = Field(default=None, description="JSON list of the plan's focus needs codes.")
    status: str = Field(
        max_length=24, index=True,
        description="A CaseStatus: awaiting_referral, awaiting_assessment, scheduled, waitlisted, suspended, closed.",
    )
    mentor_id: str | None = Field(default=None, index=True, max_length=64)
    assigned_by: str | None = Field(default=None, max_length=200, description=(
        "Who chose the mentor by hand (`reroute assign`), while the case keeps that mentor: the batch round leaves "
        "the case as it is. None when the services chose; cleared whenever the mentor changes any other way, or "
        "the case leaves them (store.set_case_status, store.set_outcomes)."))
    assigned_mentor_id: str | None = Field(default=None, max_length=64, description=(
        "The mentor `assigned_by` chose: the round keeps the case only while it is mentor_id, so a replica that "
        "changes the mentor without clearing `assigned_by` (an older version's) ends the choice all the same."))
    reason: str | None = Field(default=None, description="Why it waits, moved or closed, in full: for schedulers.")
    agency_reason: str | None = Field(
        default=None, description="The same as the referring agency is told it (`agency_reasons`); None on cases "
        "stored before it was kept apart.")
    deadline_met: bool | None = None
    updated_at: datetime
    trace_context: str | None = Field(default=None, max_length=100, description=(
        "The W3C traceparent of the referral's trace: a re-plan scheduling starts itself is a span there."))


class SessionRow(SQLModel, table=True):
    __tablename__ = "session"
    __table_args__ = (  # a mentor's (migration 0008) or a venue's (0009) sessions in a window, not their whole history;
        # (mentor_id, start) serves every lookup by mentor, so mentor_id has no index of its own (0010)
        Index("ix_session_mentor_id_start", "mentor_id", "start"),
        Index("ix_session_mentor_id_end", "mentor_id", "end"),
        Index("ix_session_venue_id_start", "venue_id", "start"),
    )

    session_id: str = Field(primary_key=True, max_length=40)
    referral_id: str = Field(index=True, max_length=40)
    mentor_id: str = Field(max_length=64)
    venue_id: str | None = Field(default=None, max_length=64)
    route: str | None = Field(default=None, description="JSON list of boroughs: the young person's planned route.")
    mentor_route: str | None = Field(default=None, description="JSON list of boroughs: a rotl mentor's route.")
    start: datetime = Field(index=True)
    end: datetime = Field(index=True)
    status: str = Field(
        default="booked", max_length=16,
        description="A SessionStatus: booked, confirmed, cancelled, attended, missed, suspended. Change it only through "
        "store.set_session_status, which bumps the sequence.",
    )
    sequence: int = Field(default=0, description="Bumped on every change, for calendar feeds.")
    created_at: datetime
    updated_at: datetime


class VenueRow(SQLModel, table=True):
    __tablename__ = "venue"

    venue_id: str = Field(primary_key=True, max_length=64)
    record: str = Field(description="The imported VenueRecord as JSON.")
    updated_at: datetime


class LeaveRow(SQLModel, table=True):
    """A mentor's leave: Europe/London dates, both inclusive."""

    __tablename__ = "mentor_leave"

    id: int | None = Field(default=None, primary_key=True)
    mentor_id: str = Field(index=True, max_length=64)
    first_day: date
    last_day: date = Field(index=True)
    created_at: datetime


class CalendarToken(SQLModel, table=True):
    """A mentor's calendar-feed token, stored hashed; revoking or re-issuing makes the old link dead."""

    __tablename__ = "calendar_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    mentor_id: str = Field(index=True, max_length=64)
    issued_at: datetime
    revoked_at: datetime | None = None
    show_venues: bool = Field(default=False, description=(
        "Show the venue of sessions at the organisation's staffed premises as LOCATION (the mentor opted in)."))


class AlertRow(AlertColumns, table=True):
    """A safeguarding alert scheduling raised (disengagement: three missed sessions in a row with wellbeing high or
    above), and who acknowledged it."""

    __tablename__ = "sched_alert"


class BookingVersionRow(SQLModel, table=True):
    """One row: a token that triggers change with every session, leave, mentor, venue and case holding a place
    (migration 0007), so booking knows whether what it kept from its last batch still stands (store.booking_state)."""

    __tablename__ = "booking_version"

    id: int = Field(primary_key=True)
    token: str = Field(max_length=64)


TABLES: list[type[SQLModel]] = [MentorRow, CaseRow, SessionRow, VenueRow, LeaveRow, CalendarToken, AlertRow,
                                BookingVersionRow]
