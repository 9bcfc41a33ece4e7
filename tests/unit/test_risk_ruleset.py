"""The rules file: the shipped one loads; defective ones are refused with the file, line and problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.risk.shipped_rules import SHIPPED_RULES
from shared.contracts.codes import INDICATOR_CODES, PROTECTIVE_FACTOR_CODES, Tier
from shared.contracts.rules import (
    ALLOWED_INPUTS,
    RulesError,
    RuleSet,
    load_rules,
    prohibited_reason,
)
from tests.support.shipped_rules import band, review_weeks
from tests.support.shipped_rules import shipped as shipped_data

Data = dict[str, Any]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(SHIPPED_RULES)


@pytest.fixture(scope="module")
def shipped() -> Data:
    data: Data = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, data: Data) -> tuple[Path, str]:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def _line_of(text: str, *needles: str) -> int:
    """The line holding the last needle, each needle searched for after the line of the one before."""
    lines = text.splitlines()
    at = 0
    for needle in needles:
        at = next(n for n in range(at + 1, len(lines) + 1) if needle in lines[n - 1])
    return at


def _refused(path: Path) -> RulesError:
    with pytest.raises(RulesError) as info:
        load_rules(path)
    return info.value


def _factor(data: Data, section: str, rule_id: str) -> Data:
    """The rule with this id in a list such as likelihood.dynamic or escalations."""
    node: Any = data
    for key in section.split("."):
        node = node[key]
    found: Data = next(rule for rule in node if rule["id"] == rule_id)
    return found


# ---- the shipped file --------------------------------------------------------------------------------------------


def test_shipped_rules_load(rules: RuleSet) -> None:
    data = shipped_data()
    assert (rules.id, rules.version) == (data["id"], data["version"])
    assert [area.code for area in rules.needs.areas] == [f"N{n:02}" for n in range(1, len(data["needs"]["areas"]) + 1)]
    assert [e.id[:3] for e in rules.escalations] == [f"E{n:02}" for n in range(1, len(data["escalations"]) + 1)]


def test_load_rules_defaults_to_the_shipped_file(rules: RuleSet) -> None:
    assert load_rules(SHIPPED_RULES) == rules
    assert SHIPPED_RULES.is_file()


def test_every_contract_code_has_a_meaning(rules: RuleSet) -> None:
    assert set(rules.indicator_meanings()) == INDICATOR_CODES
    assert set(rules.protective_meanings()) == PROTECTIVE_FACTOR_CODES
    assert all(
        meaning.strip() for meaning in [*rules.indicator_meanings().values(), *rules.protective_meanings().values()]
    )


def test_every_indicator_code_is_read_by_some_rule(rules: RuleSet) -> None:
    factors = [*rules.likelihood.static.indicators, *rules.likelihood.dynamic, *rules.wellbeing.factors]
    read = {code for factor in factors for code in factor.points}
    read |= {code for rule in rules.harm.rules for code in rule.when.codes}
    read |= {code for escalation in rules.escalations for code in escalation.when.codes}
    assert read == INDICATOR_CODES


def test_no_allowed_input_is_a_prohibited_one() -> None:
    assert {"index_offence", "prior_proven_offences", "age_at_first_proven_offence"} < ALLOWED_INPUTS
    assert [name for name in ALLOWED_INPUTS if prohibited_reason(name)] == []


@pytest.mark.parametrize("tier", [Tier.VERY_HIGH, Tier.HIGH, Tier.MEDIUM, Tier.LOW])
def test_review_weeks(rules: RuleSet, tier: Tier) -> None:
    assert rules.review_weeks(tier) == review_weeks(tier)


def test_a_copy_of_the_shipped_file_loads(tmp_path: Path, shipped: Data, rules: RuleSet) -> None:
    path, _ = _write(tmp_path, shipped)
    assert load_rules(path) == rules


# ---- defects -----------------------------------------------------------------------------------------------------


def _set(section: str, rule_id: str, key: str, value: Any) -> Callable[[Data], None]:
    def edit(data: Data) -> None:
        _factor(data, section, rule_id)[key] = value

    return edit


def _bands(rule_id: str, bands: dict[str, int]) -> Callable[[Data], None]:
    return _set("likelihood.static.counts", rule_id, "bands", bands)


def _tier(axis: str, tier: str, band: str | None) -> Callable[[Data], None]:
    def edit(data: Data) -> None:
        if band is None:
            del data["tiers"][axis][tier]
        else:
            data["tiers"][axis][tier] = band

    return edit


def _bounded(axis: str, tier: str) -> tuple[str, int]:
    """A shipped tier band that has an end: its label and its last score."""
    label = str(shipped_data()["tiers"][axis][tier])
    _, last = band(label)
    assert last is not None, f"{axis} {tier} is the open band"
    return label, last


# tier bands made faulty by moving one edge of a shipped band by a point
LIKELIHOOD_LOW, LIKELIHOOD_LOW_END = _bounded("likelihood", "low")
OVERLAPPING_MEDIUM = f"{LIKELIHOOD_LOW_END}-{_bounded('likelihood', 'medium')[1]}"  # starts on low's last score
WELLBEING_MEDIUM, WELLBEING_MEDIUM_END = _bounded("wellbeing", "medium")
GAPPED_HIGH = f"{WELLBEING_MEDIUM_END + 2}-{_bounded('wellbeing', 'high')[1]}"  # skips the score after medium


def _duplicate_id(data: Data) -> None:
    _factor(data, "likelihood.dynamic", "L11_involvement_in_group_violence")["id"] = "L10_weapon_carrying"


def _duplicate_id_across_sections(data: Data) -> None:
    _factor(data, "escalations", "E09_risk_to_staff")["id"] = "W01_missing_episodes_90d"


def _swap_harm_rules(data: Data) -> None:
    rules = data["harm"]["rules"]
    rules[0], rules[2] = rules[2], rules[0]


def _unknown_meaning(data: Data) -> None:
    data["indicators"]["knife_crime"] = "Knife crime"


def _missing_meaning(data: Data) -> None:
    del data["indicators"]["drug_debt"]


def _missing_axis(data: Data) -> None:
    del data["tiers"]["wellbeing"]


def _missing_review(data: Data) -> None:
    del data["reassess_every_weeks"]["high"]


def _extra_key(data: Data) -> None:
    data["likelihood"]["dynamic"][0]["weight"] = 2


def _scored_twice(data: Data) -> None:
    _factor(data, "likelihood.dynamic", "L13_peers_offending")["points"] = {"peers_offending": 2, "weapon_carrying": 1}


def _recency_overlap(data: Data) -> None:
    data["recency"][1]["up_to_months"] = 6


def _recency_not_open(data: Data) -> None:
    data["recency"].pop()


def _protective_twice(data: Data) -> None:
    data["protective"]["factors"][1]["input"] = "engaged_in_education"


# (case, edit, message fragment, needles that find the line at fault: each searched for after the one before)
DEFECTS: list[tuple[str, Callable[[Data], None], str, tuple[str, ...]]] = [
    (
        "unknown indicator code",
        _set("likelihood.dynamic", "L10_weapon_carrying", "points", {"weapon_carying": 5}),
        "unknown indicator code 'weapon_carying' is not an allowed input",
        ("weapon_carying",),
    ),
    (
        "unknown indicator code in an escalation",
        _set("escalations", "E05_missing", "when", {"any_of": ["gone_missing"]}),
        "unknown indicator code 'gone_missing' is not an allowed input",
        ("gone_missing",),
    ),
    ("unknown indicator meaning", _unknown_meaning, "unknown indicator code 'knife_crime'", ("knife_crime",)),
    (
        "unknown protective code",
        _set("protective.factors", "P02_trusted_prosocial_adult", "input", "good_vibes"),
        "unknown protective factor code 'good_vibes' is not an allowed input",
        ("good_vibes",),
    ),
    (
        "duplicate rule id",
        _duplicate_id,
        "duplicate rule id 'L10_weapon_carrying'",
        ("id: L10_weapon_carrying", "id: L10_weapon_carrying"),
    ),
    (
        "duplicate rule id across sections",
        _duplicate_id_across_sections,
        "duplicate rule id 'W01_missing_episodes_90d'",
        ("id: W01_missing_episodes_90d", "id: W01_missing_episodes_90d"),
    ),
    (
        "overlapping bands",
        _bands("L01_prior_proven_offences", {"0": 0, "1": 2, "1-3": 4, "4+": 6}),
        "bands '1' and '1-3' overlap",
        ("1-3:",),
    ),
    (
        "gap between bands",
        _bands("L01_prior_proven_offences", {"0": 0, "1": 2, "4+": 6}),
        "gap between bands '1' and '4+': values 2-3 are not covered",
        ("4+:",),
    ),
    (
        "gap below the first band",
        _bands("L02_age_at_first_proven_offence", {"10-13": 3, "14-15": 2, ">=16": 1}),
        "gap below band '10-13': values 0-9 are not covered by any band",
        ("10-13:",),
    ),
    (
        "bands not open at the top",
        _bands("L01_prior_proven_offences", {"0": 0, "1": 2, "2-3": 4}),
        "bands stop at '2-3': values above 3 are not covered",
        ("2-3:",),
    ),
    (
        "malformed band",
        _bands("L01_prior_proven_offences", {"0": 0, "one": 2, "2+": 4}),
        "band 'one' is not",
        ("one:",),
    ),
    (
        "overlapping tier thresholds",
        _tier("likelihood", "medium", OVERLAPPING_MEDIUM),
        f"bands '{LIKELIHOOD_LOW}' and '{OVERLAPPING_MEDIUM}' overlap",
        (f"medium: {OVERLAPPING_MEDIUM}",),
    ),
    (
        "gap between tier thresholds",
        _tier("wellbeing", "high", GAPPED_HIGH),
        f"gap between bands '{WELLBEING_MEDIUM}' and '{GAPPED_HIGH}': value {WELLBEING_MEDIUM_END + 1} is not covered",
        (f"high: {GAPPED_HIGH}",),
    ),
    (
        "missing tier threshold",
        _tier("likelihood", "very_high", None),
        "missing tier threshold for 'very_high'",
        ("tiers:", "likelihood:"),
    ),
    ("missing axis thresholds", _missing_axis, "missing required key 'wellbeing'", ("tiers:",)),
    ("missing review interval", _missing_review, "missing review interval for 'high'", ("reassess_every_weeks:",)),
    (
        "indicator without a meaning",
        _missing_meaning,
        "indicator code(s) 'drug_debt' have no meaning",
        ("indicators:",),
    ),
    (
        "harm rules out of order",
        _swap_harm_rules,
        "harm rule HR02_intent_to_use_weapon (very_high) comes after HR10_weapon_carrying_recent (high)",
        ("tier: very_high",),
    ),
    (
        "unknown explanation placeholder",
        _set("likelihood.dynamic", "L10_weapon_carrying", "explanation", "Weapon seen by {name}"),
        "explanation uses unknown placeholder {name}",
        ("Weapon seen by",),
    ),
    (
        "unless names no earlier escalation",
        _set("escalations", "E04_weapon_disclosure", "unless", ["E09_risk_to_staff"]),
        "'E09_risk_to_staff' is not an earlier escalation",
        ("- E09_risk_to_staff",),
    ),
    (
        "victimisation on the likelihood axis",
        _set("likelihood.dynamic", "L13_peers_offending", "points", {"recent_violent_victimisation": 2}),
        "'recent_violent_victimisation' is a prohibited likelihood input: being a victim feeds wellbeing only",
        ("recent_violent_victimisation: 2",),
    ),
    (
        "indicator scored twice on one axis",
        _scored_twice,
        "indicator 'weapon_carrying' already scores likelihood in another rule",
        ("weapon_carrying: 1",),
    ),
    ("unexpected key", _extra_key, "unexpected key 'weight': not part of the rules schema", ("weight: 2",)),
    ("recency bands overlap", _recency_overlap, "recency bands overlap", ("up_to_months: 6", "up_to_months: 6")),
    ("recency not open", _recency_not_open, "the last recency band must be `older: true`", ("up_to_months: 24",)),
    (
        "protective code twice",
        _protective_twice,
        "protective factor 'engaged_in_education' is scored twice",
        ("input: engaged_in_education", "input: engaged_in_education"),
    ),
    (
        "positive protective points",
        _set("protective.factors", "P02_trusted_prosocial_adult", "likelihood", 2),
        "less than or equal to 0",
        ("likelihood: 2",),
    ),
    (
        "wrong kind of input",
        _set("likelihood.static.counts", "L01_prior_proven_offences", "input", "weapon_carrying"),
        "'weapon_carrying' is an indicator code, but this rule reads a count field",
        ("input: weapon_carrying",),
    ),
    (
        "count of more than listed",
        _set("escalations", "E07_criminal_exploitation", "when", {"count_of": ["drug_debt"], "at_least": 2}),
        "at_least 2 is more than the 1 codes listed",
        ("at_least: 2",),
    ),
]


@pytest.mark.parametrize(("case", "edit", "message", "needle"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_defective_rules_are_refused(
    tmp_path: Path,
    shipped: Data,
    case: str,
    edit: Callable[[Data], None],
    message: str,
    needle: tuple[str, ...],
) -> None:
    data = copy.deepcopy(shipped)
    edit(data)
    path, text = _write(tmp_path, data)
    error = _refused(path)
    assert message in str(error), str(error)
    assert str(error).startswith(f"{path}:")
    line = _line_of(text, *needle)
    assert any(message in p.message and p.line == line for p in error.problems), (line, error.problems)


def test_duplicate_rule_id_names_the_first_line(tmp_path: Path, shipped: Data) -> None:
    data = copy.deepcopy(shipped)
    _duplicate_id(data)
    path, text = _write(tmp_path, data)
    first = _line_of(text, "id: L10_weapon_carrying")
    second = _line_of(text, "id: L10_weapon_carrying", "id: L10_weapon_carrying")
    assert (
        f"{path}:{second}: likelihood.dynamic[1].id: duplicate rule id 'L10_weapon_carrying' (first on line {first})"
        in str(_refused(path))
    )


# ---- prohibited inputs -------------------------------------------------------------------------------------------


def _in_dynamic_points(data: Data, name: str) -> None:
    _factor(data, "likelihood.dynamic", "L10_weapon_carrying")["points"] = {name: 5}


def _in_wellbeing_points(data: Data, name: str) -> None:
    _factor(data, "wellbeing.factors", "W02_found_or_arrested_out_of_area")["points"] = {name: 3}


def _as_count_input(data: Data, name: str) -> None:
    _factor(data, "likelihood.static.counts", "L01_prior_proven_offences")["input"] = name


def _in_escalation(data: Data, name: str) -> None:
    _factor(data, "escalations", "E09_risk_to_staff")["when"] = {"any_of": [name]}


def _in_harm_rule(data: Data, name: str) -> None:
    _factor(data, "harm.rules", "HR10_weapon_carrying_recent")["when"] = {"count_of": [name], "at_least": 1}


def _in_need(data: Data, name: str) -> None:
    data["needs"]["areas"][0]["indicators"] = [name]


def _as_protective(data: Data, name: str) -> None:
    _factor(data, "protective.factors", "P03_regular_prosocial_activity")["input"] = name


def _as_new_key(data: Data, name: str) -> None:
    _factor(data, "wellbeing.factors", "W02_found_or_arrested_out_of_area")[name] = 3


def _as_meaning(data: Data, name: str) -> None:
    data["indicators"][name] = "A new input"


PLACES = [
    _in_dynamic_points,
    _in_wellbeing_points,
    _as_count_input,
    _in_escalation,
    _in_harm_rule,
    _in_need,
    _as_protective,
    _as_new_key,
    _as_meaning,
]
PROHIBITED = [
    *("ethnicity", "race", "nationality", "religion"),
    *("borough", "postcode"),
    *("music", "social_media"),
    *("stop_and_search", "Stop-and-Search", "arrests_without_outcome"),
    *("family_members_status", "gang_member"),
]


@pytest.mark.parametrize("name", PROHIBITED)
@pytest.mark.parametrize("place", PLACES, ids=[p.__name__.strip("_") for p in PLACES])
def test_no_rule_can_read_a_prohibited_input(
    tmp_path: Path, shipped: Data, place: Callable[[Data, str], None], name: str
) -> None:
    data = copy.deepcopy(shipped)
    place(data, name)
    path, text = _write(tmp_path, data)
    error = _refused(path)
    expected = f"'{name}' is a prohibited input: "
    assert expected in str(error), str(error)
    assert any(expected in p.message and p.line == _line_of(text, name) for p in error.problems), error.problems


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ethnicity", "equality data is held apart"),
        ("borough", "used only for safety routing"),
        ("stop_and_search", "only proven offences count"),
        ("social_media", "proxies, not behaviour"),
        ("family_members_status", "never an offending factor"),
    ],
)
def test_a_prohibited_input_is_refused_with_the_reason(tmp_path: Path, shipped: Data, name: str, why: str) -> None:
    data = copy.deepcopy(shipped)
    _in_dynamic_points(data, name)
    path, _ = _write(tmp_path, data)
    assert why in str(_refused(path))


@pytest.mark.parametrize("name", ["gender", "age_years", "languages", "reason"])
def test_an_input_outside_the_allowed_fields_is_refused(tmp_path: Path, shipped: Data, name: str) -> None:
    data = copy.deepcopy(shipped)
    _as_count_input(data, name)
    path, _ = _write(tmp_path, data)
    assert f"unknown input '{name}' is not an allowed input: a rule may read only" in str(_refused(path))


# ---- files that are not rules ------------------------------------------------------------------------------------


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("id: a\nversion: 1.0.0\nid: b\n", encoding="utf-8")
    assert f"{path}:3: id: duplicate key 'id' (first on line 1)" in str(_refused(path))


def test_invalid_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("id: a\nversion: [1.0.0\n", encoding="utf-8")
    assert str(_refused(path)).startswith(f"{path}:3: not valid YAML")


@pytest.mark.parametrize("text", ["", "- a list\n", "just text\n"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    assert "a rules file is a YAML mapping" in str(_refused(path))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert str(_refused(path)).startswith(f"{path}: cannot read the rules file")


def test_rules_error_is_a_value_error() -> None:
    assert issubclass(RulesError, ValueError)
