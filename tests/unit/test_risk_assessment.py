"""The pure risk assessment against the shipped rule set: every rule, band edge, cap, floor and escalation.

Every expected point, tier, floor and deadline is worked out here from the shipped YAML (tests/support/
shipped_rules.py), not asked of the engine: a changed weight changes the expectations with it, and only the
golden snapshot (test_risk_rules_golden.py) says that the file changed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from services.risk.assessment import Assessment, assess
from services.risk.shipped_rules import SHIPPED_RULES
from shared.contracts.codes import INDICATOR_CODES, IndexOffence, Tier
from shared.contracts.risk import Reason
from shared.contracts.rules import RuleSet, ScoredAxis, load_rules
from tests.support.risk import NOW, TODAY, referral
from tests.support.shipped_rules import (
    band_points,
    deadline_hours,
    floors,
    harm_tier,
    likelihood_points,
    months_before,
    multiplier,
    num,
    offence_points,
    points,
    protective,
    protective_applied,
    protective_cap,
    recency_bands,
    rule,
    shipped,
    static_cap,
    tier_bands,
    tier_for,
    wellbeing_points,
    window_start,
)

LOW, MEDIUM, HIGH, VERY_HIGH = Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.VERY_HIGH
DAY = timedelta(days=1)
FRESH = multiplier(TODAY, TODAY)  # the recency multiplier of an indicator observed today


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(SHIPPED_RULES)


def run(rules: RuleSet, *indicators: str | tuple[str, date | None], **facts: object) -> Assessment:
    return assess(referral(*indicators, **facts), rules, now=NOW)  # type: ignore[arg-type]


def reason(result: Assessment, rule_id: str) -> Reason:
    return next(r for r in result.reasons if r.rule_id == rule_id)


def fired(result: Assessment) -> set[str]:
    return {r.rule_id for r in result.reasons}


def points_text(value: float) -> str:
    """Points as an explanation words them: "1 point", "5 points"."""
    return f"{num(value)} point" if abs(value) == 1 else f"{num(value)} points"


def edge(rule_id: str) -> date:
    """The oldest date a windowed rule still counts."""
    return window_start(rule_id, TODAY)


def outside(rule_id: str) -> date:
    """The day before a windowed rule's window: too old to count."""
    return window_start(rule_id, TODAY) - DAY


# ---- likelihood: dynamic factors and recency ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rule_id"),
    [
        ("weapon_carrying", "L10_weapon_carrying"),
        ("group_violence", "L11_involvement_in_group_violence"),
        ("ete_disengaged", "L12_ete_disengaged"),
        ("out_of_education", "L12_ete_disengaged"),
        ("peers_offending", "L13_peers_offending"),
        ("attitudes_supporting_violence", "L14_attitudes_supporting_violence"),
        ("impulsivity_or_anger", "L15_impulsivity_or_anger_problems"),
        ("substance_use", "L16_substance_use_affecting_life"),
        ("unstructured_time", "L17_unstructured_time_late_nights"),
        ("family_conflict", "L18_family_supervision_or_conflict"),
        ("accommodation_instability", "L19_accommodation_instability"),
    ],
)
def test_each_dynamic_likelihood_factor(rules: RuleSet, code: str, rule_id: str) -> None:
    expected = points(rule_id, code) * FRESH
    result = run(rules, code)
    assert reason(result, rule_id).points == expected
    assert reason(result, rule_id).axis == "likelihood"
    assert result.likelihood.score == expected
    assert result.likelihood.could_lower == [rule_id]


def test_the_higher_of_two_codes_in_one_factor_counts(rules: RuleSet) -> None:
    result = run(rules, "ete_disengaged", "out_of_education")
    higher = max(points("L12_ete_disengaged", "ete_disengaged"), points("L12_ete_disengaged", "out_of_education"))
    assert [r.points for r in result.likelihood.reasons] == [higher]


def _recency_edges() -> list[Any]:
    """(observed, index of the recency band it falls in): today, each band's last day and the day after it."""
    rows = [pytest.param(TODAY, 0, id="today")]
    for index, (up_to, _) in enumerate(recency_bands()):
        if up_to is not None:
            last_day = months_before(TODAY, up_to)
            rows.append(pytest.param(last_day, index, id=f"exactly {up_to} months"))
            rows.append(pytest.param(last_day - DAY, index + 1, id=f"a day over {up_to} months"))
    rows.append(pytest.param(date(2019, 1, 1), len(recency_bands()) - 1, id="years ago"))
    return rows


@pytest.mark.parametrize(("observed", "band"), _recency_edges())
def test_recency_multiplier_edges(rules: RuleSet, observed: date, band: int) -> None:
    factor = recency_bands()[band][1]
    result = run(rules, ("weapon_carrying", observed))
    assert reason(result, "L10_weapon_carrying").points == pytest.approx(likelihood_points("weapon_carrying") * factor)
    assert f"× {factor} recency" in reason(result, "L10_weapon_carrying").explanation
    assert result.likelihood.could_lower == (["L10_weapon_carrying"] if factor else [])


def test_explanation_reads_well_to_a_practitioner(rules: RuleSet) -> None:
    seen = date(2025, 4, 10)
    result = run(rules, ("weapon_carrying", seen))
    assert reason(result, "L10_weapon_carrying").explanation == (
        f"Weapon carrying observed 2 months ago ({points_text(likelihood_points('weapon_carrying'))} × "
        f"{multiplier(seen, TODAY)} recency)"
    )


def test_an_indicator_without_a_date_counts_as_observed_now(rules: RuleSet) -> None:
    result = run(rules, ("weapon_carrying", None))
    assert reason(result, "L10_weapon_carrying").points == likelihood_points("weapon_carrying") * FRESH
    assert "observed less than a month ago" in reason(result, "L10_weapon_carrying").explanation


def test_a_repeated_indicator_counts_once_at_its_latest_date(rules: RuleSet) -> None:
    latest = date(2025, 3, 1)
    result = run(rules, ("weapon_carrying", date(2020, 1, 1)), ("weapon_carrying", latest))
    assert [r.points for r in result.likelihood.reasons] == [
        pytest.approx(likelihood_points("weapon_carrying") * multiplier(latest, TODAY))]


# ---- likelihood: static history ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", [0, 1, 2, 3, 4, 25])
def test_prior_proven_offence_bands(rules: RuleSet, prior: int) -> None:
    result = run(rules, prior=prior)
    assert reason(result, "L01_prior_proven_offences").points == band_points("L01_prior_proven_offences", prior)
    assert reason(result, "L01_prior_proven_offences").explanation.startswith(f"Prior proven offences: {prior} (")


@pytest.mark.parametrize("age", [8, 13, 14, 15, 16, 21])
def test_age_at_first_proven_offence_bands(rules: RuleSet, age: int) -> None:
    assert reason(run(rules, age_first=age), "L02_age_at_first_proven_offence").points == band_points(
        "L02_age_at_first_proven_offence", age)


@pytest.mark.parametrize(
    "offence",
    [
        "none_prevention_referral",
        "other",
        "acquisitive",
        "drug_supply",
        "violence_no_weapon",
        "robbery",
        "violence_with_weapon_or_firearm",
    ],
)
def test_index_offence_points(rules: RuleSet, offence: IndexOffence) -> None:
    assert reason(run(rules, index_offence=offence), "L03_index_offence_type").points == offence_points(offence)


@pytest.mark.parametrize(
    ("code", "rule_id"),
    [
        ("previous_breach", "L04_previous_breach_or_intervention_failure"),
        ("custody_history", "L05_custody_history"),
    ],
)
def test_static_indicators_score_without_recency(rules: RuleSet, code: str, rule_id: str) -> None:
    result = run(rules, (code, date(2015, 1, 1)))
    assert reason(result, rule_id).points == points(rule_id, code)
    assert result.likelihood.could_lower == []


def test_missing_history_scores_nothing(rules: RuleSet) -> None:
    result = run(rules)
    assert result.likelihood.reasons == [] and result.likelihood.score == 0


HEAVY_HISTORY = {"prior": 4, "age_first": 12, "index_offence": "robbery"}  # with a breach and custody: over the cap


def heavy_history_points() -> float:
    """The static points of HEAVY_HISTORY with a previous breach and custody, before the cap."""
    return (band_points("L01_prior_proven_offences", 4) + band_points("L02_age_at_first_proven_offence", 12)
            + offence_points("robbery") + likelihood_points("previous_breach") + likelihood_points("custody_history"))


def test_static_history_is_capped(rules: RuleSet) -> None:
    before, cap = heavy_history_points(), static_cap()
    assert before > cap, "this history must outweigh the static cap: make it heavier"
    result = run(rules, "previous_breach", "custody_history", **HEAVY_HISTORY)
    assert reason(result, "static_cap").points == cap - before
    assert result.likelihood.score == cap
    assert reason(result, "static_cap").explanation == (
        f"Static history capped at {points_text(cap)} ({num(before)} before the cap)")


def test_the_static_cap_does_not_limit_dynamic_factors(rules: RuleSet) -> None:
    assert heavy_history_points() > static_cap(), "this history must outweigh the static cap: make it heavier"
    result = run(rules, "weapon_carrying", "previous_breach", "custody_history", **HEAVY_HISTORY)
    assert result.likelihood.score == static_cap() + likelihood_points("weapon_carrying") * FRESH


# ---- tiers -------------------------------------------------------------------------------------------------------


def _tier_edges() -> list[Any]:
    """(axis, score, tier): each band's first and last score, a fraction past its last, and far into the open one."""
    rows = []
    for axis in ("likelihood", "wellbeing"):
        for tier, low, high in tier_bands(axis):
            rows.append(pytest.param(axis, low, tier, id=f"{axis} {low}"))
            if high is None:
                rows.append(pytest.param(axis, low + 14, tier, id=f"{axis} {low + 14}"))
            else:
                rows.append(pytest.param(axis, high, tier, id=f"{axis} {high}"))
                rows.append(pytest.param(axis, high + 0.75, tier, id=f"{axis} {high + 0.75}"))
    return rows


@pytest.mark.parametrize(("axis", "score", "tier"), _tier_edges())
def test_tier_threshold_edges(rules: RuleSet, axis: ScoredAxis, score: float, tier: Tier) -> None:
    assert rules.tier_for(axis, score) == tier


@pytest.mark.parametrize("extra", [(), ("unstructured_time",)])
def test_likelihood_tier_edge_end_to_end(rules: RuleSet, extra: tuple[str, ...]) -> None:
    # with the shipped weights the two sit either side of the low/medium edge
    score = (band_points("L01_prior_proven_offences", 4) + band_points("L02_age_at_first_proven_offence", 14)
             + offence_points("other") + sum(likelihood_points(code) * FRESH for code in extra))
    result = run(rules, *extra, prior=4, age_first=14, index_offence="other")
    assert (result.likelihood.score, result.likelihood.tier) == (score, tier_for("likelihood", score))


@pytest.mark.parametrize(
    "indicators",
    [
        ("drug_debt",),
        ("drug_debt", "learning_needs"),
        ("drug_debt", "found_out_of_area", "learning_needs", "unexplained_money"),
    ],
)
def test_wellbeing_tier_edges_end_to_end(rules: RuleSet, indicators: tuple[str, ...]) -> None:
    score = sum(wellbeing_points(code) for code in indicators)
    result = run(rules, *indicators)
    assert (result.wellbeing.score, result.wellbeing.tier) == (score, tier_for("wellbeing", score))


def test_overall_tier_is_the_highest_axis(rules: RuleSet) -> None:
    seen = outside("HR10_weapon_carrying_recent")  # older weapon carrying: history, not recent harm
    result = run(rules, ("weapon_carrying", seen), "learning_needs")
    likelihood = tier_for("likelihood", likelihood_points("weapon_carrying") * multiplier(seen, TODAY))
    harm = harm_tier("HR20_violence_or_weapon_history")
    wellbeing = tier_for("wellbeing", wellbeing_points("learning_needs"))
    assert (result.likelihood.tier, result.harm.tier, result.wellbeing.tier) == (likelihood, harm, wellbeing)
    assert result.tier == Tier.highest(likelihood, harm, wellbeing)


# ---- wellbeing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rule_id"),
    [
        ("missing_episodes", "W01_missing_episodes_90d"),
        ("currently_missing", "W01_missing_episodes_90d"),
        ("found_out_of_area", "W02_found_or_arrested_out_of_area"),
        ("unexplained_money", "W03_unexplained_money_items_phones"),
        ("older_controlling_associates", "W04_older_or_controlling_associates"),
        ("drug_debt", "W05_drug_debt_or_owing"),
        ("unexplained_injuries", "W06_unexplained_injuries"),
        ("recent_violent_victimisation", "W07_recent_violent_victimisation_3m"),
        ("self_harm", "W08_self_harm_or_suicidal_ideation_6m"),
        ("out_of_education", "W09_out_of_education"),
        ("looked_after", "W10_looked_after_or_care_leaver"),
        ("substance_use", "W11_substance_misuse"),
        ("home_cuckooed", "W12_home_cuckooed_or_family_exploited"),
        ("threats_received", "W13_fear_of_reprisal_or_threats_received"),
        ("learning_needs", "W14_send_slcn_learning_disability"),
        ("sexual_exploitation", "W16_cse_indicators"),
    ],
)
def test_each_wellbeing_factor(rules: RuleSet, code: str, rule_id: str) -> None:
    result = run(rules, code)
    assert reason(result, rule_id).points == points(rule_id, code)
    assert reason(result, rule_id).axis == "wellbeing"
    assert result.wellbeing.score == points(rule_id, code)


@pytest.mark.parametrize(
    ("code", "observed", "counts"),
    [
        ("missing_episodes", edge("W01_missing_episodes_90d"), True),
        ("missing_episodes", outside("W01_missing_episodes_90d"), False),
        ("recent_violent_victimisation", edge("W07_recent_violent_victimisation_3m"), True),
        ("recent_violent_victimisation", outside("W07_recent_violent_victimisation_3m"), False),
        ("self_harm", edge("W08_self_harm_or_suicidal_ideation_6m"), True),
        ("self_harm", outside("W08_self_harm_or_suicidal_ideation_6m"), False),
        ("drug_debt", date(2020, 1, 1), True),  # no window
    ],
)
def test_wellbeing_windows(rules: RuleSet, code: str, observed: date, counts: bool) -> None:
    assert (run(rules, (code, observed)).wellbeing.score > 0) is counts


def test_victimisation_never_scores_likelihood(rules: RuleSet) -> None:
    result = run(rules, "recent_violent_victimisation", "sexual_exploitation", "threats_received", "home_cuckooed")
    assert result.likelihood.reasons == []


def test_could_lower_lists_changeable_factors_only(rules: RuleSet) -> None:
    result = run(rules, "drug_debt", "looked_after", "learning_needs")
    assert result.wellbeing.could_lower == ["W05_drug_debt_or_owing"]


@pytest.mark.parametrize(("code", "flag"), [("learning_needs", "responsivity"), ("risk_to_staff", "risk_to_staff")])
def test_flags(rules: RuleSet, code: str, flag: str) -> None:
    assert run(rules, code).flags == [flag]


# ---- protective factors ------------------------------------------------------------------------------------------

RISKY = ("weapon_carrying", "group_violence", "drug_debt", "older_controlling_associates")
RISKY_SCORES = {"likelihood": sum(likelihood_points(code) * FRESH for code in RISKY),
                "wellbeing": sum(wellbeing_points(code) for code in RISKY)}
EVERY_PROTECTIVE_FACTOR = tuple(factor["input"] for factor in shipped()["protective"]["factors"])


def offered_by_all(axis: str) -> float:
    """What every protective factor together offers off one axis, before the cap."""
    return sum(protective(factor["id"]).get(axis, 0.0) for factor in shipped()["protective"]["factors"])


@pytest.mark.parametrize(
    ("code", "rule_id"),
    [
        ("engaged_in_education", "P01_engaged_in_ete_attendance_ge_80"),
        ("trusted_prosocial_adult", "P02_trusted_prosocial_adult"),
        ("prosocial_activity", "P03_regular_prosocial_activity"),
        ("motivation_to_change", "P04_motivation_to_change"),
        ("positive_attitude_to_support", "P05_positive_attitude_to_support"),
        ("coping_resilience", "P06_coping_resilience"),
        ("safe_stable_home", "P07_safe_stable_home_and_supervision"),
    ],
)
def test_each_protective_factor(rules: RuleSet, code: str, rule_id: str) -> None:
    offered = protective(rule_id)
    result = run(rules, *RISKY, protective=(code,))
    for axis in ("likelihood", "wellbeing"):
        raw = RISKY_SCORES[axis]
        assert getattr(result, axis).score == raw + protective_applied(raw, offered.get(axis, 0.0)), axis
    applied = {r.axis: r.points for r in result.reasons if r.rule_id == rule_id}
    assert applied == offered


def test_protective_factors_are_capped_per_axis(rules: RuleSet) -> None:
    cap = protective_cap()
    offered = {axis: offered_by_all(axis) for axis in ("likelihood", "wellbeing")}
    assert all(offered[axis] < cap and RISKY_SCORES[axis] + cap >= 0 for axis in offered), (
        "every factor together must offer more than the cap on each axis, off scores the cap does not empty")
    result = run(rules, *RISKY, protective=EVERY_PROTECTIVE_FACTOR)
    assert (result.likelihood.score, result.wellbeing.score) == (
        RISKY_SCORES["likelihood"] + cap, RISKY_SCORES["wellbeing"] + cap)
    limits = {r.axis: r.points for r in result.reasons if r.rule_id == "protective_limit"}
    assert limits == {axis: cap - offered[axis] for axis in offered}
    assert reason(result, "protective_limit").explanation == (
        f"Protective factors capped at {points_text(cap)} per axis ({num(offered['likelihood'])} offered, "
        f"{num(cap)} applied)"
    )


def test_protective_factors_never_take_a_score_below_zero(rules: RuleSet) -> None:
    raw = likelihood_points("unstructured_time") * FRESH
    offered = protective("P02_trusted_prosocial_adult")["likelihood"]
    assert max(offered, protective_cap()) < -raw, "the adult must offer more than the score has"
    result = run(rules, "unstructured_time", protective=("trusted_prosocial_adult",))
    assert result.likelihood.score == 0
    assert reason(result, "protective_limit").points == -raw - offered
    assert "does not go below zero" in reason(result, "protective_limit").explanation


def test_protective_factors_are_not_listed_on_an_axis_with_nothing_to_reduce(rules: RuleSet) -> None:
    result = run(rules, "weapon_carrying", protective=("trusted_prosocial_adult",))
    assert [r.rule_id for r in result.likelihood.reasons] == ["L10_weapon_carrying", "P02_trusted_prosocial_adult"]
    assert (result.wellbeing.reasons, result.wellbeing.score) == ([], 0)


def test_protective_factors_do_not_lower_a_floor(rules: RuleSet) -> None:
    raw = wellbeing_points("currently_missing")
    score = raw + protective_applied(raw, offered_by_all("wellbeing"))
    floor = floors("E05_missing")["wellbeing"]
    assert tier_for("wellbeing", score).rank < floor.rank, "the protective factors must take the score under the floor"
    result = run(rules, "currently_missing", protective=EVERY_PROTECTIVE_FACTOR)
    assert result.wellbeing.score == score
    assert (result.wellbeing.floor, result.wellbeing.tier) == (floor, floor)


@pytest.mark.parametrize(
    "indicators",
    [RISKY, ("weapon_carrying", "self_harm", "drug_debt"), ("unstructured_time", "looked_after"), ()],
)
@pytest.mark.parametrize(
    "protective",
    [
        (),
        ("trusted_prosocial_adult",),
        ("trusted_prosocial_adult", "safe_stable_home", "engaged_in_education", "coping_resilience"),
    ],
)
def test_reasons_add_up_to_the_score(rules: RuleSet, indicators: tuple[str, ...], protective: tuple[str, ...]) -> None:
    result = run(rules, *indicators, protective=protective, prior=5, age_first=12, index_offence="robbery")
    for axis in (result.likelihood, result.wellbeing):
        assert round(sum(r.points for r in axis.reasons), 2) == axis.score


# ---- harm --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("indicators", "offence", "rule_id"),
    [
        (("threat_to_life_warning", "weapon_carrying"), None, "HR01_threat_to_life_warning"),
        (("intent_to_use_weapon", "threat_to_life_warning"), None, "HR01_threat_to_life_warning"),
        (("intent_to_use_weapon", "weapon_carrying"), None, "HR02_intent_to_use_weapon"),
        (("weapon_carrying",), "robbery", "HR10_weapon_carrying_recent"),
        ((("weapon_carrying", edge("HR10_weapon_carrying_recent")),), None, "HR10_weapon_carrying_recent"),
        ((("weapon_carrying", outside("HR10_weapon_carrying_recent")),), None, "HR20_violence_or_weapon_history"),
        (("group_violence",), None, "HR11_group_violence_recent"),
        ((("group_violence", outside("HR11_group_violence_recent")),), None, "HR20_violence_or_weapon_history"),
        ((), "violence_with_weapon_or_firearm", "HR12_index_offence_with_weapon"),
        (
            (("group_violence", outside("HR11_group_violence_recent")),),
            "violence_with_weapon_or_firearm",
            "HR12_index_offence_with_weapon",
        ),
        ((), "robbery", "HR21_violent_index_offence"),
        ((), "violence_no_weapon", "HR21_violent_index_offence"),
        (("risk_to_staff",), None, "HR22_hostility_to_professionals"),
    ],
)
def test_harm_first_match_wins(
    rules: RuleSet, indicators: tuple[str, ...], offence: IndexOffence | None, rule_id: str
) -> None:
    tier = harm_tier(rule_id)
    result = run(rules, *indicators, index_offence=offence)
    assert [r.rule_id for r in result.harm.reasons] == [rule_id]
    assert (result.harm.tier, result.harm.score) == (tier, tier.rank)


@pytest.mark.parametrize(
    ("indicators", "offence"),
    [((), None), ((("risk_to_staff", outside("HR22_hostility_to_professionals")),), None),
     (("drug_debt",), "drug_supply")],
)
def test_harm_is_low_otherwise(rules: RuleSet, indicators: tuple[str, ...], offence: IndexOffence | None) -> None:
    result = run(rules, *indicators, index_offence=offence)
    assert (result.harm.tier, result.harm.score, result.harm.reasons) == (LOW, 0, [])


def test_harm_from_the_index_offence_alone_cannot_be_lowered(rules: RuleSet) -> None:
    assert run(rules, index_offence="robbery").harm.could_lower == []
    assert run(rules, "weapon_carrying").harm.could_lower == ["HR10_weapon_carrying_recent"]


# ---- escalations -------------------------------------------------------------------------------------------------

CCE = ("missing_episodes", "found_out_of_area", "unexplained_money")


@pytest.mark.parametrize(
    ("indicators", "rule_id"),
    [
        (("intent_to_use_weapon",), "E01_immediate_danger"),
        (("threat_to_life_warning",), "E02_threat_to_life_warning"),
        (("recent_violent_victimisation",), "E03_recent_serious_victimisation"),
        (("weapon_carrying",), "E04_weapon_disclosure"),
        (("currently_missing",), "E05_missing"),
        (("sexual_exploitation",), "E06_sexual_exploitation_or_abuse"),
        (CCE, "E07_criminal_exploitation"),
        (("self_harm",), "E08_suicide_self_harm_current"),
        (("risk_to_staff",), "E09_risk_to_staff"),
    ],
)
def test_each_escalation_sets_its_floors(rules: RuleSet, indicators: tuple[str, ...], rule_id: str) -> None:
    expected_floors = floors(rule_id)
    result = run(rules, *indicators)
    assert [e.rule_id for e in result.escalations] == [rule_id]
    escalation = result.escalations[0]
    assert escalation.floors == expected_floors
    assert escalation.deadline == NOW + timedelta(hours=deadline_hours(rule_id))
    assert escalation.actions
    assert Reason(rule_id=rule_id, axis="escalation", explanation=escalation.explanation) in result.reasons
    for axis, floor in expected_floors.items():
        assessed = getattr(result, axis)
        assert assessed.floor == floor and assessed.tier.rank >= floor.rank
    assert result.tier.rank >= max((floor.rank for floor in expected_floors.values()), default=0)


def test_immediate_danger_supersedes_weapon_disclosure(rules: RuleSet) -> None:
    result = run(rules, "weapon_carrying", "intent_to_use_weapon")
    assert [e.rule_id for e in result.escalations] == ["E01_immediate_danger"]


def test_floors_from_several_escalations_take_the_highest(rules: RuleSet) -> None:
    highest = Tier.highest(floors("E05_missing")["wellbeing"], floors("E06_sexual_exploitation_or_abuse")["wellbeing"])
    result = run(rules, "currently_missing", "sexual_exploitation")
    assert (result.wellbeing.floor, result.wellbeing.tier) == (highest, highest)


@pytest.mark.parametrize(
    ("indicators", "rule_id", "fires"),
    [
        ((("recent_violent_victimisation", edge("E03_recent_serious_victimisation")),),
         "E03_recent_serious_victimisation", True),
        ((("recent_violent_victimisation", outside("E03_recent_serious_victimisation")),),
         "E03_recent_serious_victimisation", False),
        ((("weapon_carrying", edge("E04_weapon_disclosure")),), "E04_weapon_disclosure", True),
        ((("weapon_carrying", outside("E04_weapon_disclosure")),), "E04_weapon_disclosure", False),
        ((("self_harm", edge("E08_suicide_self_harm_current")),), "E08_suicide_self_harm_current", True),
        ((("self_harm", outside("E08_suicide_self_harm_current")),), "E08_suicide_self_harm_current", False),
    ],
)
def test_escalation_windows(rules: RuleSet, indicators: tuple[tuple[str, date]], rule_id: str, fires: bool) -> None:
    assert (rule_id in fired(run(rules, *indicators))) is fires


def cce_fires(indicators: tuple[str, ...]) -> bool:
    """Whether E07 counts enough of its indicators among these."""
    when = rule("E07_criminal_exploitation")["when"]
    at_least: int = when["at_least"]
    return len(set(indicators) & set(when["count_of"])) >= at_least


@pytest.mark.parametrize(
    "indicators",
    [
        CCE[:2],
        CCE,
        ("drug_debt", "unexplained_injuries"),
        ("drug_debt", "unexplained_injuries", "home_cuckooed"),
        ("older_controlling_associates", "threats_received", "drug_debt", "home_cuckooed"),
        ("missing_episodes", "found_out_of_area", "currently_missing"),  # E05, not a CCE count
    ],
)
def test_criminal_exploitation_needs_enough_indicators(rules: RuleSet, indicators: tuple[str, ...]) -> None:
    result = run(rules, *indicators)
    assert ("E07_criminal_exploitation" in fired(result)) is cce_fires(indicators)


def test_cce_explanation_counts_the_indicators(rules: RuleSet) -> None:
    assert reason(run(rules, *CCE), "E07_criminal_exploitation").explanation.startswith(
        "3 criminal exploitation indicators (missing from home"
    )


def test_no_escalation_without_triggers(rules: RuleSet) -> None:
    result = run(rules, "peers_offending", prior=2)
    assert (result.escalations, result.flags) == ([], [])
    assert all(axis.floor is None for axis in (result.likelihood, result.harm, result.wellbeing))


# ---- needs -------------------------------------------------------------------------------------------------------


def test_needs_sorted_by_score_then_code_and_top_three_focus(rules: RuleSet) -> None:
    result = run(rules, "drug_debt", "self_harm", "learning_needs", "peers_offending")
    assert [(n.code, n.score) for n in result.needs] == [
        ("N07", 2),
        ("N12", 2),
        ("N04", 1),
        ("N05", 1),
        ("N06", 1),
        ("N09", 1),
    ]
    assert result.focus == ["N07", "N12", "N04"]
    assert result.needs[0].name == "Emotional wellbeing & mental health"


@pytest.mark.parametrize(
    ("indicators", "facts", "code", "score"),
    [
        (("ete_disengaged",), {}, "N01", 1),
        (("out_of_education",), {}, "N01", 2),  # significant
        (("ete_disengaged", "out_of_education"), {}, "N01", 2),
        (("peers_offending",), {}, "N04", 1),
        (("peers_offending", "unstructured_time"), {}, "N04", 2),  # two signals
        (("learning_needs",), {}, "N09", 1),
        ((), {"index_offence": "other"}, "N15", 1),
        ((), {"index_offence": "other", "prior": 1}, "N15", 2),
        ((), {"prior": 0}, "N15", 0),
        ((), {"index_offence": "none_prevention_referral"}, "N15", 0),
        (("previous_breach",), {}, "N15", 2),
        ((), {"index_offence": "drug_supply"}, "N05", 1),
        (("sexual_exploitation",), {}, "N05", 2),
    ],
)
def test_need_scores(
    rules: RuleSet, indicators: tuple[str, ...], facts: dict[str, object], code: str, score: int
) -> None:
    scores = {n.code: n.score for n in run(rules, *indicators, **facts).needs}
    assert scores.get(code, 0) == score


@pytest.mark.parametrize(("indicators", "focus"), [((), []), (("learning_needs",), ["N09"])])
def test_focus_holds_only_needs_found(rules: RuleSet, indicators: tuple[str, ...], focus: list[str]) -> None:
    assert run(rules, *indicators).focus == focus


# ---- dates intake refuses now, but that may be stored from before --------------------------------------------------


def test_an_indicator_observed_in_year_9999_scores_as_one_observed_today(rules: RuleSet) -> None:
    every = sorted(INDICATOR_CODES)
    assert run(rules, *((code, date(9999, 12, 31)) for code in every)) == run(rules, *every)
    assert run(rules, ("threat_to_life_warning", date(9999, 6, 1))) == run(rules, "threat_to_life_warning")


def test_an_indicator_observed_in_year_1_scores_as_old_history(rules: RuleSet) -> None:
    every = sorted(INDICATOR_CODES)
    ancient = run(rules, *((code, date(1, 1, 1)) for code in every))
    old = run(rules, *((code, TODAY - timedelta(days=30 * 365)) for code in every))
    assert ancient.tier == old.tier
    assert [(r.rule_id, r.points) for r in ancient.reasons] == [(r.rule_id, r.points) for r in old.reasons]


# ---- the whole -------------------------------------------------------------------------------------------------


def test_reasons_are_every_axis_reason_then_each_escalation(rules: RuleSet) -> None:
    result = run(rules, "weapon_carrying", "drug_debt", "risk_to_staff", protective=("coping_resilience",), prior=1)
    axis_reasons = [*result.likelihood.reasons, *result.harm.reasons, *result.wellbeing.reasons]
    escalations = [r for r in result.reasons if r.axis == "escalation"]
    assert result.reasons == axis_reasons + escalations
    assert [r.rule_id for r in escalations] == ["E04_weapon_disclosure", "E09_risk_to_staff"]


def test_explanations_hold_no_personal_data(rules: RuleSet) -> None:
    result = run(rules, *CCE, "weapon_carrying", "self_harm", protective=("coping_resilience",), prior=3, age_first=13)
    texts = [r.explanation for r in result.reasons] + [e.explanation for e in result.escalations]
    assert texts and not any(word in text for text in texts for word in ("Hackney", "Some Estate", "male", "ref-1"))


def test_the_assessment_is_pure(rules: RuleSet) -> None:
    case = referral("weapon_carrying", "drug_debt", prior=2)
    assert assess(case, rules, now=NOW) == assess(case, rules, now=NOW)


def test_rules_version_is_recorded(rules: RuleSet) -> None:
    assert run(rules).rules_version == rules.version == shipped()["version"]
