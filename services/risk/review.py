"""Human review of the advisory tier: overrides, reassessment diffs, review dates, re-score and equality reports.

Pure: no I/O and no clock (`now` is passed in). The equality-monitoring fields an audit counts are never
visible to the rules (domain brief §2.6); this module only counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.risk.ruleset import RuleSet
from shared.contracts.codes import Tier
from shared.contracts.risk import AxisAssessment, RiskAssessed

OverrideKind = Literal["confirm", "up", "down"]
Direction = Literal["up", "down", "same"]
Measure = Literal["high_or_very_high", "override_up", "override_down"]

AXES: tuple[str, str, str] = ("likelihood", "harm", "wellbeing")
OVERRIDE_KINDS: tuple[OverrideKind, ...] = ("up", "down", "confirm")
MEASURES: tuple[Measure, ...] = ("high_or_very_high", "override_up", "override_down")
_MEASURE_NAMES: dict[Measure, str] = {
    "high_or_very_high": "high or very high",
    "override_up": "up-overrides",
    "override_down": "down-overrides",
}
_TIERS: tuple[Tier, ...] = tuple(Tier)
SUPPRESS_BELOW = 5  # counts under this are shown as "<5" in reports, so no one can be singled out


# ---- overrides -------------------------------------------------------------------------------------------------


class OverrideRefused(ValueError):
    """A practitioner's review of a tier that the override rules do not allow; the message says what to fix."""


@dataclass(frozen=True)
class OverrideRequest:
    """A named practitioner's decision on a tier; a down-override also needs a second person's countersignature."""

    tier: Tier
    reason: str
    by: str
    countersign: str | None = None


def _person(name: str) -> str:
    return " ".join(name.split()).casefold()


def check_override(*, computed: Tier, current: Tier, floor: Tier | None, request: OverrideRequest) -> OverrideKind:
    """The kind of review ("confirm", "up" or "down" against the current tier), or OverrideRefused saying why not.

    Up needs a reason. Down needs a reason and a countersignature from a second person, may end at most one tier
    below the computed tier, and never below an escalation's floor. Those two limits bind every decision, so a
    tier that no longer meets them (say, after a new escalation) cannot be confirmed either.
    """
    if not request.by.strip():
        raise OverrideRefused("say who is making this decision: the practitioner's name (by) is missing")
    wanted = request.tier
    kind: OverrideKind = "confirm" if wanted == current else "up" if wanted.rank > current.rank else "down"
    problems: list[str] = []
    if floor is not None and wanted.rank < floor.rank:
        problems.append(f"an escalation (floor {floor.value}) forbids a tier below {floor.value}")
    if wanted.rank < computed.rank - 1:
        lowest = _TIERS[max(computed.rank - 1, 0)]
        problems.append(
            f"{wanted.value} is more than one tier below the computed {computed.value} "
            f"(the lowest allowed is {Tier.highest(lowest, floor or lowest).value})"
        )
    if problems:  # no reason or countersignature can make these tiers acceptable, so say only this
        raise OverrideRefused("; ".join(problems))
    if kind != "confirm" and not request.reason.strip():
        problems.append(f"{'an up' if kind == 'up' else 'a down'}-override needs a reason")
    if kind == "down":
        if request.countersign is None or not request.countersign.strip():
            problems.append("a down-override needs a countersignature from a second person")
        elif _person(request.countersign) == _person(request.by):
            problems.append(
                f"a down-override needs a countersignature from a second person, not {request.by.strip()} again"
            )
    if problems:
        raise OverrideRefused("; ".join(problems))
    return kind


def _axes(assessed: RiskAssessed) -> tuple[AxisAssessment, AxisAssessment, AxisAssessment]:
    return assessed.likelihood, assessed.harm, assessed.wellbeing


def overall_floor(assessed: RiskAssessed) -> Tier | None:
    """The highest floor that an escalation set on any axis, or None when none did."""
    floors = [axis.floor for axis in _axes(assessed) if axis.floor]
    return Tier.highest(*floors) if floors else None


# ---- reassessment ----------------------------------------------------------------------------------------------


def _direction(old: Tier, new: Tier) -> Direction:
    return "same" if old == new else "up" if new.rank > old.rank else "down"


@dataclass(frozen=True)
class AssessmentDiff:
    """What changed between two assessments of one referral: computed tiers, axis tiers and the rules that fired."""

    old_tier: Tier
    new_tier: Tier
    direction: Direction
    axes: dict[str, tuple[Tier, Tier]]
    rules_added: list[str]
    rules_removed: list[str]

    def summary(self) -> str:
        """One line, e.g. "medium → high: likelihood medium → high; new: L10_weapon_carrying"."""
        head = (
            f"{self.old_tier.value} (unchanged)"
            if self.direction == "same"
            else f"{self.old_tier.value} → {self.new_tier.value}"
        )
        parts = [f"{axis} {old.value} → {new.value}" for axis, (old, new) in self.axes.items()]
        if self.rules_added:
            parts.append(f"new: {', '.join(self.rules_added)}")
        if self.rules_removed:
            parts.append(f"gone: {', '.join(self.rules_removed)}")
        return f"{head}: {'; '.join(parts) if parts else 'no change'}"


def _fired(assessed: RiskAssessed) -> list[str]:
    return list(dict.fromkeys(reason.rule_id for reason in assessed.reasons))


def diff(old: RiskAssessed, new: RiskAssessed) -> AssessmentDiff:
    """Compare two assessments by what the rules computed (before overrides), axis by axis and rule by rule."""
    axes = {
        name: (was.tier, now.tier)
        for name, was, now in zip(AXES, _axes(old), _axes(new), strict=True)
        if was.tier != now.tier
    }
    before, after = _fired(old), _fired(new)
    return AssessmentDiff(
        old_tier=old.computed_tier,
        new_tier=new.computed_tier,
        direction=_direction(old.computed_tier, new.computed_tier),
        axes=axes,
        rules_added=[rule for rule in after if rule not in before],
        rules_removed=[rule for rule in before if rule not in after],
    )


def review_due(*, tier: Tier, last_assessed_at: datetime, rules: RuleSet) -> datetime:
    """When the scheduled reassessment of a case at this tier falls due."""
    if last_assessed_at.utcoffset() is None:
        raise ValueError("last_assessed_at must carry a time zone offset")
    return last_assessed_at + timedelta(weeks=rules.review_weeks(tier))


def overdue(due: datetime, now: datetime) -> bool:
    """True once `now` is past the due moment (a review due now is not yet overdue)."""
    return now > due


# ---- re-score after a rules change -----------------------------------------------------------------------------


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class RescoreSummary:
    """How a rules change moved open cases: counts by direction and transition, and the rules behind the moves."""

    total: int
    unchanged: int
    up: int
    down: int
    transitions: dict[tuple[Tier, Tier], int]  # (old, new) → referrals, changed tiers only, most first
    rules_added: list[tuple[str, int]]  # among referrals whose tier changed: rule id and referrals, most first
    rules_removed: list[tuple[str, int]]

    def lines(self, *, top: int = 10) -> list[str]:
        """A readable report; the `top` most frequent rules in each list."""
        out = [f"Re-scored {self.total} referrals: {self.unchanged} unchanged, {self.up} up, {self.down} down"]
        out += [f"  {old.value} → {new.value}: {count}" for (old, new), count in self.transitions.items()]
        for label, rules in (("now firing", self.rules_added), ("no longer firing", self.rules_removed)):
            if rules:
                shown = ", ".join(f"{rule} ({count})" for rule, count in rules[:top])
                more = f", and {len(rules) - top} more" if len(rules) > top else ""
                out.append(f"Rules {label} in referrals whose tier changed: {shown}{more}")
        return out


def rescore_summary(changes: Sequence[tuple[str, AssessmentDiff]]) -> RescoreSummary:
    """Summarise the diffs of a re-score, one (referral id, diff) per referral."""
    directions = Counter(d.direction for _, d in changes)
    moved = [d for _, d in changes if d.direction != "same"]
    transitions = Counter((d.old_tier, d.new_tier) for d in moved)
    ordered = sorted(transitions.items(), key=lambda item: (-item[1], item[0][0].rank, item[0][1].rank))
    return RescoreSummary(
        total=len(changes),
        unchanged=directions["same"],
        up=directions["up"],
        down=directions["down"],
        transitions=dict(ordered),
        rules_added=_ranked(Counter(rule for d in moved for rule in set(d.rules_added))),
        rules_removed=_ranked(Counter(rule for d in moved for rule in set(d.rules_removed))),
    )


# ---- equality audit --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    """One case's final tier and review, with its separately held equality-monitoring answers (may be empty)."""

    tier: Tier
    override: OverrideKind | None
    groups: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.override is not None and self.override not in OVERRIDE_KINDS:
            raise ValueError(f"override '{self.override}' is not one of up, down, confirm or None")


@dataclass(frozen=True)
class Rate:
    """How often one measure occurs in a group, against everyone else with an answer in the same field."""

    count: int
    share: float
    ratio: float | None  # group share / others' share; inf when only this group has any; None when not comparable
    flagged: bool


@dataclass(frozen=True)
class GroupStat:
    """One group of one monitoring field."""

    field: str
    group: str
    size: int
    comparable: bool  # this group and the rest of the field each have at least min_group_size people
    rates: dict[Measure, Rate]

    @property
    def flags(self) -> list[Measure]:
        return [measure for measure, rate in self.rates.items() if rate.flagged]

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True)
class AuditReport:
    """Tier and override distributions, overall and by group, with the gaps that need a human review."""

    total: int
    tiers: dict[Tier, int]
    overrides: dict[str, int]  # up, down, confirm and none
    recorded: dict[str, int]  # monitoring field → cases with an answer
    groups: dict[str, list[GroupStat]]  # monitoring field → its groups, largest first
    min_group_size: int
    ratio_threshold: float

    @property
    def flagged(self) -> list[GroupStat]:
        return [stat for stats in self.groups.values() for stat in stats if stat.flagged]

    def lines(self) -> list[str]:
        """A readable report in which every count under 5 is shown as "<5" (and its share and ratio withheld)."""
        out = [
            (
                f"Equality audit of {_count(self.total)} assessments (flag at {self.ratio_threshold:g}× the others; "
                f"groups under {self.min_group_size} too few to compare; counts under {SUPPRESS_BELOW} shown as "
                f"<{SUPPRESS_BELOW})"
            ),
            "Tiers: " + ", ".join(f"{t.value} {_counted(n, self.total)}" for t, n in self.tiers.items()),
            "Reviews: " + ", ".join(f"{kind} {_counted(n, self.total)}" for kind, n in self.overrides.items()),
        ]
        for name, stats in self.groups.items():
            out.append(f"{name} (answered for {_count(self.recorded[name])}):")
            out += [f"  {_group_line(stat)}" for stat in stats]
        flagged = self.flagged
        out.append(
            f"{len(flagged)} group(s) flagged for a human review: "
            + "; ".join(f"{s.field} {s.group} ({', '.join(_MEASURE_NAMES[m] for m in s.flags)})" for s in flagged)
            if flagged
            else "No group flagged."
        )
        return out


def _count(n: int) -> str:
    return f"<{SUPPRESS_BELOW}" if n < SUPPRESS_BELOW else str(n)


def _counted(n: int, of: int) -> str:
    return _count(n) if n < SUPPRESS_BELOW else f"{n} ({n / of:.0%})"


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return "not comparable"
    return "none among the others" if ratio == float("inf") else f"{ratio:.2f}× the others"


def _group_line(stat: GroupStat) -> str:
    if not stat.comparable:
        return f"{stat.group}: too few to compare ({_count(stat.size)} people)"
    parts: list[str] = []
    for measure, rate in stat.rates.items():
        shown = (
            _count(rate.count)
            if rate.count < SUPPRESS_BELOW
            else f"{rate.count} ({rate.share:.0%}, {_ratio(rate.ratio)})"
        )
        parts.append(f"{_MEASURE_NAMES[measure]} {shown}")
    flag = f" — FLAGGED: {', '.join(_MEASURE_NAMES[m] for m in stat.flags)}" if stat.flagged else ""
    return f"{stat.group}: {_count(stat.size)} people; {'; '.join(parts)}{flag}"


def _hits(row: AuditRow, measure: Measure) -> bool:
    if measure == "high_or_very_high":
        return row.tier.rank >= Tier.HIGH.rank
    return row.override == measure.removeprefix("override_")


def _answer(row: AuditRow, name: str) -> str | None:
    value = " ".join(row.groups.get(name, "").split())
    return value or None


def _rate(
    group: Sequence[AuditRow], others: Sequence[AuditRow], measure: Measure, *, comparable: bool, threshold: float
) -> Rate:
    count = sum(_hits(row, measure) for row in group)
    share = count / len(group)
    if not comparable:
        return Rate(count, share, None, flagged=False)
    elsewhere = sum(_hits(row, measure) for row in others)
    # Whole-number division is exact here, so a ratio sitting on the threshold compares as equal.
    ratio = (count * len(others)) / (elsewhere * len(group)) if elsewhere else (float("inf") if count else 1.0)
    return Rate(count, share, ratio, flagged=ratio >= threshold)


def _fields(rows: Iterable[AuditRow]) -> list[str]:
    return sorted({name for row in rows for name in row.groups})


def audit(rows: Sequence[AuditRow], *, min_group_size: int = 10, ratio_threshold: float = 1.25) -> AuditReport:
    """Count tiers and overrides overall and for each group of each monitoring field, flagging gaps for review.

    A group is compared with everyone else who answered the same field; when either side has fewer than
    `min_group_size` people the group is "too few to compare" and never flagged.
    """
    if min_group_size < 1:
        raise ValueError("min_group_size must be at least 1")
    if ratio_threshold <= 1:
        raise ValueError("ratio_threshold must be above 1, or every group would be flagged")
    tiers = Counter(row.tier for row in rows)
    reviews: Counter[str] = Counter(row.override or "none" for row in rows)
    groups: dict[str, list[GroupStat]] = {}
    recorded: dict[str, int] = {}
    for name in _fields(rows):
        by_group: dict[str, list[AuditRow]] = {}
        for row in rows:
            answer = _answer(row, name)
            if answer is not None:
                by_group.setdefault(answer, []).append(row)
        answered = sum(len(members) for members in by_group.values())
        recorded[name] = answered
        stats: list[GroupStat] = []
        for group, members in sorted(by_group.items(), key=lambda item: (-len(item[1]), item[0])):
            others = [row for other, rest in by_group.items() if other != group for row in rest]
            comparable = len(members) >= min_group_size and len(others) >= min_group_size
            rates = {m: _rate(members, others, m, comparable=comparable, threshold=ratio_threshold) for m in MEASURES}
            stats.append(GroupStat(name, group, len(members), comparable, rates))
        groups[name] = stats
    return AuditReport(
        total=len(rows),
        tiers={tier: tiers[tier] for tier in Tier},
        overrides={kind: reviews[kind] for kind in (*OVERRIDE_KINDS, "none")},
        recorded=recorded,
        groups=groups,
        min_group_size=min_group_size,
        ratio_threshold=ratio_threshold,
    )
