"""Mentor records (imported by operators) and the events the scheduling service publishes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shared.contracts.codes import Gender, Tier
from shared.contracts.common import Contract, Event, SessionSlot, WeeklyWindow, parse_hhmm

MentorKind = Literal["staff", "volunteer", "rotl"]


class Licence(Contract):
    """Release-on-temporary-licence conditions of a serving prisoner mentor."""

    return_by: str = Field(description="HH:MM by which the mentor must be back at the establishment.")
    exclusion_zones: list[str] = Field(default_factory=list, description="Place names the mentor must not enter.")

    @field_validator("return_by")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_hhmm(value)
        return value


class MentorRecord(Contract):
    """A mentor as imported with `reroute mentors import`."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: MentorKind
    boroughs: list[str] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    gender: Gender
    max_caseload: int = Field(ge=0, le=100)
    availability: list[WeeklyWindow] = Field(default_factory=list)
    licence: Licence | None = None

    @model_validator(mode="after")
    def _licence_for_rotl(self) -> MentorRecord:
        if self.kind == "rotl" and self.licence is None:
            raise ValueError("a rotl mentor needs a licence with return_by")
        return self


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
