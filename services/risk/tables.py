"""Tables the risk service owns: each referral's facts and latest assessment, every assessment, and the alerts."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from shared.alerts import AlertColumns


class RiskCase(SQLModel, table=True):
    """One referral: its pseudonymous facts (as in `intake.recorded`) and where its assessment stands now."""

    __tablename__ = "risk_case"

    referral_id: str = Field(primary_key=True, max_length=40)
    agency_id: str = Field(index=True, max_length=64)
    facts: str = Field(description="The latest ReferralRecorded event (intake.recorded) as JSON.")
    latest: str = Field(description="The latest RiskAssessed event as JSON.")
    tier: str = Field(max_length=16, index=True)
    computed_tier: str = Field(max_length=16)
    override: str | None = Field(default=None, max_length=16, description="confirm, up or down, when reviewed.")
    rules_version: str = Field(max_length=40)
    review_due: datetime = Field(index=True)
    updated_at: datetime
    trace_context: str | None = Field(default=None, max_length=100, description=(
        "The W3C traceparent of the referral's trace: a risk lead's decision on it is a span there."))


class AssessmentRecord(SQLModel, table=True):
    """Every assessment ever published, with its full explanation, who changed it and why: the audit trail."""

    __tablename__ = "assessment"

    event_id: str = Field(primary_key=True, max_length=120)
    referral_id: str = Field(index=True, max_length=40)
    number: int
    assessed_at: datetime
    computed_tier: str = Field(max_length=16)
    final_tier: str = Field(max_length=16)
    cause: str = Field(max_length=16, description="referral, update, override or rescore.")
    changed_by: str | None = Field(default=None, max_length=200)
    rules_version: str = Field(max_length=40)
    event: str = Field(description="The RiskAssessed event as JSON.")


class AlertRecord(AlertColumns, table=True):
    """A safeguarding alert risk raised (an escalation rule on a referral), and who acknowledged it."""

    __tablename__ = "safeguarding_alert"


class PendingOverrideRecord(SQLModel, table=True):
    """A risk lead's lowering of a tier and what became of it: pending until a second risk lead countersigns or
    someone refuses it, or it lapses at `expires_at`; kept afterwards, as the record of who asked and who decided."""

    __tablename__ = "pending_override"

    id: int | None = Field(default=None, primary_key=True)
    referral_id: str = Field(index=True, max_length=40)
    tier: str = Field(max_length=16)
    reason: str = Field(max_length=2000)
    requested_by: str = Field(max_length=200)
    requested_at: datetime
    expires_at: datetime
    status: str = Field(default="pending", max_length=16, description="pending, countersigned, refused or replaced.")
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = None
    decision_reason: str | None = Field(default=None, max_length=2000)


TABLES: list[type[SQLModel]] = [RiskCase, AssessmentRecord, AlertRecord, PendingOverrideRecord]
