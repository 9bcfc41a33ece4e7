"""Recognising the same young person across referrals, and who they are to the services that need a name. Pure."""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime

from services.intake.crypto import PersonMatcher
from shared.contracts.intake import PreviousReferrals, Referral


def new_person_id() -> str:
    return f"psn_{secrets.token_hex(8)}"


def normalise_name(name: str) -> str:
    """Letters only, accents dropped, case folded: 'Zoë  O'Brien-Smith' and 'zoe obriensmith' are equal."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if unicodedata.category(c).startswith("L"))
    return (letters or " ".join(name.split())).casefold()


def match_key(matcher: PersonMatcher, referral: Referral) -> str:
    """The keyed hash of normalised given name, family name and birth date: equal for the same person."""
    yp = referral.young_person
    return matcher.match_key(normalise_name(yp.given_name), normalise_name(yp.family_name),
                             yp.date_of_birth.isoformat())


def previous_referrals(earlier: list[datetime]) -> PreviousReferrals | None:
    """What the accepted event says about earlier referrals of the same person (their receipt times)."""
    if not earlier:
        return None
    return PreviousReferrals(count=len(earlier), last_referred_at=max(earlier))


def first_name(referral: Referral) -> str:
    """The given name, as a mentor's calendar may show it (never the family name)."""
    return " ".join(referral.young_person.given_name.split())
