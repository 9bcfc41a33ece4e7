"""Human review of the tier: override rules, reassessment diffs, review dates, re-score and equality reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.risk.review import (
    AskedLowering,
    AssessmentDiff,
    Direction,
    OverrideRefused,
    OverrideRequest,
    check_override,
    diff,
    overall_floor,
    overdue,
    rescore_summary,
    review_due,
    said_at,
    unseen_case,
    unseen_lowering,
)
from services.risk.shipped_rules import SHIPPED_RULES
from shared.contracts.codes import Tier
from shared.contracts.risk import AxisAssessment, Reason, RiskAssessed
from shared.contracts.rules import RuleSet, load_rules
from tests.support.shipped_rules import review_weeks

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
LOW, MEDIUM, HIGH, VERY_HIGH = Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.VERY_HIGH


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(SHIPPED_RULES)


# ---- overrides -------------------------------------------------------------------------------------------------


def request(
    tier: Tier, *, reason: str = "seen in person", by: str = "Ana Lee", countersign: str | None = None
) -> OverrideRequest:
    return OverrideRequest(tier=tier, reason=reason, by=by, countersign=countersign)


@pytest.mark.parametrize(
    ("computed", "current", "floor", "req", "kind"),
    [
        # confirm: the tier in force, no reason needed
        (HIGH, HIGH, None, request(HIGH, reason=""), "confirm"),
        (HIGH, HIGH, HIGH, request(HIGH, reason=""), "confirm"),
        (HIGH, MEDIUM, None, request(MEDIUM, reason=""), "confirm"),  # an earlier countersigned down-override
        # up: any distance, a reason, no countersignature
        (LOW, LOW, None, request(VERY_HIGH), "up"),
        (MEDIUM, MEDIUM, None, request(HIGH), "up"),
        (HIGH, MEDIUM, None, request(HIGH), "up"),  # undoing a down-override
        # down: one tier below computed, reason and a second person
        (HIGH, HIGH, None, request(MEDIUM, countersign="Ben Okafor"), "down"),
        (VERY_HIGH, VERY_HIGH, None, request(HIGH, countersign="Ben Okafor"), "down"),
        (MEDIUM, MEDIUM, None, request(LOW, countersign="Ben Okafor"), "down"),
        (VERY_HIGH, VERY_HIGH, HIGH, request(HIGH, countersign="Ben Okafor"), "down"),  # down to the floor itself
        (MEDIUM, VERY_HIGH, None, request(MEDIUM, countersign="Ben Okafor"), "down"),  # dropping an up-override
        (MEDIUM, VERY_HIGH, None, request(LOW, countersign="Ben Okafor"), "down"),  # measured from computed
        (HIGH, HIGH, None, request(MEDIUM, by=" ana  lee", countersign="Ana Leeson"), "down"),
    ],
)
def test_allowed_reviews(computed: Tier, current: Tier, floor: Tier | None, req: OverrideRequest, kind: str) -> None:
    assert check_override(computed=computed, current=current, floor=floor, request=req) == kind


@pytest.mark.parametrize(
    ("computed", "current", "floor", "req", "message"),
    [
        (HIGH, HIGH, None, request(HIGH, by=""), "say who is making this decision: the practitioner's name (by)"),
        (HIGH, HIGH, None, request(VERY_HIGH, by="  "), "the practitioner's name (by) is missing"),
        (MEDIUM, MEDIUM, None, request(HIGH, reason=""), "an up-override needs a reason"),
        (MEDIUM, MEDIUM, None, request(HIGH, reason=" \n"), "an up-override needs a reason"),
        (HIGH, HIGH, None, request(MEDIUM, reason="", countersign="Ben"), "a down-override needs a reason"),
        (HIGH, HIGH, None, request(MEDIUM), "a down-override needs a countersignature from a second person"),
        (HIGH, HIGH, None, request(MEDIUM, countersign=" "), "a down-override needs a countersignature"),
        (
            HIGH,
            HIGH,
            None,
            request(MEDIUM, countersign="  ANA lee "),
            "a down-override needs a countersignature from a second person, not Ana Lee again",
        ),
        (
            HIGH,
            HIGH,
            None,
            request(MEDIUM, reason=""),
            "a down-override needs a reason; a down-override needs a countersignature from a second person",
        ),
        (
            VERY_HIGH,
            VERY_HIGH,
            None,
            request(MEDIUM, countersign="Ben"),
            "medium is more than one tier below the computed very_high (the lowest allowed is high)",
        ),
        (HIGH, HIGH, None, request(LOW, countersign="Ben"), "low is more than one tier below the computed high"),
        (
            VERY_HIGH,
            VERY_HIGH,
            VERY_HIGH,
            request(HIGH, countersign="Ben"),
            "an escalation (floor very_high) forbids a tier below very_high",
        ),
        (HIGH, HIGH, HIGH, request(MEDIUM, countersign="Ben"), "an escalation (floor high) forbids a tier below high"),
        (
            VERY_HIGH,
            VERY_HIGH,
            VERY_HIGH,
            request(MEDIUM, countersign="Ben"),
            (
                "an escalation (floor very_high) forbids a tier below very_high; medium is more than one tier below "
                "the computed very_high (the lowest allowed is very_high)"
            ),
        ),
        # a tier that no longer meets the limits cannot be confirmed or raised to a still-too-low tier
        (VERY_HIGH, MEDIUM, None, request(MEDIUM, reason=""), "medium is more than one tier below the computed"),
        (HIGH, MEDIUM, HIGH, request(MEDIUM, reason=""), "an escalation (floor high) forbids a tier below high"),
        (VERY_HIGH, LOW, None, request(MEDIUM), "medium is more than one tier below the computed very_high"),
    ],
)
def test_refused_reviews(computed: Tier, current: Tier, floor: Tier | None, req: OverrideRequest, message: str) -> None:
    with pytest.raises(OverrideRefused) as refused:
        check_override(computed=computed, current=current, floor=floor, request=req)
    assert message in str(refused.value)


def test_a_forbidden_tier_is_refused_without_asking_for_paperwork() -> None:
    with pytest.raises(OverrideRefused) as refused:
        check_override(computed=HIGH, current=HIGH, floor=HIGH, request=request(MEDIUM, reason=""))
    assert str(refused.value) == "an escalation (floor high) forbids a tier below high"


ASKED, AGAIN = NOW - timedelta(minutes=30), NOW - timedelta(minutes=5)
SEEN = AskedLowering(tier=MEDIUM, by="Ana Lee", requested_at=ASKED)
PENDING_LOW = AskedLowering(tier=LOW, by="Ana Lee", requested_at=AGAIN)


def decided(status: str, by: str, decision: str | None = None, *, tier: Tier = MEDIUM) -> AskedLowering:
    return AskedLowering(tier=tier, by="Ana Lee", requested_at=ASKED, status=status, decided_by=by, decision=decision)


def test_the_lowering_seen_and_still_pending_is_the_one_decided() -> None:
    assert unseen_lowering(tier=MEDIUM, requested_at=ASKED, seen=SEEN, pending=SEEN) is None


@pytest.mark.parametrize(("seen", "pending", "message"), [
    (decided("refused", "ana lee", "asked too soon"), PENDING_LOW,
     ("the lowering you saw (to medium, asked by Ana Lee at Sun 15 Jun 12:30:00 BST) was withdrawn by ana lee; the "
     "pending one asks for low (asked by Ana Lee at Sun 15 Jun 12:55:00 BST): open the case again")),
    (decided("refused", "Sam Roy", "not convinced"), None,
     ("the lowering you saw (to medium, asked by Ana Lee at Sun 15 Jun 12:30:00 BST) was refused by Sam Roy; none is "
     "pending now: open the case again")),
    (decided("replaced", "Ana Lee", "asked again"), PENDING_LOW, "was replaced: Ana Lee asked again; the pending"),
    (decided("replaced", "Sam Roy", "up decided meanwhile"), None,
     "was set aside: Sam Roy decided the tier meanwhile; none is pending now"),
    (decided("countersigned", "Sam Roy"), None, "was countersigned already, by Sam Roy; none is pending now"),
    (decided("pending", "", tier=LOW), decided("pending", "", tier=LOW),
     "(to medium, asked by Ana Lee at Sun 15 Jun 12:30:00 BST) asks for low, not medium; the pending one asks for low"),
    (None, PENDING_LOW, "no lowering to medium was asked at Sun 15 Jun 12:30:00 BST; the pending one asks for low"),
], ids=["withdrawn", "refused", "asked-again", "set-aside", "signed", "other-tier", "never-asked"])
def test_a_lowering_no_longer_pending_is_named_with_what_became_of_it_and_what_waits_now(
    seen: AskedLowering | None, pending: AskedLowering | None, message: str
) -> None:
    said = unseen_lowering(tier=MEDIUM, requested_at=ASKED, seen=seen, pending=pending)
    assert said is not None and message in said, said


@pytest.mark.parametrize(("seen", "message"), [
    (3, None),
    (2, ("the case was re-assessed (assessment 3, at Sun 15 Jun 13:00:00 BST) since you opened it (assessment 2): "
        "open it again")),
    (None, ("name the assessment of the case you read with the lowering (its number, as the case shows it); this "
           "request names none (an older console or CLI: update it, then open the case again)")),
], ids=["read", "re-assessed", "older-client"])
def test_a_lowering_is_decided_only_on_the_latest_assessment_of_the_case_read_with_it(
    seen: int | None, message: str | None
) -> None:
    assert unseen_case(seen=seen, latest=3, at=NOW) == message


@pytest.mark.parametrize(("at", "said"), [
    (datetime(2025, 6, 15, 11, 30, 5, tzinfo=UTC), "Sun 15 Jun 12:30:05 BST"),
    (datetime(2025, 12, 7, 13, 45, 12, 900, tzinfo=UTC), "Sun 07 Dec 13:45:12 GMT"),
], ids=["summer", "winter"])
def test_a_refusal_says_when_in_london_time_as_the_console_and_cli_show_it_with_seconds_and_zone(
    at: datetime, said: str
) -> None:
    assert said_at(at) == said


def test_override_refused_is_a_value_error() -> None:
    assert issubclass(OverrideRefused, ValueError)


# ---- assessments for diffs -------------------------------------------------------------------------------------


def axis(tier: Tier, *rule_ids: str, floor: Tier | None = None) -> AxisAssessment:
    return AxisAssessment(
        tier=tier,
        score=0,
        floor=floor,
        reasons=[Reason(rule_id=r, axis="likelihood", explanation=r) for r in rule_ids],
    )


LOW_AXIS = axis(LOW)


def assessed(
    likelihood: AxisAssessment = LOW_AXIS,
    harm: AxisAssessment = LOW_AXIS,
    wellbeing: AxisAssessment = LOW_AXIS,
    *,
    escalations: tuple[str, ...] = (),
) -> RiskAssessed:
    tier = Tier.highest(likelihood.tier, harm.tier, wellbeing.tier)
    reasons = [*likelihood.reasons, *harm.reasons, *wellbeing.reasons]
    reasons += [Reason(rule_id=e, axis="escalation", explanation=e) for e in escalations]
    return RiskAssessed(
        event_id="assessed:ref-1:1",
        occurred_at=NOW,
        referral_id="ref-1",
        agency_id="agency-1",
        tier=tier,
        computed_tier=tier,
        likelihood=likelihood,
        harm=harm,
        wellbeing=wellbeing,
        reasons=reasons,
        needs=[],
        focus=[],
        escalations=list(escalations),
        rules_version="1.0.0",
    )


@pytest.mark.parametrize(
    ("floors", "expected"),
    [
        ((None, None, None), None),
        ((HIGH, None, None), HIGH),
        ((None, None, MEDIUM), MEDIUM),
        ((HIGH, VERY_HIGH, MEDIUM), VERY_HIGH),
    ],
)
def test_overall_floor_is_the_highest_axis_floor(floors: tuple[Tier | None, ...], expected: Tier | None) -> None:
    likelihood, harm, wellbeing = (axis(VERY_HIGH, floor=f) for f in floors)
    assert overall_floor(assessed(likelihood, harm, wellbeing)) == expected


def test_diff_names_axes_and_rules_that_changed() -> None:
    old = assessed(axis(MEDIUM, "L01_prior", "P02_trusted_prosocial_adult"), axis(LOW), axis(MEDIUM, "W01_missing"))
    new = assessed(axis(HIGH, "L01_prior", "L10_weapon_carrying"), axis(LOW), axis(MEDIUM, "W01_missing"))
    result = diff(old, new)
    assert result == AssessmentDiff(
        old_tier=MEDIUM,
        new_tier=HIGH,
        direction="up",
        axes={"likelihood": (MEDIUM, HIGH)},
        rules_added=["L10_weapon_carrying"],
        rules_removed=["P02_trusted_prosocial_adult"],
    )
    assert result.summary() == (
        "medium → high: likelihood medium → high; new: L10_weapon_carrying; gone: P02_trusted_prosocial_adult"
    )


def test_diff_down_across_several_axes_with_an_escalation_gone() -> None:
    old = assessed(axis(HIGH, "L10_weapon_carrying"), axis(VERY_HIGH, "H01_firearm"), escalations=("E01_threat",))
    new = assessed(axis(MEDIUM), axis(LOW))
    result = diff(old, new)
    assert (result.old_tier, result.new_tier, result.direction) == (VERY_HIGH, MEDIUM, "down")
    assert result.axes == {"likelihood": (HIGH, MEDIUM), "harm": (VERY_HIGH, LOW)}
    assert result.rules_added == []
    assert result.rules_removed == ["L10_weapon_carrying", "H01_firearm", "E01_threat"]
    assert result.summary() == (
        "very_high → medium: likelihood high → medium; harm very_high → low; "
        "gone: L10_weapon_carrying, H01_firearm, E01_threat"
    )


@pytest.mark.parametrize(
    ("old", "new", "summary"),
    [
        (assessed(axis(MEDIUM, "L01")), assessed(axis(MEDIUM, "L01")), "medium (unchanged): no change"),
        (assessed(axis(MEDIUM, "L01")), assessed(axis(MEDIUM, "L02")), "medium (unchanged): new: L02; gone: L01"),
        (
            assessed(axis(HIGH), axis(LOW)),
            assessed(axis(MEDIUM), axis(HIGH)),
            "high (unchanged): likelihood high → medium; harm low → high",
        ),
    ],
)
def test_diff_with_the_same_tier(old: RiskAssessed, new: RiskAssessed, summary: str) -> None:
    result = diff(old, new)
    assert result.direction == "same"
    assert result.summary() == summary


def test_diff_compares_the_computed_tiers_not_the_overridden_ones() -> None:
    old = assessed(axis(MEDIUM)).model_copy(update={"tier": HIGH})
    assert diff(old, assessed(axis(MEDIUM))).direction == "same"


# ---- reviews ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", [VERY_HIGH, HIGH, MEDIUM, LOW])
def test_review_due_per_tier(rules: RuleSet, tier: Tier) -> None:
    due = review_due(tier=tier, last_assessed_at=NOW, rules=rules)
    assert due == NOW + timedelta(weeks=review_weeks(tier))
    assert not overdue(due, due)
    assert overdue(due, due + timedelta(seconds=1))
    assert not overdue(due, NOW)


def test_review_due_needs_a_time_zone(rules: RuleSet) -> None:
    with pytest.raises(ValueError, match="time zone"):
        review_due(tier=LOW, last_assessed_at=datetime(2025, 6, 15), rules=rules)


# ---- re-score --------------------------------------------------------------------------------------------------


def change(old: Tier, new: Tier, added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> AssessmentDiff:
    direction: Direction = "same" if old == new else "up" if new.rank > old.rank else "down"
    return AssessmentDiff(old, new, direction, {}, list(added), list(removed))


def test_rescore_counts_directions_transitions_and_reasons() -> None:
    changes = [
        ("r1", change(MEDIUM, HIGH, added=("L10_weapon_carrying",))),
        (
            "r2",
            change(MEDIUM, HIGH, added=("L10_weapon_carrying", "L11_group")),
        ),
        ("r3", change(LOW, MEDIUM, added=("L11_group",), removed=("P02_trusted",))),
        ("r4", change(HIGH, MEDIUM, removed=("L10_weapon_carrying",))),
        ("r5", change(HIGH, HIGH, added=("L99_unchanged_tier",))),  # tier kept: its rules are not reasons for a move
        ("r6", change(LOW, LOW)),
    ]
    summary = rescore_summary(changes)
    assert (summary.total, summary.unchanged, summary.up, summary.down) == (6, 2, 3, 1)
    assert summary.transitions == {(MEDIUM, HIGH): 2, (LOW, MEDIUM): 1, (HIGH, MEDIUM): 1}
    assert list(summary.transitions) == [(MEDIUM, HIGH), (LOW, MEDIUM), (HIGH, MEDIUM)]
    assert summary.rules_added == [("L10_weapon_carrying", 2), ("L11_group", 2)]
    assert summary.rules_removed == [("L10_weapon_carrying", 1), ("P02_trusted", 1)]
    assert summary.lines() == [
        "Re-scored 6 referrals: 2 unchanged, 3 up, 1 down",
        "  medium → high: 2",
        "  low → medium: 1",
        "  high → medium: 1",
        "Rules now firing in referrals whose tier changed: L10_weapon_carrying (2), L11_group (2)",
        "Rules no longer firing in referrals whose tier changed: L10_weapon_carrying (1), P02_trusted (1)",
    ]
    assert summary.lines(top=1)[-1] == (
        "Rules no longer firing in referrals whose tier changed: L10_weapon_carrying (1), and 1 more"
    )


def test_rescore_of_nothing() -> None:
    summary = rescore_summary([])
    assert (summary.total, summary.unchanged, summary.up, summary.down) == (0, 0, 0, 0)
    assert summary.lines() == ["Re-scored 0 referrals: 0 unchanged, 0 up, 0 down"]
