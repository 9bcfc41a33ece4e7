"""Recognising a young person referred again: normalised names and birth date under a keyed hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake.crypto import PersonMatcher
from services.intake.people import match_key, normalise_name, previous_referrals
from shared.contracts.intake import Referral
from tests.support.cluster import referral


@pytest.mark.parametrize(("a", "b"), [
    ("Zoë", "zoe"),
    ("Anne-Marie", "anne marie"),
    ("O'Brien", "OBRIEN"),
    ("  Jordan  ", "jordan"),
    ("Ṣadé", "sade"),
    ("Мария", "мария"),
])
def test_names_that_differ_only_in_case_accents_spaces_or_punctuation_are_the_same(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b)


@pytest.mark.parametrize(("a", "b"), [("Jordan", "Jordon"), ("Ann", "Anna"), ("Мария", "Maria")])
def test_different_names_stay_different(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b)


def _referral(given: str, family: str, born: str) -> Referral:
    body = referral("R1", language="en")
    body["young_person"] |= {"given_name": given, "family_name": family, "date_of_birth": born}
    return Referral.model_validate(body)


def test_the_match_key_is_keyed_and_ignores_spelling_noise_but_not_the_birth_date() -> None:
    matcher = PersonMatcher(b"k" * 32)
    same = match_key(matcher, _referral("Zoë-Ann", "O'Neil", "2010-05-17"))

    assert match_key(matcher, _referral("zoe ann", "ONEIL", "2010-05-17")) == same
    assert match_key(matcher, _referral("Zoë-Ann", "O'Neil", "2010-05-18")) != same
    assert match_key(PersonMatcher(b"x" * 32), _referral("Zoë-Ann", "O'Neil", "2010-05-17")) != same
    assert "zoe" not in same and "2010" not in same


def test_previous_referrals_counts_them_and_gives_the_latest() -> None:
    earlier = [datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)]
    assert previous_referrals([]) is None
    found = previous_referrals(earlier)
    assert found is not None and found.count == 2 and found.last_referred_at == earlier[1]
