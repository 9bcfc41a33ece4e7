"""The shipped risk rules read straight from their YAML, for tests to compute what a referral should score.

Tests take every weight, band, cap, window and floor from here and do their own arithmetic, never asking the
engine under test (services.risk) what it would give: a changed weight moves the expectations with it, and only
the golden snapshot (tests/unit/test_risk_rules_golden.py) fails, saying the shipped file changed.
"""

from __future__ import annotations

import copy
import math
import re
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from shared.contracts.codes import Tier

RULES_FILE = Path(__file__).resolve().parents[2] / "services" / "risk" / "rules" / "sos-risk-needs.yaml"

Data = dict[str, Any]

_BAND = re.compile(r"(\d+)|(\d+)-(\d+)|(\d+)\+|>=(\d+)|<=(\d+)")


@cache
def shipped() -> Data:
    """The shipped rules file, parsed (with yaml, not the engine's loader). Do not modify: copy it first."""
    data: Data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return data


def _rules_in(section: Any) -> list[Data]:
    """Every mapping with an `id` anywhere under `section`."""
    if isinstance(section, dict):
        found = [section] if "id" in section else []
        return found + [rule for value in section.values() for rule in _rules_in(value)]
    if isinstance(section, list):
        return [rule for item in section for rule in _rules_in(item)]
    return []


def rule(rule_id: str, data: Data | None = None) -> Data:
    """The rule, factor, escalation or need area with this id (in `data`, else in the shipped rules)."""
    matches = [found for found in _rules_in(shipped() if data is None else data) if found["id"] == rule_id]
    assert len(matches) == 1, f"{rule_id!r} names {len(matches)} rules in {RULES_FILE.name}"
    return matches[0]


def with_points(rule_id: str, scored: dict[str, float]) -> str:
    """The shipped rules as YAML text with one factor's points replaced: a candidate or a faulty rules file
    (comments are not kept)."""
    data = copy.deepcopy(shipped())
    rule(rule_id, data)["points"] = scored
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def points(rule_id: str, code: str) -> float:
    """The points an indicator code scores in this factor, before any recency multiplier."""
    value: float = rule(rule_id)["points"][code]
    return value


def likelihood_points(code: str) -> float:
    """The points an indicator scores on likelihood (dynamic or static factor) before recency; 0 when none."""
    factors = [*shipped()["likelihood"]["dynamic"], *shipped()["likelihood"]["static"]["indicators"]]
    return _axis_points(code, factors)


def wellbeing_points(code: str) -> float:
    """The points an indicator scores on wellbeing (inside any window the factor has); 0 when none."""
    return _axis_points(code, shipped()["wellbeing"]["factors"])


def _axis_points(code: str, factors: list[Data]) -> float:
    assert code in shipped()["indicators"], f"{code!r} is not an indicator code of {RULES_FILE.name}"
    found = [float(factor["points"][code]) for factor in factors if code in factor["points"]]
    assert len(found) <= 1, f"{code!r} scores in {len(found)} factors of one axis"
    return found[0] if found else 0.0


def offence_points(offence: str) -> float:
    value: float = shipped()["likelihood"]["static"]["index_offence"]["points"][offence]
    return value


def band(label: str) -> tuple[int, int | None]:
    """A band label ("3", "2-3", "4+", ">=16", "<=13") as (lowest, highest), highest None when open."""
    match = _BAND.fullmatch(label)
    assert match is not None, f"band {label!r} in {RULES_FILE.name} is not N, N-M, N+, >=N or <=N"
    only, low, high, plus, at_least, at_most = match.groups()
    if only is not None:
        return int(only), int(only)
    if low is not None:
        return int(low), int(high)
    if at_most is not None:
        return 0, int(at_most)
    return int(plus or at_least), None


def band_points(rule_id: str, value: int) -> float:
    """The points of the count band of this rule that holds `value`."""
    for label, scored in rule(rule_id)["bands"].items():
        low, high = band(str(label))
        if low <= value and (high is None or value <= high):
            return float(scored)
    raise AssertionError(f"no band of {rule_id} holds {value}")


def static_cap() -> float:
    return float(shipped()["likelihood"]["static"]["cap"])


def protective(rule_id: str) -> dict[str, float]:
    """The points a protective factor offers per axis (zero ones left out)."""
    factor = rule(rule_id)
    return {axis: float(factor[axis]) for axis in ("likelihood", "wellbeing") if factor[axis]}


def protective_cap() -> float:
    return float(shipped()["protective"]["cap_per_axis"])


def protective_applied(raw: float, offered: float) -> float:
    """What protective factors take off an axis: what they offer, at most the cap, and never below zero."""
    return max(offered, protective_cap(), -raw)


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` months earlier (for days 1-28, where that is never ambiguous)."""
    assert day.day <= 28, day
    years, month = divmod(day.month - 1 - months, 12)
    return date(day.year + years, month + 1, day.day)


def recency_bands() -> list[tuple[int | None, float]]:
    """(up_to_months, multiplier) from the newest band to the open `older` one (None)."""
    return [(b.get("up_to_months"), float(b["multiplier"])) for b in shipped()["recency"]]


def multiplier(observed: date, today: date) -> float:
    """The recency multiplier of an indicator observed on `observed`: the first band it is within."""
    for up_to, value in recency_bands():
        if up_to is None or observed >= months_before(today, up_to):
            return value
    raise AssertionError(f"the recency bands of {RULES_FILE.name} do not end with an open band")


def window_start(rule_id: str, today: date) -> date:
    """The earliest date a windowed factor, harm rule or escalation still counts (that day included)."""
    found = rule(rule_id)
    window: Data = found if "within_months" in found else found["when"]
    if "within_days" in window:
        return today - timedelta(days=window["within_days"])
    return months_before(today, window["within_months"])


def tier_bands(axis: str) -> list[tuple[Tier, int, int | None]]:
    """(tier, lowest score, highest score or None) for a points axis, lowest tier first."""
    return [(Tier(tier), *band(str(label))) for tier, label in shipped()["tiers"][axis].items()]


def tier_for(axis: str, score: float) -> Tier:
    """The tier a score reaches: the highest whose band starts at or below the score's whole points."""
    return max((tier for tier, low, _ in tier_bands(axis) if low <= math.floor(score)), key=lambda t: t.rank)


def harm_tier(rule_id: str) -> Tier:
    return Tier(rule(rule_id)["tier"])


def floors(rule_id: str) -> dict[str, Tier]:
    """The tier floors an escalation sets, per axis."""
    return {axis: Tier(tier) for axis, tier in rule(rule_id).get("floors", {}).items()}


def deadline_hours(rule_id: str) -> int:
    hours: int = rule(rule_id)["deadline_hours"]
    return hours


def review_weeks(tier: Tier) -> int:
    weeks: int = shipped()["reassess_every_weeks"][tier.value]
    return weeks


def num(value: float) -> str:
    """A number as an explanation prints it: 5, 0.75, -6."""
    return f"{value:g}"
