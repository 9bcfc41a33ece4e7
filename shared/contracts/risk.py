"""Events the risk service publishes."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from shared.contracts.codes import Tier
from shared.contracts.common import Contract, Event


class Reason(Contract):
    """One rule that fired, with the points it contributed and why, in plain English."""

    rule_id: str
    axis: str = Field(description="likelihood, harm, wellbeing, or escalation.")
    points: float = Field(default=0, description="Points added (negative for a protective factor).")
    explanation: str


class AxisAssessment(Contract):
    """Score and tier on one axis."""

    tier: Tier
    score: float = Field(description="Points after caps, protective factors and recency; harm uses rule rank.")
    floor: Tier | None = Field(default=None, description="Minimum tier set by an escalation, if any.")
    reasons: list[Reason] = Field(default_factory=list)
    could_lower: list[str] = Field(default_factory=list, description="Dynamic factors whose change could lower the tier.")


class Need(Contract):
    """A needs area beyond the index offence, scored 0 (none), 1 (some) or 2 (significant)."""

    code: str
    name: str
    score: int


class Override(Contract):
    """A practitioner's decision on the computed tier (the human in the loop)."""

    kind: str = Field(description="confirm, up or down.")
    tier: Tier
    reason: str
    by: str
    countersigned_by: str | None = None
    at: AwareDatetime


class Change(Contract):
    """How this assessment differs from the previous one of the same referral."""

    previous_tier: Tier
    direction: str = Field(description="up, down or same.")
    cause: str = Field(description="update (the agency updated the referral), override, or rescore (new rules).")
    rules_added: list[str] = Field(default_factory=list)
    rules_removed: list[str] = Field(default_factory=list)
    summary: str


class RiskAssessed(Event):
    """The rule-based assessment of an accepted referral (`risk.assessed.<agency_id>`)."""

    referral_id: str
    agency_id: str
    tier: Tier = Field(description="Overall tier: the highest of the three axes.")
    likelihood: AxisAssessment
    harm: AxisAssessment
    wellbeing: AxisAssessment
    reasons: list[Reason] = Field(description="Every rule that fired, on any axis.")
    needs: list[Need] = Field(description="Needs areas found, highest first.")
    focus: list[str] = Field(description="Codes of the top three needs: the plan's focus.")
    escalations: list[str] = Field(default_factory=list, description="Ids of escalation rules that fired.")
    flags: list[str] = Field(default_factory=list, description="Sub-flags such as risk_to_staff.")
    rules_version: str
    computed_tier: Tier = Field(description="The tier the rules computed, before any practitioner override.")
    number: int = Field(default=1, description="1 for the first assessment of the referral, then 2, 3, ...")
    override: Override | None = Field(default=None, description="Set when a practitioner decided the tier.")
    change: Change | None = Field(default=None, description="Set on every assessment after the first.")
    review_due: AwareDatetime | None = Field(default=None, description="When the tier must next be reviewed.")


class SafeguardingAlert(Event):
    """An urgent safeguarding escalation (`safeguarding.alert.<agency_id>`)."""

    referral_id: str
    agency_id: str
    rule_id: str
    actions: list[str]
    deadline: AwareDatetime = Field(description="When the actions must be done by.")
