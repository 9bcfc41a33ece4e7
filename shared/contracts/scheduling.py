"""Mentor records (imported by operators) and the events the scheduling service publishes."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shared.contracts.codes import Gender, Tier, Weekday, london_borough
from shared.contracts.common import Contract, Event, PersonName, SessionSlot, WeeklyWindow, parse_hhmm

MentorKind = Literal["staff", "volunteer", "rotl"]


class CaseStatus(StrEnum):
    """Where a referral stands in scheduling (the status reply's `status`)."""

    AWAITING_REFERRAL = "awaiting_referral"  # assessed, but the accepted referral's facts are not here yet
    AWAITING_ASSESSMENT = "awaiting_assessment"  # the facts are here, the risk assessment is not
    SCHEDULED = "scheduled"  # a mentor and sessions are booked
    WAITLISTED = "waitlisted"  # no mentor fits yet; the reason says why
    SUSPENDED = "suspended"  # the young person is missing: sessions are held, the mentor keeps the place
    CLOSED = "closed"


class SessionStatus(StrEnum):
    """Where one session stands (in a calendar reply and a mentor's feed)."""

    BOOKED = "booked"
    CONFIRMED = "confirmed"  # the young person confirmed it: the re-optimisation round never moves it
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    MISSED = "missed"
    SUSPENDED = "suspended"  # held while the young person is missing


class Licence(Contract):
    """Release-on-temporary-licence conditions of a serving prisoner mentor. Only return_by is required."""

    return_by: str = Field(description="HH:MM by which the mentor must be back at the establishment.")
    exclusion_zones: list[str] = Field(default_factory=list, description="Place names the mentor must not enter.")
    valid_from: date | None = Field(default=None, description="First day the licence allows mentoring.")
    valid_to: date | None = Field(default=None, description="Last day the licence allows mentoring.")
    days: list[Weekday] | None = Field(default=None, description="Permitted days; every day when not given.")
    window_start: str | None = Field(default=None, description="HH:MM: no session before this time.")
    travel_minutes: int = Field(default=0, ge=0, le=600, description="Travel back to the establishment.")
    approved_venues: list[str] | None = Field(default=None, description="Venue ids the licence allows; any when unset.")
    suspended: bool = Field(default=False, description="A suspended licence: no sessions until lifted.")
    establishment_borough: str | None = Field(
        default=None,
        description="London borough of the establishment or pick-up point, where the mentor's route to a venue "
        "starts (checked against exclusion zones); the mentor's first borough when not given.",
    )

    @field_validator("establishment_borough")
    @classmethod
    def _borough(cls, value: str | None) -> str | None:
        return None if value is None else london_borough(value)

    @field_validator("return_by", "window_start")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hhmm(value)
        return value


class Vetting(Contract):
    """The mentor's enhanced check (DBS with the children's barred list)."""

    enhanced_check_expires: date = Field(description="After this day the mentor gets no new sessions.")


class DateOverride(Contract):
    """A day that differs from the weekly pattern: other windows, or none at all."""

    date: date
    windows: list[tuple[str, str]] = Field(default_factory=list, description="[start, end] HH:MM pairs; none = away.")

    @field_validator("windows")
    @classmethod
    def _hhmm(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for start, end in value:
            if parse_hhmm(end) <= parse_hhmm(start):
                raise ValueError(f"window {start}-{end} ends before it starts")
        return value


IMPORTING = "importing"
"""Validation context key: a record being imported from a scheduler's file, checked as strictly as a referral."""
_LANGUAGE_CODE = re.compile(r"[a-z]{2}")


def language_problems(record: MentorRecord) -> list[str]:
    """Languages a stored record holds that are not codes (imported before codes were checked)."""
    return [code for code in record.languages if not _LANGUAGE_CODE.fullmatch(code.strip().lower())]


class MentorRecord(Contract):
    """A mentor as imported with `reroute mentors import`. Every field after `licence` is optional."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: PersonName = Field(min_length=1, max_length=200)
    kind: MentorKind
    boroughs: list[str] = Field(min_length=1, description="The first is the mentor's home borough.")
    languages: list[str] = Field(min_length=1)
    gender: Gender
    max_caseload: int = Field(ge=0, le=100)
    availability: list[WeeklyWindow] = Field(default_factory=list)
    licence: Licence | None = None
    vetting: Vetting | None = Field(default=None, description="No record: allowed, and listed as a problem.")
    experience: Literal["new", "experienced"] | None = Field(
        default=None, description="Volunteers not marked experienced count as new: low and medium tiers only."
    )
    lived_experience: list[str] = Field(default_factory=list, description="Tags, e.g. custody, county_lines.")
    conflicts: list[str] = Field(default_factory=list, description="Areas, groups or people never to be matched.")
    date_overrides: list[DateOverride] = Field(default_factory=list)
    max_points: float | None = Field(
        default=None, ge=0, description="Risk-weighted load cap (very_high 3, high 2, medium 1.5, low 1); 2 × max_caseload."
    )
    venues: list[str] | None = Field(default=None, description="Venue ids the mentor works from; any in their boroughs.")

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """On import, ISO 639-1 codes as referrals use (`en`, not `english`, which would match no young person).
        Records stored before this check are read as they are: `mentors list --problems` names them."""
        if not (info.context or {}).get(IMPORTING):
            return value
        wrong = [code for code in value if not _LANGUAGE_CODE.fullmatch(code.strip().lower())]
        if wrong:
            raise ValueError(f"{', '.join(repr(w) for w in wrong)}: not ISO 639-1 language code(s); use two letters "
                             "as referrals do, e.g. 'en', 'so'")
        return [code.strip().lower() for code in value]

    @field_validator("boroughs")
    @classmethod
    def _boroughs(cls, value: list[str]) -> list[str]:
        return [london_borough(b) for b in value]

    @model_validator(mode="after")
    def _licence_for_rotl(self) -> MentorRecord:
        if self.kind == "rotl" and self.licence is None:
            raise ValueError("a rotl mentor needs a licence with return_by")
        return self

    @property
    def points_cap(self) -> float:
        """max_points, else twice max_caseload (and room for one very_high case, so first-cut files keep working)."""
        if self.max_points is not None:
            return self.max_points
        return max(2.0 * self.max_caseload, 3.0) if self.max_caseload else 0.0


class VenueRecord(Contract):
    """A place where sessions are held. With none registered, each borough has a staffed office."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    borough: str
    area: str | None = Field(
        default=None, max_length=200,
        description="The estate, neighbourhood or postcode district it is in, checked against unsafe areas.",
    )
    staffed: bool = True
    rooms: int = Field(default=1, ge=1, le=100)

    @field_validator("borough")
    @classmethod
    def _borough(cls, value: str) -> str:
        return london_borough(value)


class SessionsScheduled(Event):
    """A mentor was matched and sessions booked (`sessions.scheduled.<agency_id>`)."""

    referral_id: str
    agency_id: str
    mentor_id: str
    tier: Tier
    sessions: list[SessionSlot]
    deadline_met: bool = Field(description="Whether the first session starts within the tier's deadline.")


class SessionsRescheduled(Event):
    """A referral's remaining sessions were re-planned (`sessions.rescheduled.<agency_id>`)."""

    referral_id: str
    agency_id: str
    mentor_id: str
    previous_mentor_id: str
    tier: Tier
    sessions: list[SessionSlot] = Field(description="The new sessions from now on.")
    cancelled: list[str] = Field(description="Ids of the sessions they replace.")
    reason: str = Field(description="Why, in plain English.")


class SessionsCancelled(Event):
    """Sessions were cancelled without replacement (`sessions.cancelled.<agency_id>`)."""

    referral_id: str
    agency_id: str
    cancelled: list[str]
    reason: str


class SessionsWaitlisted(Event):
    """No mentor fits yet (`sessions.waitlisted.<agency_id>`)."""

    referral_id: str
    agency_id: str
    tier: Tier
    reason: str = Field(description="Why no mentor fits, in plain English.")
