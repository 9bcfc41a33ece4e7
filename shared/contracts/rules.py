"""The risk rules as data: the schema of a rules file, and a loader that refuses a bad file with the line at fault.

A rule may read only the allowed referral fields (`ALLOWED_INPUTS`). Prohibited inputs (ethnicity, location,
music, social media, stop-and-search, family members' status, ...) are named and refused at load, so no rule
can be written on them (domain brief §6, prohibited_inputs).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, ClassVar, Literal, NamedTuple, Self, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    NonPositiveFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from shared.contracts.codes import INDICATOR_CODES, PROTECTIVE_FACTOR_CODES, IndexOffence, Tier

Axis = Literal["likelihood", "harm", "wellbeing"]
ScoredAxis = Literal["likelihood", "wellbeing"]
Loc = tuple[str | int, ...]

INDEX_OFFENCES: frozenset[str] = frozenset(get_args(IndexOffence))
COUNT_INPUTS: frozenset[str] = frozenset(
    {"prior_proven_offences", "age_at_first_proven_offence", "referrals_in_last_12_months"}
)
ALLOWED_INPUTS: frozenset[str] = INDICATOR_CODES | PROTECTIVE_FACTOR_CODES | COUNT_INPUTS | {"index_offence"}
# Victim is not perpetrator: these feed wellbeing, never the likelihood of offending (§2.6).
VICTIMISATION_CODES: frozenset[str] = frozenset(
    {"recent_violent_victimisation", "sexual_exploitation", "threats_received", "home_cuckooed"}
)

_PROHIBITED: dict[str, str] = {
    "ethnicity, race, nationality and religion are never scored; equality data is held apart, for monitoring only": (
        "ethnicity ethnic_group race nationality religion faith country_of_birth"
    ),
    "location (postcode, estate, borough, address) is used only for safety routing, never as a score": (
        "postcode post_code borough estate address location area unsafe_areas neighbourhood"
    ),
    "music and social media are proxies, not behaviour": (
        "music music_genre drill social_media social_media_follows online_associations associations"
    ),
    "only proven offences count: stop-and-search, arrests without an outcome and 'known to police' import bias": (
        "stop_and_search stop_search arrest arrests arrests_without_outcome nfa no_further_action known_to_police "
        "police_intelligence intelligence"
    ),
    "family members' status is never an offending factor (it may be noted as a vulnerability)": (
        "family_members_status family_status family_criminal_status family_gang_status sibling_gang_status "
        "sibling_criminal_status siblings_status"
    ),
    "a child is never labelled a gang member; rules score behaviour": "gang_member gang_membership gang_affiliation",
}
PROHIBITED_INPUTS: dict[str, str] = {name: why for why, names in _PROHIBITED.items() for name in names.split()}

_ALLOWED_TEXT = (
    "a rule may read only the contract's indicator codes and protective factor codes (shared/contracts/codes.py), "
    "index_offence, prior_proven_offences and age_at_first_proven_offence"
)
_A = {
    "indicator": "an indicator code",
    "protective": "a protective factor code",
    "count": "a count field",
    "offence": "the index_offence field",
}


class Defect(ValueError):
    """A validation failure that knows where, below the failing value, the fault lies (`at`)."""

    def __init__(self, message: str, *, at: Loc = (), first: Loc | None = None) -> None:
        super().__init__(message)
        self.at = at
        self.first = first


class Problem(NamedTuple):
    line: int
    where: str
    message: str


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file, the line and each problem."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(_render(path, p) for p in problems))


def _render(path: Path, problem: Problem) -> str:
    at = f"{path}:{problem.line}" if problem.line else str(path)
    return f"{at}: {problem.where}: {problem.message}" if problem.where else f"{at}: {problem.message}"


# ---- inputs ----------------------------------------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().casefold())


def prohibited_reason(name: str) -> str | None:
    """Why `name` may never be a rule input, or None when it is not a prohibited input."""
    return PROHIBITED_INPUTS.get(_normal(name))


def _kind(name: str) -> str | None:
    if name in INDICATOR_CODES:
        return "indicator"
    if name in PROTECTIVE_FACTOR_CODES:
        return "protective"
    if name in COUNT_INPUTS:
        return "count"
    return "offence" if name == "index_offence" else None


def _input(name: str, expected: str) -> str:
    why = prohibited_reason(name)
    if why:
        raise ValueError(f"'{name}' is a prohibited input: {why}")
    kind = _kind(name)
    if kind is None:
        unknown = {"indicator": "unknown indicator code", "protective": "unknown protective factor code"}
        raise ValueError(f"{unknown.get(expected, 'unknown input')} '{name}' is not an allowed input: {_ALLOWED_TEXT}")
    if kind != expected:
        raise ValueError(f"'{name}' is {_A[kind]}, but this rule reads {_A[expected]}")
    return name


def _indicator(name: str) -> str:
    return _input(name, "indicator")


def _likelihood_indicator(name: str) -> str:
    if _input(name, "indicator") in VICTIMISATION_CODES:
        raise ValueError(
            f"'{name}' is a prohibited likelihood input: being a victim feeds wellbeing only, never the likelihood of "
            "offending"
        )
    return name


def _snake(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"'{value}' is not {what}")
        return value

    return AfterValidator(check)


def _protective(name: str) -> str:
    return _input(name, "protective")


def _count(name: str) -> str:
    return _input(name, "count")


def _offence(name: str) -> str:
    return _input(name, "offence")


IndicatorCode = Annotated[str, AfterValidator(_indicator)]
LikelihoodCode = Annotated[str, AfterValidator(_likelihood_indicator)]
ProtectiveCode = Annotated[str, AfterValidator(_protective)]
CountInput = Annotated[str, AfterValidator(_count)]
OffenceInput = Annotated[str, AfterValidator(_offence)]
RuleId = Annotated[str, _snake(r"[A-Z]{1,2}\d{2}(_[a-z0-9]+)*", "a rule id like L10_weapon_carrying")]
Name = Annotated[str, _snake(r"[a-z][a-z0-9_]*", "a snake_case name")]


# ---- bands -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A closed range of whole numbers; `high` None means no upper limit. Fractions count by their whole part."""

    low: int
    high: int | None

    def contains(self, value: float) -> bool:
        whole = math.floor(value)
        return whole >= self.low and (self.high is None or whole <= self.high)


_BAND = re.compile(r"(\d+)|(\d+)-(\d+)|(\d+)\+|>=(\d+)|<=(\d+)")


@lru_cache(maxsize=256)
def parse_band(label: str) -> Band:
    """Parse "3", "2-3", "4+", ">=16" or "<=13"."""
    match = _BAND.fullmatch(label.replace(" ", ""))
    if match is None:
        raise ValueError(f"band '{label}' is not N, N-M, N+, >=N or <=N")
    only, low, high, plus, at_least, at_most = match.groups()
    if only is not None:
        return Band(int(only), int(only))
    if low is not None:
        if int(high) < int(low):
            raise ValueError(f"band '{label}' is empty: it ends before it starts")
        return Band(int(low), int(high))
    if at_most is not None:
        return Band(0, int(at_most))
    return Band(int(plus or at_least), None)


def _span(low: int, high: int) -> str:
    return f"value {low} is" if low == high else f"values {low}-{high} are"


def _check_contiguous(labels: list[tuple[str, str]]) -> None:
    """Bands (location key, label) must cover 0 upwards once each: no gap, no overlap, open at the top."""
    parsed: list[tuple[str, str, Band]] = []
    for key, label in labels:
        try:
            parsed.append((key, label, parse_band(label)))
        except ValueError as exc:
            raise Defect(str(exc), at=(key,)) from None
    ordered = sorted(parsed, key=lambda p: p[2].low)
    key, label, first = ordered[0]
    if first.low > 0:
        raise Defect(f"gap below band '{label}': {_span(0, first.low - 1)} not covered by any band", at=(key,))
    for (_, label_a, a), (key_b, label_b, b) in pairwise(ordered):
        if a.high is None or b.low <= a.high:
            raise Defect(f"bands '{label_a}' and '{label_b}' overlap", at=(key_b,))
        if b.low > a.high + 1:
            raise Defect(
                f"gap between bands '{label_a}' and '{label_b}': {_span(a.high + 1, b.low - 1)} not covered",
                at=(key_b,),
            )
    key, label, last = ordered[-1]
    if last.high is not None:
        raise Defect(f"bands stop at '{label}': values above {last.high} are not covered (end with 'N+')", at=(key,))


def _str_keys(value: object) -> object:
    # YAML reads an unquoted `0:` as the number 0; a band label is text.
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


def _valid_bands(bands: dict[str, float]) -> dict[str, float]:
    if not bands:
        raise ValueError("no bands given")
    _check_contiguous([(label, label) for label in bands])
    return bands


def _valid_tiers(bands: dict[Tier, str]) -> dict[Tier, str]:
    missing = [t.value for t in Tier if t not in bands]
    if missing:
        raise ValueError(
            f"missing tier threshold for {', '.join(repr(t) for t in missing)}: every axis needs low, medium, high and "
            "very_high"
        )
    for tier in Tier:
        try:
            parse_band(bands[tier])
        except ValueError as exc:
            raise Defect(str(exc), at=(tier.value,)) from None
    for lower, higher in pairwise(Tier):
        if parse_band(bands[higher]).low <= parse_band(bands[lower]).low:
            raise Defect(
                f"tier '{higher}' ('{bands[higher]}') must start above tier '{lower}' ('{bands[lower]}')",
                at=(higher.value,),
            )
    _check_contiguous([(t.value, bands[t]) for t in Tier])
    return bands


def _every_tier(weeks: dict[Tier, int]) -> dict[Tier, int]:
    missing = [t.value for t in Tier if t not in weeks]
    if missing:
        raise ValueError(f"missing review interval for {', '.join(repr(t) for t in missing)}")
    return weeks


Bands = Annotated[dict[str, float], BeforeValidator(_str_keys), AfterValidator(_valid_bands)]
TierBands = Annotated[dict[Tier, str], AfterValidator(_valid_tiers)]
ReviewWeeks = Annotated[dict[Tier, PositiveInt], AfterValidator(_every_tier)]


# ---- the schema ------------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Model):
    """Anything with a rule id and a plain-English explanation template."""

    placeholders: ClassVar[frozenset[str]] = frozenset()

    id: RuleId
    explanation: str = Field(min_length=1)

    @model_validator(mode="after")
    def _known_placeholders(self) -> Self:
        allowed = ", ".join(f"{{{p}}}" for p in sorted(self.placeholders)) or "none"
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(self.explanation) if name is not None]
        except ValueError as exc:
            raise Defect(f"explanation is not a valid template: {exc}", at=("explanation",)) from None
        for name in names:
            if name not in self.placeholders:
                raise Defect(
                    f"explanation uses unknown placeholder {{{name}}}; allowed here: {allowed}", at=("explanation",)
                )
        return self


class CountFactor(_Rule):
    """A static factor banded on a count field, e.g. L01 prior proven offences."""

    placeholders = frozenset({"value", "points"})
    input: CountInput
    bands: Bands


class OffenceFactor(_Rule):
    """Points by index offence type (L03)."""

    placeholders = frozenset({"offence", "points"})
    input: OffenceInput
    points: dict[IndexOffence, NonNegativeFloat]

    @model_validator(mode="after")
    def _every_offence(self) -> Self:
        missing = sorted(INDEX_OFFENCES - set(self.points))
        if missing:
            raise Defect(f"no points for index offence {', '.join(repr(m) for m in missing)}", at=("points",))
        return self


class IndicatorFactor(_Rule):
    """Points when an indicator is present; with several codes, the highest-scoring one present counts."""

    placeholders = frozenset({"meaning", "ago", "points", "multiplier"})
    points: dict[IndicatorCode, NonNegativeFloat] = Field(min_length=1)
    within_months: PositiveInt | None = Field(default=None, description="Counts only if observed within this window.")
    changeable: bool = Field(default=True, description="False for facts that mentoring cannot change (could_lower).")
    flags: list[Name] = Field(default_factory=list)


class LikelihoodFactor(IndicatorFactor):
    points: dict[LikelihoodCode, NonNegativeFloat] = Field(min_length=1)


class StaticLikelihood(_Model):
    cap: PositiveFloat
    counts: list[CountFactor]
    index_offence: OffenceFactor
    indicators: list[LikelihoodFactor]


class Likelihood(_Model):
    static: StaticLikelihood
    dynamic: list[LikelihoodFactor]


class RecencyBand(_Model):
    up_to_months: PositiveInt | None = None
    older: bool = False
    multiplier: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if (self.up_to_months is None) != self.older:
            raise ValueError("give either up_to_months: N or older: true")
        return self


def _valid_recency(bands: list[RecencyBand]) -> list[RecencyBand]:
    if not bands or not bands[-1].older:
        raise Defect(
            "the last recency band must be `older: true`, so every observation has a multiplier",
            at=(len(bands) - 1,) if bands else (),
        )
    for i, (a, b) in enumerate(pairwise(bands), start=1):
        if a.up_to_months is None:
            raise Defect("only the last recency band may be `older: true`", at=(i - 1,))
        if b.up_to_months is not None and b.up_to_months <= a.up_to_months:
            raise Defect(
                f"recency bands overlap: up_to_months {b.up_to_months} does not follow {a.up_to_months}", at=(i,)
            )
    return bands


Recency = Annotated[list[RecencyBand], AfterValidator(_valid_recency)]


class Condition(_Model):
    """When a harm rule or escalation fires: any of the codes, or at least N of them, or an index offence."""

    any_of: list[IndicatorCode] = Field(default_factory=list)
    count_of: list[IndicatorCode] = Field(default_factory=list)
    at_least: PositiveInt | None = None
    within_months: PositiveInt | None = None
    within_days: PositiveInt | None = None
    index_offence: list[IndexOffence] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.any_of and self.count_of:
            raise ValueError("give any_of or count_of, not both")
        if bool(self.count_of) != (self.at_least is not None):
            raise ValueError("count_of and at_least go together")
        if self.at_least is not None and self.at_least > len(self.count_of):
            raise Defect(
                f"at_least {self.at_least} is more than the {len(self.count_of)} codes listed: it could never fire",
                at=("at_least",),
            )
        if self.within_months and self.within_days:
            raise ValueError("give within_months or within_days, not both")
        if not (self.codes or self.index_offence):
            raise ValueError("the condition reads nothing: give any_of, count_of or index_offence")
        if (self.within_months or self.within_days) and not self.codes:
            raise ValueError("a within_ window applies to indicator codes only")
        return self

    @property
    def codes(self) -> list[str]:
        return self.any_of or self.count_of


class HarmRule(_Rule):
    placeholders = frozenset({"matched", "tier"})
    tier: Tier
    when: Condition


class Harm(_Model):
    rules: list[HarmRule] = Field(description="First match wins; otherwise harm is low.")

    @model_validator(mode="after")
    def _highest_first(self) -> Self:
        for i, (a, b) in enumerate(pairwise(self.rules), start=1):
            if b.tier.rank > a.tier.rank:
                raise Defect(
                    f"harm rule {b.id} ({b.tier}) comes after {a.id} ({a.tier}): the first match wins, so "
                    "order rules from very_high down",
                    at=("rules", i, "tier"),
                )
        return self


class Wellbeing(_Model):
    factors: list[IndicatorFactor]


class ProtectiveFactor(_Rule):
    placeholders = frozenset({"meaning", "points", "axis"})
    input: ProtectiveCode
    meaning: str = Field(min_length=1)
    likelihood: NonPositiveFloat = 0
    wellbeing: NonPositiveFloat = 0


class Protective(_Model):
    cap_per_axis: NonPositiveFloat = Field(description="The most protective factors may take off one axis.")
    factors: list[ProtectiveFactor]

    @model_validator(mode="after")
    def _each_code_once(self) -> Self:
        first: dict[str, int] = {}
        for i, factor in enumerate(self.factors):
            if factor.input in first:
                raise Defect(
                    f"protective factor '{factor.input}' is scored twice",
                    at=("factors", i, "input"),
                    first=("factors", first[factor.input], "input"),
                )
            first[factor.input] = i
        missing = sorted(PROTECTIVE_FACTOR_CODES - set(first))
        if missing:
            raise Defect(
                f"protective factor code(s) {', '.join(repr(m) for m in missing)} have no entry: give each "
                "a meaning (and 0 points if it should not score)",
                at=("factors",),
            )
        return self


class EscalationRule(_Rule):
    placeholders = frozenset({"matched", "count", "deadline_hours"})
    when: Condition
    unless: list[RuleId] = Field(default_factory=list, description="Earlier escalations that make this one moot.")
    actions: list[Name] = Field(min_length=1)
    deadline_hours: NonNegativeInt
    floors: dict[Axis, Tier] = Field(default_factory=dict)
    flags: list[Name] = Field(default_factory=list)


class NeedArea(_Model):
    code: Annotated[str, _snake(r"N\d{2}", "a needs code like N01")]
    id: RuleId
    name: str = Field(min_length=1)
    indicators: list[IndicatorCode] = Field(default_factory=list)
    significant: list[IndicatorCode] = Field(default_factory=list, description="Any one of these alone scores 2.")
    index_offence: list[IndexOffence] = Field(default_factory=list)
    prior_proven_offences_at_least: PositiveInt | None = None
    actions: list[str] = Field(default_factory=list, description="Typical actions and referrals, for the plan.")

    @model_validator(mode="after")
    def _reads_something(self) -> Self:
        if not self.id.startswith(f"{self.code}_"):
            raise Defect(f"id '{self.id}' must start with its code '{self.code}_'", at=("id",))
        if not (self.indicators or self.significant or self.index_offence or self.prior_proven_offences_at_least):
            raise ValueError(f"need {self.code} reads nothing, so it could never be scored")
        return self


class Needs(_Model):
    significant_count: int = Field(ge=2, description="This many signals make a need significant (2).")
    areas: list[NeedArea]

    @model_validator(mode="after")
    def _codes_once(self) -> Self:
        first: dict[str, int] = {}
        for i, area in enumerate(self.areas):
            if area.code in first:
                raise Defect(
                    f"duplicate needs code '{area.code}'",
                    at=("areas", i, "code"),
                    first=("areas", first[area.code], "code"),
                )
            first[area.code] = i
        return self


class Tiers(_Model):
    likelihood: TierBands
    wellbeing: TierBands


class RuleSet(_Model):
    """A complete, versioned rule set: the whole risk and needs model."""

    id: Annotated[str, _snake(r"[a-z0-9]+(-[a-z0-9]+)*", "a rule set id like sos-risk-needs")]
    version: Annotated[str, _snake(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", "a version like 1.0.0")]
    status: str
    decision_mode: Literal["advisory"]
    assessment_horizon_months: PositiveInt
    indicators: dict[IndicatorCode, str]
    index_offences: dict[IndexOffence, str]
    recency: Recency
    likelihood: Likelihood
    harm: Harm
    wellbeing: Wellbeing
    protective: Protective
    tiers: Tiers
    escalations: list[EscalationRule]
    needs: Needs
    reassess_every_weeks: ReviewWeeks

    @model_validator(mode="after")
    def _whole(self) -> Self:
        missing = sorted(INDICATOR_CODES - set(self.indicators))
        if missing:
            raise Defect(f"indicator code(s) {', '.join(repr(m) for m in missing)} have no meaning", at=("indicators",))
        missing = sorted(INDEX_OFFENCES - set(self.index_offences))
        if missing:
            raise Defect(
                f"index offence(s) {', '.join(repr(m) for m in missing)} have no meaning", at=("index_offences",)
            )
        _unique(self._rule_ids())
        _unique(self._scored_codes())
        seen: set[str] = set()
        for i, rule in enumerate(self.escalations):
            for j, other in enumerate(rule.unless):
                if other not in seen:
                    raise Defect(f"'{other}' is not an earlier escalation", at=("escalations", i, "unless", j))
            seen.add(rule.id)
        return self

    def _rule_ids(self) -> Iterator[tuple[str, Loc, str]]:
        static = self.likelihood.static
        yield static.index_offence.id, ("likelihood", "static", "index_offence", "id"), ""
        sections: list[tuple[Loc, Sequence[_Rule | NeedArea]]] = [
            (("likelihood", "static", "counts"), static.counts),
            (("likelihood", "static", "indicators"), static.indicators),
            (("likelihood", "dynamic"), self.likelihood.dynamic),
            (("harm", "rules"), self.harm.rules),
            (("wellbeing", "factors"), self.wellbeing.factors),
            (("protective", "factors"), self.protective.factors),
            (("escalations",), self.escalations),
            (("needs", "areas"), self.needs.areas),
        ]
        for path, rules in sections:
            for i, rule in enumerate(rules):
                yield rule.id, (*path, i, "id"), f"duplicate rule id '{rule.id}'"

    def _scored_codes(self) -> Iterator[tuple[str, Loc, str]]:
        axes: list[tuple[str, Loc, Sequence[IndicatorFactor]]] = [
            ("likelihood", ("likelihood", "static", "indicators"), self.likelihood.static.indicators),
            ("likelihood", ("likelihood", "dynamic"), self.likelihood.dynamic),
            ("wellbeing", ("wellbeing", "factors"), self.wellbeing.factors),
        ]
        for axis, path, factors in axes:
            for i, factor in enumerate(factors):
                for code in factor.points:
                    message = f"indicator '{code}' already scores {axis} in another rule: it would count twice"
                    yield f"{axis}:{code}", (*path, i, "points", code), message

    def indicator_meanings(self) -> dict[str, str]:
        """Indicator code → plain-English meaning, sorted by code."""
        return dict(sorted(self.indicators.items()))

    def protective_meanings(self) -> dict[str, str]:
        """Protective factor code → plain-English meaning, sorted by code."""
        return dict(sorted((f.input, f.meaning) for f in self.protective.factors))

    def review_weeks(self, tier: Tier) -> int:
        """Weeks until the scheduled reassessment of a case at this tier."""
        return self.reassess_every_weeks[tier]

    def tier_for(self, axis: ScoredAxis, score: float) -> Tier:
        """The tier a (non-negative) score reaches on a points axis."""
        bands = self.tiers.likelihood if axis == "likelihood" else self.tiers.wellbeing
        return next(tier for tier in reversed(Tier) if parse_band(bands[tier]).low <= math.floor(score))


def _unique(items: Iterator[tuple[str, Loc, str]]) -> None:
    """Refuse the second of any two items with the same key (key, where, message)."""
    first: dict[str, Loc] = {}
    for key, path, message in items:
        if key in first:
            raise Defect(message, at=path, first=first[key])
        first[key] = path


def band_points(bands: dict[str, float], value: float) -> float:
    """The points of the band that holds `value` (bands are contiguous from 0, so there always is one)."""
    return next(points for label, points in bands.items() if parse_band(label).contains(value))


# ---- loading ---------------------------------------------------------------------------------------------------


def load_rules(path: Path) -> RuleSet:
    """Load and check a rules file; raises RulesError naming the file, line and problem of each defect.

    The risk service runs what this accepts, and `reroute rules check` validates with it (a rules file is data
    both sides must read alike: a contract); the rule set risk ships is `services/risk/rules/`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(path, [Problem(0, "", f"cannot read the rules file: {exc.strerror or exc}")]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # composed once: the nodes give line numbers, the data is built from them
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise RulesError(path, [Problem(line, "", f"not valid YAML: {getattr(exc, 'problem', None) or exc}")]) from None
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {(): 1}
    duplicates: list[Problem] = []
    if node is not None:
        _index_lines(node, (), lines, duplicates)
    if duplicates:
        raise RulesError(path, duplicates)
    if not isinstance(data, dict):
        raise RulesError(path, [Problem(1, "", "a rules file is a YAML mapping (id, version, likelihood, ...)")])
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesError(path, [_problem(error, lines) for error in exc.errors()]) from None


def _index_lines(node: yaml.Node, path: Loc, lines: dict[tuple[str, ...], int], duplicates: list[Problem]) -> None:
    """Record the line of every key and list item, by its path of keys and indexes (as text)."""
    if isinstance(node, yaml.MappingNode):
        children: list[tuple[Loc, yaml.Node, yaml.Node]] = [((*path, str(k.value)), k, v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*path, i), item, item) for i, item in enumerate(node.value)]
    else:
        return
    for child, mark_node, value_node in children:
        key = tuple(str(part) for part in child)
        if key in lines:
            message = f"duplicate key '{child[-1]}' (first on line {lines[key]})"
            duplicates.append(Problem(mark_node.start_mark.line + 1, _where(child), message))
            continue
        lines[key] = mark_node.start_mark.line + 1
        _index_lines(value_node, child, lines, duplicates)


def _problem(error: ErrorDetails, lines: dict[tuple[str, ...], int]) -> Problem:
    loc: Loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(cause, Defect):
        message = str(cause)
        if cause.first is not None:
            message += f" (first on line {_line((*loc, *cause.first), lines)})"
        loc = (*loc, *cause.at)
    elif error["type"] == "extra_forbidden":
        key = str(loc[-1])
        why = prohibited_reason(key)
        message = (
            f"'{key}' is a prohibited input: {why}" if why else f"unexpected key '{key}': not part of the rules schema"
        )
    elif error["type"] == "missing":
        message = f"missing required key '{loc[-1]}'"
    return Problem(_line(loc, lines), _where(loc), message)


def _line(loc: Loc, lines: dict[tuple[str, ...], int]) -> int:
    """The line of the deepest part of `loc` found in the file (pydantic adds parts such as '[key]')."""
    path: tuple[str, ...] = ()
    for part in loc:
        if (*path, str(part)) in lines:
            path = (*path, str(part))
    return lines[path]


def _where(loc: Loc) -> str:
    """A readable path such as likelihood.dynamic[0].points.weapon_carrying, without pydantic's own parts."""
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f"[{part}]"
        elif not re.search(r"[\[\](),]", part):
            where += f".{part}" if where else part
    return where
