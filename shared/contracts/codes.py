"""The code lists that are part of the public contract (README, "Event contract").

The risk rules give these codes their meaning; they may add codes but never rename these.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Literal


class Tier(StrEnum):
    """Risk tier, lowest first. Overall tier = the highest of the three axes."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"

    @property
    def rank(self) -> int:
        return _TIER_ORDER.index(self)

    @classmethod
    def highest(cls, *tiers: Tier) -> Tier:
        return max(tiers, key=lambda t: t.rank)


_TIER_ORDER = [Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.VERY_HIGH]

Gender = Literal["female", "male", "non_binary", "not_stated"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

WithdrawalReason = Literal[
    "consent_withdrawn",  # the young person (or their guardian) withdrew consent
    "referred_in_error",  # referred by mistake: the wrong young person, or no need for the service
    "needs_met_elsewhere",  # another service is meeting the need
    "moved_away",  # out of the area the service covers
    "other",  # say what in a few words in the note
]
"""Why an agency withdraws a referral (`referrals.withdraw`, `POST /v1/withdrawals`)."""

IndexOffence = Literal[
    "none_prevention_referral",
    "other",
    "acquisitive",
    "drug_supply",
    "violence_no_weapon",
    "robbery",
    "violence_with_weapon_or_firearm",
]

INDICATOR_CODES: frozenset[str] = frozenset(
    {
        "weapon_carrying",
        "group_violence",
        "ete_disengaged",
        "peers_offending",
        "attitudes_supporting_violence",
        "impulsivity_or_anger",
        "substance_use",
        "unstructured_time",
        "family_conflict",
        "accommodation_instability",
        "previous_breach",
        "custody_history",
        "missing_episodes",
        "found_out_of_area",
        "unexplained_money",
        "older_controlling_associates",
        "drug_debt",
        "unexplained_injuries",
        "recent_violent_victimisation",
        "self_harm",
        "out_of_education",
        "looked_after",
        "home_cuckooed",
        "threats_received",
        "learning_needs",
        "sexual_exploitation",
        "threat_to_life_warning",
        "intent_to_use_weapon",
        "currently_missing",
        "risk_to_staff",
    }
)

PROTECTIVE_FACTOR_CODES: frozenset[str] = frozenset(
    {
        "engaged_in_education",
        "trusted_prosocial_adult",
        "prosocial_activity",
        "motivation_to_change",
        "positive_attitude_to_support",
        "coping_resilience",
        "safe_stable_home",
    }
)

LONDON_BOROUGHS: tuple[str, ...] = (
    "Barking and Dagenham",
    "Barnet",
    "Bexley",
    "Brent",
    "Bromley",
    "Camden",
    "City of London",
    "Croydon",
    "Ealing",
    "Enfield",
    "Greenwich",
    "Hackney",
    "Hammersmith and Fulham",
    "Haringey",
    "Harrow",
    "Havering",
    "Hillingdon",
    "Hounslow",
    "Islington",
    "Kensington and Chelsea",
    "Kingston upon Thames",
    "Lambeth",
    "Lewisham",
    "Merton",
    "Newham",
    "Redbridge",
    "Richmond upon Thames",
    "Southwark",
    "Sutton",
    "Tower Hamlets",
    "Waltham Forest",
    "Wandsworth",
    "Westminster",
)
_BOROUGH_BY_KEY = {b.casefold(): b for b in LONDON_BOROUGHS}


def canonical_borough(name: str) -> str | None:
    """The borough's canonical spelling, matching case-insensitively ("&" for "and" allowed)."""
    key = " ".join(name.replace("&", "and").split()).casefold()
    return _BOROUGH_BY_KEY.get(key)


def london_borough(value: str) -> str:
    """The borough's canonical spelling; a ValueError naming the value for anything that is not a London borough."""
    canonical = canonical_borough(value)
    if canonical is None:
        raise ValueError(f"'{value}' is not a London borough (one of the 32 boroughs or the City of London)")
    return canonical


@lru_cache(maxsize=8192)  # the matcher asks for the same few hundred places' keys for every (case, mentor)
def place_key(name: str) -> str:
    """How place names (boroughs, unsafe areas, exclusion zones) are compared: case- and space-insensitively."""
    return " ".join(name.split()).casefold()
