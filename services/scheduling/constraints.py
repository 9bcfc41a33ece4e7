"""Who may mentor whom: the matcher's inputs and the hard rules that do not depend on time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from shared.contracts.codes import Tier, place_key
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import MentorRecord

GenderRequest = Literal["female", "male", "non_binary", "not_stated", "any"]
Rule = Literal["borough", "language", "capacity", "tier", "gender", "exclusion_zone", "no_slot"]

LOWER_TIERS = frozenset({Tier.LOW, Tier.MEDIUM})


@dataclass(frozen=True)
class Case:
    """What scheduling knows about an accepted, assessed referral."""

    referral_id: str
    tier: Tier
    borough: str
    languages: list[str]
    mentor_gender: GenderRequest
    preferred_language: str | None
    availability: list[WeeklyWindow]  # the young person's weekly windows; empty means any time
    unsafe_areas: list[str]
    accepted_at: datetime  # aware


@dataclass(frozen=True)
class MentorState:
    """A mentor with their current load."""

    record: MentorRecord
    caseload: int  # young people currently assigned
    busy: list[tuple[datetime, datetime]]  # sessions already booked (aware)

    @cached_property
    def busy_utc(self) -> tuple[tuple[datetime, datetime], ...]:
        """The booked sessions in UTC, in order (computed once per state, reused for every case)."""
        return tuple(sorted((start.astimezone(UTC), end.astimezone(UTC)) for start, end in self.busy))


@dataclass(frozen=True)
class Exclusion:
    """Why a mentor cannot take a case: the rule broken and a plain-words reason."""

    rule: Rule
    reason: str


def _language(word: str) -> str:
    return word.strip().casefold()


def _borough(case: Case, mentor: MentorState) -> str | None:
    if place_key(case.borough) in {place_key(b) for b in mentor.record.boroughs}:
        return None
    return f"does not cover {case.borough}"


def _shared_language(case: Case, mentor: MentorState) -> str | None:
    # preferred_language is only a preference (scored); the hard rule reads case.languages.
    if {_language(x) for x in case.languages} & {_language(x) for x in mentor.record.languages}:
        return None
    return "no shared language"


def _capacity(case: Case, mentor: MentorState) -> str | None:
    if mentor.caseload < mentor.record.max_caseload:
        return None
    return f"at caseload ({mentor.caseload} of {mentor.record.max_caseload})"


def _tier(case: Case, mentor: MentorState) -> str | None:
    if mentor.record.kind == "staff" or case.tier in LOWER_TIERS:
        return None
    return f"{mentor.record.kind} mentors take only low and medium tiers"


def _gender(case: Case, mentor: MentorState) -> str | None:
    if case.mentor_gender in ("any", "not_stated", mentor.record.gender):  # not_stated: no preference given
        return None
    return f"not {gender_label(case.mentor_gender)} as requested"


def _exclusion_zone(case: Case, mentor: MentorState) -> str | None:
    licence = mentor.record.licence
    if mentor.record.kind != "rotl" or licence is None:
        return None
    areas = {place_key(area) for area in (case.borough, *case.unsafe_areas)}
    for zone in licence.exclusion_zones:
        if place_key(zone) in areas:
            return f"exclusion zone {zone} overlaps the young person's areas"
    return None


_RULES: list[tuple[Rule, Callable[[Case, MentorState], str | None]]] = [
    ("borough", _borough),
    ("language", _shared_language),
    ("capacity", _capacity),
    ("tier", _tier),
    ("gender", _gender),
    ("exclusion_zone", _exclusion_zone),
]


def first_exclusion(case: Case, mentor: MentorState) -> Exclusion | None:
    """The first hard, time-independent rule that rules the mentor out; None when eligible."""
    for rule, check in _RULES:
        reason = check(case, mentor)
        if reason is not None:
            return Exclusion(rule, reason)
    return None


def exclusion(case: Case, mentor: MentorState) -> str | None:
    """The first hard, time-independent reason the mentor cannot take the case, in plain words; None if eligible."""
    found = first_exclusion(case, mentor)
    return None if found is None else found.reason


def gender_label(gender: str) -> str:
    return {"non_binary": "non-binary", "not_stated": "'not stated'"}.get(gender, gender)


def summarise(case: Case, counts: Counter[Rule], *, horizon_days: int) -> str:
    """'no mentor fits: 3 at caseload, 2 do not cover Hackney, …', largest count first, then rule order."""
    wanted, days = gender_label(case.mentor_gender), horizon_days
    zone_tail = "an exclusion zone over the young person's areas"
    phrases: dict[Rule, tuple[str, str]] = {  # (one, many)
        "borough": (f"does not cover {case.borough}", f"do not cover {case.borough}"),
        "language": ("shares no language", "share no language"),
        "capacity": ("at caseload", "at caseload"),
        "tier": ("takes only low and medium tiers", "take only low and medium tiers"),
        "gender": (f"is not {wanted} as requested", f"are not {wanted} as requested"),
        "exclusion_zone": (f"has {zone_tail}", f"have {zone_tail}"),
        "no_slot": (f"has no free slot in the next {days} days", f"have no free slot in the next {days} days"),
    }
    order = list(phrases)
    parts = sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0])))
    return "no mentor fits: " + ", ".join(f"{n} {phrases[rule][0 if n == 1 else 1]}" for rule, n in parts)
