"""Human review of the advisory tier: overrides, reassessment diffs, review dates, re-score and equality reports.

Pure: no I/O and no clock (`now` is passed in). The equality-monitoring fields an audit counts are never
visible to the rules (domain brief §2.6); this module only counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.contracts.codes import Tier
from shared.contracts.common import LONDON
from shared.contracts.risk import AxisAssessment, RiskAssessed
from shared.contracts.rules import RuleSet

OverrideKind = Literal["confirm", "up", "down"]
Direction = Literal["up", "down", "same"]

AXES: tuple[str, str, str] = ("likelihood", "harm", "wellbeing")
OVERRIDE_KINDS: tuple[OverrideKind, ...] = ("up", "down", "confirm")
_TIERS: tuple[Tier, ...] = tuple(Tier)


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


def check_override(*, computed: Tier, current: Tier, floor: Tier | None, request: OverrideRequest,
                   asking: bool = False) -> OverrideKind:
    """The kind of review ("confirm", "up" or "down" against the current tier), or OverrideRefused saying why not.

    Up needs a reason. Down needs a reason and a countersignature from a second person, may end at most one tier
    below the computed tier, and never below an escalation's floor. Those two limits bind every decision, so a
    tier that no longer meets them (say, after a new escalation) cannot be confirmed either. `asking`: a lowering
    is being asked for, to wait for its countersignature: everything else is checked now.
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
    if kind == "down" and not asking:
        if request.countersign is None or not request.countersign.strip():
            problems.append("a down-override needs a countersignature from a second person")
        elif _person(request.countersign) == _person(request.by):
            problems.append(
                f"a down-override needs a countersignature from a second person, not {request.by.strip()} again"
            )
    if problems:
        raise OverrideRefused("; ".join(problems))
    return kind


ASKED_AGAIN = "asked again"
"""The decision recorded on a pending lowering that another asked for replaced."""


@dataclass(frozen=True)
class AskedLowering:
    """A lowering of a tier as it was asked, and what became of it (status pending, countersigned, refused or
    replaced; `decided_by` and `decision` once decided)."""

    tier: Tier
    by: str
    requested_at: datetime
    status: str = "pending"
    decided_by: str | None = None
    decision: str | None = None


def said_at(at: datetime) -> str:
    """A moment as a risk lead reads it: London time as the console and the CLI show it (`Sun 06 Dec 20:04`), with
    its seconds, which tell two lowerings asked in one minute apart, and the zone named (`Sun 06 Dec 20:04:09 GMT`)."""
    return f"{at.astimezone(LONDON):%a %d %b %H:%M:%S %Z}"


def _fate(seen: AskedLowering, tier: Tier) -> str:
    if seen.tier != tier:
        return f"asks for {seen.tier.value}, not {tier.value}"
    who = seen.decided_by or "someone"
    if seen.status == "countersigned":
        return f"was countersigned already, by {who}"
    if seen.status == "refused":
        return f"was withdrawn by {who}" if _person(who) == _person(seen.by) else f"was refused by {who}"
    if seen.status == "replaced":
        return f"was replaced: {who} asked again" if seen.decision == ASKED_AGAIN else \
            f"was set aside: {who} decided the tier meanwhile"
    return "is no longer the one pending"


def unseen_lowering(*, tier: Tier, requested_at: datetime, seen: AskedLowering | None,
                    pending: AskedLowering | None) -> str | None:
    """Why a countersignature or refusal naming the lowering to `tier` asked at `requested_at` (what the risk lead
    saw; `seen` is what is stored under that time) cannot be taken for the `pending` one; None when it is that one.

    A second risk lead signs only what they saw: if the lowering was withdrawn and another asked for between their
    reading the case and deciding, they must read it again.
    """
    if pending is not None and pending.requested_at == requested_at and pending.tier == tier:
        return None
    if seen is None:
        said = f"no lowering to {tier.value} was asked at {said_at(requested_at)}"
    else:
        said = (f"the lowering you saw (to {tier.value}, asked by {seen.by} at {said_at(requested_at)}) "
                f"{_fate(seen, tier)}")
    now = ("none is pending now" if pending is None else
           f"the pending one asks for {pending.tier.value} (asked by {pending.by} at {said_at(pending.requested_at)})")
    return f"{said}; {now}: open the case again"


def unseen_case(*, seen: int | None, latest: int, at: datetime) -> str | None:
    """Why a decision on a lowering, taken reading assessment `seen` of the case, cannot stand now that its latest
    is assessment `latest` (made `at`); None when it is that one. An update or a re-score gives the case new reasons
    without touching the lowering: the risk lead must read them before signing."""
    if seen is None:
        return ("name the assessment of the case you read with the lowering (its number, as the case shows it); this "
                "request names none (an older console or CLI: update it, then open the case again)")
    if seen == latest:
        return None
    return (f"the case was re-assessed (assessment {latest}, at {said_at(at)}) since you opened it (assessment "
            f"{seen}): open it again")


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
