"""Tables the risk service owns: the facts it assessed, every assessment, and the alerts it raised."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class RiskCase(SQLModel, table=True):
    """The pseudonymous facts of one referral (as in `referrals.accepted`), kept for re-assessment."""

    __tablename__ = "risk_case"

    referral_id: str = Field(primary_key=True, max_length=40)
    agency_id: str = Field(index=True, max_length=64)
    facts: str = Field(description="The ReferralAccepted event as JSON.")
    accepted_at: datetime
    current_tier: str = Field(max_length=16)
    assessments: int = Field(default=0, description="How many assessments were made (the latest is number N).")


class AssessmentRecord(SQLModel, table=True):
    """Every assessment ever published, with its full explanation: the audit trail."""

    __tablename__ = "assessment"

    event_id: str = Field(primary_key=True, max_length=120)
    referral_id: str = Field(index=True, max_length=40)
    number: int
    assessed_at: datetime
    computed_tier: str = Field(max_length=16)
    final_tier: str = Field(max_length=16)
    rules_version: str = Field(max_length=40)
    event: str = Field(description="The RiskAssessed event as JSON.")


class AlertRecord(SQLModel, table=True):
    __tablename__ = "safeguarding_alert"

    event_id: str = Field(primary_key=True, max_length=120)
    referral_id: str = Field(index=True, max_length=40)
    rule_id: str = Field(max_length=80)
    raised_at: datetime
    deadline: datetime
    actions: str = Field(description="JSON list of actions.")


TABLES: list[type[SQLModel]] = [RiskCase, AssessmentRecord, AlertRecord]
