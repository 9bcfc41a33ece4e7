"""The risk assessment: a pure function of an accepted referral, the rule set and `now`. No I/O, no clock."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.contracts.codes import IndexOffence, Tier
from shared.contracts.intake import ReferralRecorded
from shared.contracts.risk import AxisAssessment, Need, Reason
from shared.contracts.rules import Condition, IndicatorFactor, RecencyBand, RuleSet, ScoredAxis, band_points


@dataclass(frozen=True)
class Escalation:
    """A safeguarding escalation that fired: what to do, by when, and the tier floors it sets."""

    rule_id: str
    actions: list[str]
    deadline: datetime
    floors: dict[str, Tier]
    explanation: str


@dataclass(frozen=True)
class Assessment:
    """The advisory assessment of one referral, every point explained."""

    tier: Tier
    likelihood: AxisAssessment
    harm: AxisAssessment
    wellbeing: AxisAssessment
    reasons: list[Reason]
    needs: list[Need]
    focus: list[str]
    escalations: list[Escalation]
    flags: list[str]
    rules_version: str


@dataclass(frozen=True)
class _Facts:
    """What the rules may read of a referral; `seen` holds the latest observation date of each indicator."""

    today: date
    seen: dict[str, date]
    protective: frozenset[str]
    index_offence: IndexOffence | None
    counts: dict[str, int | None]


@dataclass(frozen=True)
class _Hit:
    """The indicator that made a factor fire, with its points and recency multiplier."""

    code: str
    points: float
    multiplier: float
    seen: date

    @property
    def weighted(self) -> float:
        return round(self.points * self.multiplier, 2)


def assess(referral: ReferralRecorded, rules: RuleSet, *, now: datetime) -> Assessment:
    """Score the three axes, find needs and escalations; the overall tier is the highest axis."""
    facts = _facts(referral, now.date())
    escalations, flags = _escalations(facts, rules, now)
    floors: dict[str, Tier] = {}
    for escalation in escalations:
        for axis, tier in escalation.floors.items():
            floors[axis] = Tier.highest(tier, floors.get(axis, tier))
    likelihood = _likelihood(facts, rules, floors.get("likelihood"))
    harm = _harm(facts, rules, floors.get("harm"))
    wellbeing = _wellbeing(facts, rules, floors.get("wellbeing"))
    needs = _needs(facts, rules)
    axis_reasons = [*likelihood.reasons, *harm.reasons, *wellbeing.reasons]
    fired = {reason.rule_id for reason in axis_reasons}
    factors = [*rules.likelihood.static.indicators, *rules.likelihood.dynamic, *rules.wellbeing.factors]
    flags |= {flag for factor in factors if factor.id in fired for flag in factor.flags}
    return Assessment(
        tier=Tier.highest(likelihood.tier, harm.tier, wellbeing.tier),
        likelihood=likelihood,
        harm=harm,
        wellbeing=wellbeing,
        reasons=axis_reasons
        + [Reason(rule_id=e.rule_id, axis="escalation", explanation=e.explanation) for e in escalations],
        needs=needs,
        focus=[need.code for need in needs[:3]],
        escalations=escalations,
        flags=sorted(flags),
        rules_version=rules.version,
    )


def _facts(referral: ReferralRecorded, today: date) -> _Facts:
    seen: dict[str, date] = {}
    for indicator in referral.indicators:
        when = indicator.observed_at or today
        seen[indicator.code] = max(when, seen.get(indicator.code, when))
    return _Facts(
        today=today,
        seen=seen,
        protective=frozenset(referral.protective_factors),
        index_offence=referral.index_offence,
        counts={
            "prior_proven_offences": referral.prior_proven_offences,
            "age_at_first_proven_offence": referral.age_at_first_proven_offence,
            "referrals_in_last_12_months": _recent_referrals(referral, today),
        },
    )


def _recent_referrals(referral: ReferralRecorded, today: date) -> int | None:
    """1 when the young person was referred before within 12 months of this referral; None (no factor) else."""
    earlier = referral.previously_referred
    if earlier is None or not _within_months(earlier.last_referred_at.date(), today, 12):
        return None
    return 1


# ---- time ------------------------------------------------------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    """The same day `months` later (the month's last day when shorter). Past the end of the calendar it stays at
    `date.max`: intake refuses future dates, but one stored before it did (year 9999) must not crash an assessment."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    if year > date.max.year:
        return date.max
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _within_months(seen: date, today: date, months: int) -> bool:
    return today <= _add_months(seen, months)


def _months_ago(seen: date, today: date) -> int:
    months = (today.year - seen.year) * 12 + today.month - seen.month
    if months > 0 and _add_months(seen, months) > today:
        months -= 1
    return max(months, 0)


def _multiplier(recency: Sequence[RecencyBand], seen: date, today: date) -> float:
    for band in recency:
        if band.up_to_months is None or _within_months(seen, today, band.up_to_months):
            return band.multiplier
    return 0.0  # unreachable: the loader insists on a last `older` band


# ---- wording ---------------------------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:g}"


def _points(value: float) -> str:
    return f"{_num(value)} point" if abs(value) == 1 else f"{_num(value)} points"


def _ago(seen: date, today: date) -> str:
    months = _months_ago(seen, today)
    return "less than a month ago" if months == 0 else "1 month ago" if months == 1 else f"{months} months ago"


def _lower_first(text: str) -> str:
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


# ---- axes ------------------------------------------------------------------------------------------------------


def _hit(factor: IndicatorFactor, facts: _Facts, recency: Sequence[RecencyBand]) -> _Hit | None:
    """The highest-scoring of the factor's indicators present (and within its window), if any."""
    if facts.seen.keys().isdisjoint(factor.points):  # most factors, for most referrals: nothing more to look at
        return None
    hits = [
        _Hit(code, points, _multiplier(recency, seen, facts.today) if recency else 1.0, seen)
        for code, points in factor.points.items()
        if (seen := facts.seen.get(code)) is not None
        and (factor.within_months is None or _within_months(seen, facts.today, factor.within_months))
    ]
    return max(hits, key=lambda h: (h.weighted, h.points), default=None)


def _factor_reasons(
    factors: Sequence[IndicatorFactor], axis: ScoredAxis, facts: _Facts, rules: RuleSet, recency: Sequence[RecencyBand]
) -> tuple[list[Reason], list[str]]:
    """Reasons for the factors that fired, and the ids of those that could change (for could_lower)."""
    reasons: list[Reason] = []
    changeable: list[str] = []
    for factor in factors:
        hit = _hit(factor, facts, recency)
        if hit is None:
            continue
        text = factor.explanation.format(
            meaning=rules.indicators[hit.code],
            ago=_ago(hit.seen, facts.today),
            points=_points(hit.points),
            multiplier=str(hit.multiplier),
        )
        reasons.append(Reason(rule_id=factor.id, axis=axis, points=hit.weighted, explanation=text))
        if factor.changeable and hit.weighted > 0:
            changeable.append(factor.id)
    return reasons, changeable


def _static(facts: _Facts, rules: RuleSet) -> list[Reason]:
    static = rules.likelihood.static
    reasons: list[Reason] = []
    for factor in static.counts:
        value = facts.counts[factor.input]
        if value is not None:
            points = band_points(factor.bands, value)
            text = factor.explanation.format(value=value, points=_points(points))
            reasons.append(Reason(rule_id=factor.id, axis="likelihood", points=points, explanation=text))
    if facts.index_offence is not None:
        offence = static.index_offence
        points = offence.points[facts.index_offence]
        text = offence.explanation.format(offence=rules.index_offences[facts.index_offence], points=_points(points))
        reasons.append(Reason(rule_id=offence.id, axis="likelihood", points=points, explanation=text))
    reasons += _factor_reasons(static.indicators, "likelihood", facts, rules, recency=[])[0]
    total = round(sum(r.points for r in reasons), 2)
    if total > static.cap:
        text = f"Static history capped at {_points(static.cap)} ({_num(total)} before the cap)"
        reasons.append(Reason(rule_id="static_cap", axis="likelihood", points=static.cap - total, explanation=text))
    return reasons


def _likelihood(facts: _Facts, rules: RuleSet, floor: Tier | None) -> AxisAssessment:
    dynamic, could_lower = _factor_reasons(rules.likelihood.dynamic, "likelihood", facts, rules, rules.recency)
    return _scored_axis("likelihood", [*_static(facts, rules), *dynamic], facts, rules, floor, could_lower)


def _wellbeing(facts: _Facts, rules: RuleSet, floor: Tier | None) -> AxisAssessment:
    reasons, could_lower = _factor_reasons(rules.wellbeing.factors, "wellbeing", facts, rules, recency=[])
    return _scored_axis("wellbeing", reasons, facts, rules, floor, could_lower)


def _scored_axis(
    axis: ScoredAxis, risk: list[Reason], facts: _Facts, rules: RuleSet, floor: Tier | None, could_lower: list[str]
) -> AxisAssessment:
    """Add protective factors (capped, never below zero), then tier the score; a floor can only raise the tier."""
    raw = round(sum(r.points for r in risk), 2)
    protective: list[Reason] = []
    for factor in rules.protective.factors if raw > 0 else []:  # nothing to reduce: listing them would only confuse
        points = factor.likelihood if axis == "likelihood" else factor.wellbeing
        if factor.input in facts.protective and points != 0:
            text = factor.explanation.format(meaning=factor.meaning, points=_points(points), axis=axis)
            protective.append(Reason(rule_id=factor.id, axis=axis, points=points, explanation=text))
    offered = round(sum(r.points for r in protective), 2)
    cap = rules.protective.cap_per_axis
    applied = max(offered, cap, -raw)
    if applied != offered:
        why = f"capped at {_points(cap)} per axis" if applied == cap else "limited so the score does not go below zero"
        text = f"Protective factors {why} ({_num(offered)} offered, {_num(applied)} applied)"
        protective.append(
            Reason(rule_id="protective_limit", axis=axis, points=round(applied - offered, 2), explanation=text)
        )
    score = round(raw + applied, 2)
    computed = rules.tier_for(axis, score)
    tier = computed if floor is None else Tier.highest(computed, floor)
    return AxisAssessment(tier=tier, score=score, floor=floor, reasons=risk + protective, could_lower=could_lower)


def _matched(condition: Condition, facts: _Facts) -> list[str]:
    """The indicator codes (and index offence) that satisfy the condition; empty when it does not hold."""
    present: list[str] = []
    for code in condition.codes:
        seen = facts.seen.get(code)
        if seen is None:
            continue
        if condition.within_months and not _within_months(seen, facts.today, condition.within_months):
            continue
        if condition.within_days and (facts.today - seen).days > condition.within_days:
            continue
        present.append(code)
    if condition.at_least is not None and len(present) < condition.at_least:
        present = []
    if facts.index_offence is not None and facts.index_offence in condition.index_offence:
        present.append(facts.index_offence)
    return present


def _describe(matched: list[str], rules: RuleSet) -> str:
    meanings = dict(rules.indicators)
    meanings.update(rules.index_offences.items())
    return "; ".join(_lower_first(meanings[m]) for m in matched)


def _harm(facts: _Facts, rules: RuleSet, floor: Tier | None) -> AxisAssessment:
    """First matching harm rule wins; otherwise low. The score is the rank of the computed tier."""
    computed = Tier.LOW
    reasons: list[Reason] = []
    could_lower: list[str] = []
    for rule in rules.harm.rules:
        matched = _matched(rule.when, facts)
        if matched:
            text = rule.explanation.format(matched=_describe(matched, rules), tier=rule.tier.value.replace("_", " "))
            computed, reasons = rule.tier, [Reason(rule_id=rule.id, axis="harm", explanation=text)]
            could_lower = [rule.id] if any(m in facts.seen for m in matched) else []
            break
    tier = computed if floor is None else Tier.highest(computed, floor)
    return AxisAssessment(tier=tier, score=computed.rank, floor=floor, reasons=reasons, could_lower=could_lower)


# ---- escalations and needs -------------------------------------------------------------------------------------


def _escalations(facts: _Facts, rules: RuleSet, now: datetime) -> tuple[list[Escalation], set[str]]:
    """Escalations that fired, in rule order (an `unless` rule that fired suppresses a later one), and their flags."""
    fired: list[Escalation] = []
    flags: set[str] = set()
    for rule in rules.escalations:
        matched = _matched(rule.when, facts)
        if not matched or any(e.rule_id in rule.unless for e in fired):
            continue
        text = rule.explanation.format(
            matched=_describe(matched, rules), count=len(matched), deadline_hours=rule.deadline_hours
        )
        floors: dict[str, Tier] = {axis: tier for axis, tier in rule.floors.items()}
        fired.append(Escalation(rule.id, list(rule.actions), now + timedelta(hours=rule.deadline_hours), floors, text))
        flags.update(rule.flags)
    return fired, flags


def _needs(facts: _Facts, rules: RuleSet) -> list[Need]:
    """Needs areas with a score above 0, highest first, then by code."""
    needs: list[Need] = []
    for area in rules.needs.areas:
        signals = [code for code in dict.fromkeys([*area.indicators, *area.significant]) if code in facts.seen]
        if facts.index_offence is not None and facts.index_offence in area.index_offence:
            signals.append("index_offence")
        prior, at_least = facts.counts["prior_proven_offences"], area.prior_proven_offences_at_least
        if at_least is not None and prior is not None and prior >= at_least:
            signals.append("prior_proven_offences")
        if signals:
            significant = any(code in facts.seen for code in area.significant)
            score = 2 if significant or len(signals) >= rules.needs.significant_count else 1
            needs.append(Need(code=area.code, name=area.name, score=score))
    return sorted(needs, key=lambda need: (-need.score, need.code))
