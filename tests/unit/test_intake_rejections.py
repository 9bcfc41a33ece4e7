"""A rejection names the field and the rule it breaks, never the value given: a name typed in the wrong field
would otherwise be stored and published with `referrals.rejected` (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.validation import readable_agency_referral_id, validate_referral
from tests.support.cluster import referral

NAME = "Zebedee Quartermaine"


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    body = referral("R-1", language="en")
    here: Any = body
    for part in path[:-1]:
        here = here[part]
    here[path[-1]] = value
    return body


def _errors(body: dict[str, Any]) -> dict[str, str]:
    result = validate_referral(json.dumps(body).encode())
    assert isinstance(result, list), "refused"
    return {e.field: e.message for e in result}


@pytest.mark.parametrize(("path", "value", "field", "rule"), [
    (("young_person", "date_of_birth"), NAME, "young_person.date_of_birth", "not a date in YYYY-MM-DD form"),
    (("young_person", "gender"), NAME, "young_person.gender", "must be 'female', 'male', 'non_binary' or 'not_stated'"),
    (("index_offence",), NAME, "index_offence", "must be 'none_prevention_referral', "),
    (("preferences",), {"mentor_gender": NAME}, "preferences.mentor_gender",
     "must be 'female', 'male', 'non_binary' or 'not_stated', or 'any'"),
    (("agency_referral_id",), NAME, "agency_referral_id", "String should match pattern"),
    (("young_person", "borough"), NAME, "young_person.borough", "not a London borough"),
    (("young_person", "languages"), [NAME], "young_person.languages[0]", "not an ISO 639-1 language code"),
    (("preferences",), {"language": NAME}, "preferences.language", "not an ISO 639-1 language code"),
    (("indicators",), ["peers_offending", NAME], "indicators[1].code", "unknown indicator code"),
    (("protective_factors",), [NAME, "engaged_in_education", "Jo"], "protective_factors",
     "unknown protective factor code at [0], [2]"),
    (("availability",), [{"day": NAME, "start": "10:00", "end": "11:00"}], "availability[0].day", "must be 'mon'"),
    (("availability",), [{"day": "mon", "start": NAME, "end": "11:00"}], "availability[0].start", "HH:MM"),
    (("referrer", "email"), NAME, "referrer.email", "not an email address"),
    (("referrer", "phone"), NAME, "referrer.phone", "not a phone number"),
])
def test_the_message_names_the_rule_and_not_the_value(
    path: tuple[str | int, ...], value: Any, field: str, rule: str
) -> None:
    errors = _errors(_with(path, value))
    assert rule in errors[field], errors
    for word in ("zebedee", "quartermaine"):
        assert word not in repr(errors).casefold(), errors


@given(st.from_regex(r"[A-Z][a-zà-ÿ'-]{3,12} [A-Z][a-zà-ÿ'-]{3,14}", fullmatch=True))
def test_no_name_typed_in_a_checked_field_comes_back(text: str) -> None:
    for path in [("young_person", "borough"), ("young_person", "gender"), ("young_person", "date_of_birth"),
                 ("young_person", "languages"), ("indicators",), ("protective_factors",), ("index_offence",),
                 ("agency_referral_id",), ("referrer", "email"), ("consent", "recorded_at"), ("availability",)]:
        value: Any = [text] if path[-1] in ("languages", "indicators", "protective_factors") else text
        if path == ("availability",):
            value = [{"day": "mon", "start": text, "end": text}]
        result = validate_referral(json.dumps(_with(path, value)).encode())
        if isinstance(result, list):
            said = " ".join(f"{e.field} {e.message}" for e in result).casefold()
            assert text.casefold() not in said, (path, result)


def test_the_rejections_agency_referral_id_is_given_back_only_when_the_contract_allows_it() -> None:
    assert readable_agency_referral_id(json.dumps(_with(("agency_referral_id",), NAME)).encode()) is None
    assert readable_agency_referral_id(json.dumps(_with(("young_person", "gender"), NAME)).encode()) == "R-1"
