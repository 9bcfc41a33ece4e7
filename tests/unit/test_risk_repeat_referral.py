"""A repeat referral within 12 months counts towards likelihood, explained like any other rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.risk.assessment import assess
from services.risk.shipped_rules import SHIPPED_RULES
from shared.contracts.intake import PreviousReferrals
from shared.contracts.rules import load_rules
from tests.support.risk import NOW, referral
from tests.support.shipped_rules import band_points

RULES = load_rules(SHIPPED_RULES)
RULE = "L06_referred_again_within_12_months"


@pytest.mark.parametrize(
    ("days_ago", "fires"),
    [(None, False), (30, True), (364, True), (366, False), (800, False)],
)
def test_a_repeat_referral_within_12_months_adds_its_likelihood_points(days_ago: int | None, fires: bool) -> None:
    base = referral("peers_offending")
    earlier = None if days_ago is None else PreviousReferrals(count=1, last_referred_at=NOW - timedelta(days=days_ago))
    result = assess(base.model_copy(update={"previously_referred": earlier}), RULES, now=NOW)
    without = assess(base, RULES, now=NOW)

    hits = [r for r in result.likelihood.reasons if r.rule_id == RULE]
    assert bool(hits) is fires
    if fires:
        assert hits[0].points == band_points(RULE, 1) and "within 12 months" in hits[0].explanation
        assert result.likelihood.score == without.likelihood.score + band_points(RULE, 1)
    else:
        assert result.likelihood.score == without.likelihood.score
