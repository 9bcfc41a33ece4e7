"""Tables the intake service owns. The referral body holds personal data: it never leaves intake."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class ReferralRecord(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (UniqueConstraint("agency_id", "agency_referral_id", name="uq_referral_agency_ref"),)

    referral_id: str = Field(primary_key=True, max_length=40)
    agency_id: str = Field(index=True, max_length=64)
    agency_referral_id: str = Field(max_length=100)
    received_at: datetime
    body: str = Field(description="The submitted referral as validated JSON (personal data).")
    updated_at: datetime
    revision: int = Field(default=0, description="How many times the agency updated it.")
    cloudevent: str | None = Field(default=None, description="CloudEvents ce-* headers, when present, as JSON.")
    submissions: int = Field(default=1, description="How many times the agency submitted it.")


class RejectionRecord(SQLModel, table=True):
    """A refused submission: the reasons only, never the body (it may hold personal data)."""

    __tablename__ = "rejection"

    event_id: str = Field(primary_key=True, max_length=400)
    agency_id: str = Field(index=True, max_length=64)
    agency_referral_id: str | None = Field(default=None, max_length=100)
    received_at: datetime
    errors: str = Field(description="JSON list of {field, message}.")


class EqualityRecord(SQLModel, table=True):
    """Equality-monitoring answers, apart from the referral: never sent on, read only by the fairness audit."""

    __tablename__ = "equality_monitoring"

    referral_id: str = Field(primary_key=True, max_length=40)
    ethnicity: str | None = Field(default=None, max_length=100)
    religion: str | None = Field(default=None, max_length=100)
    disability: str | None = Field(default=None, max_length=100)
    recorded_at: datetime


TABLES: list[type[SQLModel]] = [ReferralRecord, RejectionRecord, EqualityRecord]
