"""Risk's request-reply endpoints (`reroute.rpc.risk.<verb>`): assessments, reviews and the rules.

Implemented in `services/risk/rpc.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from shared.contracts.codes import Tier
from shared.contracts.common import Contract
from shared.contracts.risk import RiskAssessed
from shared.contracts.rpc import Empty, Endpoint, Role

_RISK = ("risk",)
_LEADS = frozenset({Role.RISK_LEAD})
_READERS = frozenset({Role.SCHEDULER, Role.RISK_LEAD, Role.DSL, Role.OPERATOR})


class AssessmentRequest(Contract):
    referral_id: str = Field(max_length=100)


class TierChange(Contract):
    """One step in the history of a referral's tier."""

    number: int
    at: datetime
    computed_tier: Tier = Field(description="What the rules computed.")
    tier: Tier = Field(description="The tier that applied (after any override).")
    cause: str = Field(description="first, update, override or rescore.")
    by: str | None = Field(description="The practitioner, for an override.")
    rules_version: str
    summary: str
    reason: str | None = Field(description="The practitioner's reason, for an override.")
    countersigned_by: str | None


class Assessment(Contract):
    """A referral's latest assessment with every reason, and the history of its tier."""

    assessment: RiskAssessed
    history: list[TierChange]
    pending: PendingOverride | None = Field(default=None, description="A lowering waiting for a countersignature.")


class OverrideRequest(Contract):
    referral_id: str = Field(max_length=100)
    tier: Tier
    reason: str = Field(default="", max_length=2000)
    by: str = Field(default="", max_length=200, description="Set by risk to the person the subject names.")


class PendingOverride(Contract):
    """A lowered tier waiting for a second risk lead: until one countersigns it, the tier in force stays."""

    referral_id: str
    tier: Tier = Field(description="The tier asked for.")
    reason: str
    by: str = Field(description="The risk lead who asked.")
    requested_at: datetime
    expires_at: datetime = Field(description="Unsigned by then, it lapses (REROUTE_PENDING_OVERRIDE_HOURS).")


class Reviewed(Contract):
    assessment: RiskAssessed = Field(description="The assessment in force after this request.")
    pending: PendingOverride | None = Field(default=None, description="A lowering now waiting for a second risk "
                                                                      "lead's countersignature.")


def _required(*names: str) -> ConfigDict:
    """Fields the schema (and so the AsyncAPI document) calls required, of their one non-null type, that still take
    None at run time: a request from an older client, naming none, gets risk's own refusal saying what to do, not a
    validation error."""
    def mark(schema: dict[str, Any]) -> None:
        for name in names:
            field = schema["properties"][name]
            field.pop("default", None)
            kinds = [k for k in field.pop("anyOf", []) if k != {"type": "null"}]
            field.update(kinds[0] if len(kinds) == 1 else {"anyOf": kinds})
        schema["required"] = [*schema.get("required", []), *(n for n in names if n not in schema.get("required", []))]

    return ConfigDict(json_schema_extra=mark)


class SeenLowering(Contract):
    """The pending lowering a risk lead saw, and the assessment of the case they read with it, named when they
    countersign or refuse it: a different lowering (asked again meanwhile), or the case re-assessed meanwhile, is never
    decided unseen."""

    model_config = _required("assessment_number")

    tier: Tier = Field(description="The tier it asks for, as shown.")
    requested_at: AwareDatetime = Field(description="When it was asked: `PendingOverride.requested_at`, exactly as "
                                               "`assessment` or `overrides.pending` gave it.")
    assessment_number: int | None = Field(default=None, ge=1, description=(
        "The number of the case's assessment shown with it (`Assessment.assessment.number`): a case re-assessed since "
        "(an update or a re-score gave it new reasons) is refused, to be read again. Required: a request naming none "
        "(an older console or CLI) is refused."))


_SEEN = ("The pending lowering the risk lead saw. Required: a request naming none (an older console or CLI) is "
         "refused, and so is one naming a lowering no longer pending; either way nothing changes.")


class CountersignRequest(Contract):
    model_config = _required("lowering")

    referral_id: str = Field(max_length=100)
    lowering: SeenLowering | None = Field(default=None, description=_SEEN)
    by: str = Field(default="", max_length=200, description="Set by risk to the person the subject names.")


class RefuseOverrideRequest(Contract):
    model_config = _required("lowering")

    referral_id: str = Field(max_length=100)
    reason: str = Field(min_length=1, max_length=2000)
    lowering: SeenLowering | None = Field(default=None, description=_SEEN)
    by: str = Field(default="", max_length=200, description="Set by risk to the person the subject names.")


class ReviewsRequest(Contract):
    within_days: int = Field(default=14, ge=0, le=365)


class ReviewDue(Contract):
    referral_id: str
    agency_id: str
    tier: Tier
    due: datetime
    overdue: bool


class ReviewsDue(Contract):
    reviews: list[ReviewDue] = Field(description="Soonest first; overdue ones are marked.")


class RulesListing(Contract):
    id: str
    version: str
    indicators: dict[str, str] = Field(description="Indicator code → its meaning.")
    protective_factors: dict[str, str] = Field(description="Protective factor code → its meaning.")


class RescoreRequest(Contract):
    dry_run: bool = True
    rules_yaml: str | None = Field(default=None, max_length=2_000_000,
                                   description="A candidate rules file to preview (dry run only).")
    rules_name: str = Field(default="candidate rules", max_length=200)


class Rescored(Contract):
    rules_version: str
    dry_run: bool
    lines: list[str] = Field(description="The summary, line by line, for a person to read.")
    total: int
    up: int
    down: int
    republished: int = Field(description="Assessments published again (0 on a dry run).")


class PendingOverrides(Contract):
    lowerings: list[PendingOverride] = Field(description="Lowerings a countersignature could still make take effect, "
                                                          "oldest asked first.")


class AuditTier(Contract):
    referral_id: str
    tier: Tier
    override: Literal["confirm", "up", "down"] | None = Field(description="The kind of practitioner review, if any.")


class AuditRows(Contract):
    rows: list[AuditTier]


ASSESSMENT = Endpoint("assessment", AssessmentRequest, Assessment,
                      "The latest assessment of a referral with every reason, and the history of its tier.", _RISK, roles=_READERS)
OVERRIDE = Endpoint("override", OverrideRequest, Reviewed,
                    "Confirm or override a tier (up needs a reason); lowering it, with a reason, only asks: it waits "
                    "for a second risk lead's countersignature, the tier in force unchanged.", _RISK, roles=_LEADS,
                    acts_as="by")
COUNTERSIGN = Endpoint("override.countersign", CountersignRequest, Reviewed,
                       "Countersign the lowering another risk lead asked for, naming the one seen: it takes effect now "
                       "(never one's own; refused if another is pending now).",
                       _RISK, roles=_LEADS, acts_as="by")
REFUSE_OVERRIDE = Endpoint("override.refuse", RefuseOverrideRequest, Reviewed,
                           "Refuse (or, for its own asker, withdraw) the lowering seen waiting for a "
                           "countersignature, with a reason; the tier in force stays.", _RISK, roles=_LEADS, acts_as="by")
PENDING_OVERRIDES = Endpoint("overrides.pending", Empty, PendingOverrides,
                             "Every lowering waiting for a second risk lead's countersignature (not lapsed), oldest "
                             "first.", _RISK, roles=_LEADS)
REVIEWS_DUE = Endpoint("reviews.due", ReviewsRequest, ReviewsDue,
                       "Referrals whose tier must be reviewed within the given days (overdue ones first).", _RISK, roles=frozenset({Role.RISK_LEAD, Role.DSL}))
RULES = Endpoint("rules", Empty, RulesListing,
                 "Every indicator and protective-factor code the rules know, with its meaning.", _RISK, roles=_READERS)
RESCORE = Endpoint("rules.rescore", RescoreRequest, Rescored,
                   "Re-score every referral with the loaded rules (or preview a candidate file) and report the "
                   "changes.", _RISK, roles=_LEADS)
AUDIT_ROWS = Endpoint("audit.rows", Empty, AuditRows,
                      "Each referral's final tier and review kind (ids only), for intake's fairness audit.", _RISK)
