"""Inputs for risk: an accepted referral built from indicator codes and coded facts (for the pure assessment), and
what a risk lead names when they countersign or refuse a lowering (for its endpoints)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from shared.contracts.codes import IndexOffence
from shared.contracts.intake import Indicator, PersonFacts, Preferences, ReferralRecorded

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def referral(
    *indicators: str | tuple[str, date | None],
    protective: tuple[str, ...] = (),
    index_offence: IndexOffence | None = None,
    prior: int | None = None,
    age_first: int | None = None,
) -> ReferralRecorded:
    """An accepted referral; an indicator is a code (observed today) or (code, observed_at)."""
    pairs = [(i, TODAY) if isinstance(i, str) else i for i in indicators]
    return ReferralRecorded(
        event_id="evt-1",
        occurred_at=NOW,
        referral_id="ref-1",
        agency_id="agency-1",
        agency_referral_id="A-1",
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Hackney", languages=["en"]),
        index_offence=index_offence,
        prior_proven_offences=prior,
        age_at_first_proven_offence=age_first,
        indicators=[Indicator(code=code, observed_at=seen) for code, seen in pairs],
        protective_factors=list(protective),
        unsafe_areas=["Some Estate"],
        preferences=Preferences(),
        availability=[],
    )


def seen(shown: dict[str, Any]) -> dict[str, Any]:
    """What a countersignature or refusal names (`SeenLowering`): the pending lowering and the assessment of the case
    as `shown`, an `assessment` or `override` reply, gave them to the risk lead."""
    pending = shown["pending"]
    return {"tier": pending["tier"], "requested_at": pending["requested_at"],
            "assessment_number": shown["assessment"]["number"]}
