"""Recognising a young person referred again: normalised names and birth date under a keyed hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake.crypto import PersonMatcher
from services.intake.people import match_key, match_keys, name_skeleton, normalise_name, previous_referrals
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


@pytest.mark.parametrize(("a", "b"), [
    ("Kwabena", "Кwаbеnа"),  # Cyrillic К, а, е
    ("KWABENA", "КWАВЕNА"),  # Cyrillic capitals К, А, В, Е
    ("Grace", "Grасе"),  # Cyrillic small а, с, е
    ("Ali", "Αli"),  # Greek capital alpha
    ("Chloe", "Сһloе"),  # Cyrillic һ, a look-alike only in small letters
    ("Peter", "Реtеr"),
])
def test_names_spelt_with_look_alike_letters_from_other_scripts_have_one_skeleton(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b), "the earlier comparison told them apart"
    assert name_skeleton(a) == name_skeleton(b)


@pytest.mark.parametrize(("a", "b"), [("Jordan", "Jordon"), ("Ann", "Anna"), ("Мария", "Maria"), ("Mia", "Ria"),
                                      ("Akhmed", "Ахмед"), ("Sam", "Tam")])
def test_names_that_look_different_keep_different_skeletons(a: str, b: str) -> None:
    assert name_skeleton(a) != name_skeleton(b)


@pytest.mark.parametrize("names", [("Zoë", "zoe", "ZOE"), ("Anne-Marie", "anne marie"), ("Ivan", "IVAN", "ivan")])
def test_the_skeleton_keeps_every_name_the_earlier_comparison_made_equal(names: tuple[str, ...]) -> None:
    """A person stored under the earlier comparison is never split in two by `reroute keys rematch`."""
    assert len({normalise_name(n) for n in names}) == 1
    assert len({name_skeleton(n) for n in names}) == 1


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


def test_a_look_alike_spelling_is_the_same_person_and_another_birth_date_is_not() -> None:
    matcher = PersonMatcher(b"k" * 32)
    latin = match_key(matcher, _referral("Kwabena", "Mensah", "2010-05-17"))

    assert match_key(matcher, _referral("Кwаbеnа", "Меnsаh", "2010-05-17")) == latin
    assert match_key(matcher, _referral("Кwаbеnа", "Меnsаh", "2010-05-18")) != latin
    assert match_key(matcher, _referral("Kwame", "Mensah", "2010-05-17")) != latin


def test_a_person_stored_before_the_upgrade_or_under_an_older_key_is_still_found() -> None:
    old, new = b"o" * 32, b"n" * 32
    jordan = _referral("Jordan", "Ivanov", "2010-05-17")
    before_the_skeleton = PersonMatcher(old).match_key("jordan", "ivanov", "2010-05-17")  # as earlier versions did
    under_the_old_key = match_key(PersonMatcher(old), jordan)

    candidates = match_keys(PersonMatcher(new, old), jordan)

    assert candidates[0] == match_key(PersonMatcher(new), jordan), "a new person is stored under the new key"
    assert before_the_skeleton in candidates and under_the_old_key in candidates
    assert len(candidates) == len(set(candidates))


def test_previous_referrals_counts_them_and_gives_the_latest() -> None:
    earlier = [datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)]
    assert previous_referrals([]) is None
    found = previous_referrals(earlier)
    assert found is not None and found.count == 2 and found.last_referred_at == earlier[1]
