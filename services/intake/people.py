"""Recognising the same young person across referrals, and who they are to the services that need a name. Pure."""

from __future__ import annotations

import secrets
import unicodedata
from datetime import date, datetime
from functools import cache

import icu  # type: ignore[import-untyped]  # PyICU (the pyicu-wheels build): ICU's UTS #39 SpoofChecker

from services.intake.crypto import PersonMatcher
from shared.contracts.intake import PreviousReferrals, Referral

SKELETON_DATA = f"ICU {icu.ICU_VERSION}, Unicode {icu.UNICODE_VERSION}"
"""Whose confusables the skeleton follows: a new release may map a few more characters, so after upgrading the
pinned pyicu-wheels, run `reroute keys rematch`."""


def new_person_id() -> str:
    return f"psn_{secrets.token_hex(8)}"


def normalise_name(name: str) -> str:
    """Letters only, accents dropped, case folded: 'Zoë  O'Brien-Smith' and 'zoe obriensmith' are equal."""
    letters = _letters(name)
    return (letters or " ".join(name.split())).casefold()


def name_skeleton(name: str) -> str:
    """`normalise_name`, then the UTS #39 confusables skeleton of it in capitals and again in small letters, so a
    look-alike from another script is the same letter: Cyrillic 'Кwаbеnа' is 'kwabena', Greek 'Αli' is 'ali'.

    A function of `normalise_name` alone, so names it made equal stay equal (a person recorded under it is never
    split by `reroute keys rematch`). Capitals first because most look-alikes are capitals (Cyrillic А В Е К М Н О
    Р С Т Х, Greek Α Β Ε Η Ι Κ Μ Ν Ο Ρ Τ Χ); the small letters catch the rest (Cyrillic һ, ԁ). Like the standard
    skeleton it is for comparing only: 'kim' and 'kirn', 'ali' and 'all' are one skeleton, which the family name
    and the birth date, matched with it, keep from joining two real people."""
    normal = normalise_name(name)
    return _skeleton(_skeleton(normal.upper()))


def match_key(matcher: PersonMatcher, referral: Referral) -> str:
    """The keyed hash a new person is stored under: equal for the same person, however their names are spelt."""
    return match_keys(matcher, referral)[0]


def match_keys(matcher: PersonMatcher, referral: Referral) -> list[str]:
    """Every hash this person may be stored under, the current one first (see `match_keys_of`)."""
    yp = referral.young_person
    return match_keys_of(matcher, yp.given_name, yp.family_name, yp.date_of_birth)


def match_keys_of(matcher: PersonMatcher, given_name: str, family_name: str, born: date) -> list[str]:
    """The hashes of the name skeletons and birth date under each matching key (the first key's first: what a new
    person is stored under), then under each key as versions before the skeleton hashed them (letters only). So a
    person stored before an upgrade, or under a key since rotated, is still recognised until `reroute keys rematch`
    has moved them to the first."""
    skeletons = (name_skeleton(given_name), name_skeleton(family_name), born.isoformat())
    normal = (normalise_name(given_name), normalise_name(family_name), born.isoformat())
    keys = matcher.match_keys(*skeletons) + matcher.match_keys(*normal)
    return list(dict.fromkeys(keys))


def previous_referrals(earlier: list[datetime]) -> PreviousReferrals | None:
    """What the accepted event says about earlier referrals of the same person (their receipt times)."""
    if not earlier:
        return None
    return PreviousReferrals(count=len(earlier), last_referred_at=max(earlier))


def first_name(referral: Referral) -> str:
    """The given name, as a mentor's calendar may show it (never the family name)."""
    return " ".join(referral.young_person.given_name.split())


def _letters(text: str) -> str:
    """The letters (general category L*, exactly what `str.isalpha` tests) of the NFKD form."""
    return "".join(filter(str.isalpha, unicodedata.normalize("NFKD", text)))


def _skeleton(text: str) -> str:
    """UTS #39 skeleton, letters only (a prototype may carry a mark, which `normalise_name` drops), case folded."""
    return (_letters(_spoof_checker().getSkeleton(0, text)) or text).casefold()


@cache
def _spoof_checker() -> icu.SpoofChecker:
    return icu.SpoofChecker()
