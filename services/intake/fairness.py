"""The fairness audit: tier and override rates by equality-monitoring group, with small counts suppressed.

Pure statistics. The equality-monitoring answers are held apart by intake and are never visible to the risk
rules (domain brief §2.6); intake runs this audit, joining them with the tiers and overrides risk reports, and
only aggregate counts leave intake.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shared.contracts.codes import Tier

OverrideKind = Literal["confirm", "up", "down"]
Measure = Literal["high_or_very_high", "override_up", "override_down"]
OVERRIDE_KINDS: tuple[OverrideKind, ...] = ("up", "down", "confirm")
MEASURES: tuple[Measure, ...] = ("high_or_very_high", "override_up", "override_down")
_MEASURE_NAMES: dict[Measure, str] = {
    "high_or_very_high": "high or very high",
    "override_up": "up-overrides",
    "override_down": "down-overrides",
}
_TIERS: tuple[Tier, ...] = tuple(Tier)
SUPPRESS_BELOW = 5  # counts under this are shown as "<5" in reports, so no one can be singled out


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
