"""Building blocks used by several contracts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.contracts.codes import Weekday

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@lru_cache(maxsize=4096)
def parse_hhmm(value: str) -> time:
    """Parse "HH:MM" (24-hour) into a time; raises ValueError with a readable message."""
    if not _HHMM.match(value):
        raise ValueError(f"'{value}' is not a time of day in HH:MM (24-hour) form")
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _printable(value: str) -> str:
    if _UNPRINTABLE.search(value):
        raise ValueError("must not contain control characters or bidirectional-text controls")
    return value


LONDON = ZoneInfo("Europe/London")


def _in_london(value: datetime) -> str:
    """ISO 8601 with London's offset at that instant: +00:00 in winter, +01:00 in British Summer Time (a naive
    value is UTC, as the databases keep it)."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(LONDON).isoformat()


LondonTime = Annotated[datetime, PlainSerializer(_in_london, return_type=str, when_used="json"),
                       WithJsonSchema({"type": "string", "format": "date-time"})]
"""A session's time: any aware datetime in, written on the wire in Europe/London local time with its offset."""

def absent(value: object) -> bool:
    """For `Field(exclude_if=absent)`: an optional field the contract says is absent, not null, when it has no value."""
    return value is None


PersonName = Annotated[str, AfterValidator(_printable)]
"""A person's name as people type it: no control characters (a newline, an escape sequence that plants a terminal
link) and no bidirectional-text controls (which make a name read differently from what is stored)."""
OneLine = Annotated[str, AfterValidator(_printable)]
"""A line of text people type (a note): held to the same rule as a name."""


class Contract(BaseModel):
    """Base of every model on the wire: unknown fields are refused, so nothing slips in unseen; except that a client
    reads a request-reply endpoint's REPLY ignoring fields it does not know (`shared.contracts.rpc.decode_reply`), so
    a newer service may add an optional reply field without breaking an older CLI or console. A request field is
    never ignored: a service refuses one it does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Contract):
    """Base of every published event."""

    schema_version: int = Field(default=1, description="Version of this event's schema; bumped on any breaking change.")
    event_id: str = Field(description="Unique id of this event; also its Nats-Msg-Id, so replays are de-duplicated.")
    occurred_at: AwareDatetime = Field(description="When the fact happened (ISO 8601 with offset).")


class WeeklyWindow(Contract):
    """A weekly availability window in Europe/London local time, e.g. mon 16:00–19:00."""

    day: Weekday = Field(description="Day of the week: mon, tue, wed, thu, fri, sat or sun.")
    start: str = Field(description="Start, HH:MM, Europe/London local time.")
    end: str = Field(description="End, HH:MM, Europe/London local time; after start.")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WeeklyWindow:
        if parse_hhmm(self.end) <= parse_hhmm(self.start):
            raise ValueError(f"window {self.day} {self.start}-{self.end} ends before it starts")
        return self

    @property
    def start_time(self) -> time:
        return parse_hhmm(self.start)

    @property
    def end_time(self) -> time:
        return parse_hhmm(self.end)


class FieldError(Contract):
    """One problem with a submitted body."""

    field: str = Field(description="Dotted path of the offending field, e.g. young_person.date_of_birth; '' for the whole body.")
    message: str = Field(description="What is wrong, in plain English.")


class SessionSlot(Contract):
    """One booked mentoring session."""

    session_id: str = Field(description="Stable id of the session.")
    start: LondonTime = Field(description="Start, ISO 8601 in Europe/London local time with its offset "
                                          "(+00:00 in winter, +01:00 in British Summer Time).")
    end: LondonTime = Field(description="End, ISO 8601 in Europe/London local time with its offset.")
    venue: str | None = Field(default=None, description="Where: a venue name (an office), never a home address.")
