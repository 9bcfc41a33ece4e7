"""A rejection names the field and the rule it breaks, never the value given: a name typed in the wrong field
would otherwise be stored and published with `referrals.rejected` (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.validation import readable_agency_referral_id, validate_referral
from shared.contracts.intake import Referral
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
    (("agency_referral_id",), NAME, "agency_referral_id",
     "may hold only letters (A-Z, a-z), digits (0-9) and . _ : / -, no spaces"),
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


# What the published JSON Schema says a field is, and only that: pydantic's lax mode would take "yes" or 1 for
# consent, "3" for a count and a number of seconds for a date, which a schema-validating agency's system refuses.
@pytest.mark.parametrize(("path", "value", "field", "rule"), [
    *[(("consent", "given"), v, "consent.given", "must be true or false (JSON true/false)")
      for v in ["yes", "1", 1, "true", "True", 0, None]],
    (("preferences",), {"mentor_gender_required": "false"}, "preferences.mentor_gender_required", "true or false"),
    *[(("prior_proven_offences",), v, "prior_proven_offences", "must be a whole number (a JSON number")
      for v in ["3", True, [3]]],
    (("age_at_first_proven_offence",), "12", "age_at_first_proven_offence", "must be a whole number"),
    (("prior_proven_offences",), 2.5, "prior_proven_offences", "must be a whole number, without a fraction"),
    (("young_person", "date_of_birth"), 1262304000, "young_person.date_of_birth", "not a date in YYYY-MM-DD form"),
    (("indicators",), [{"code": "peers_offending", "observed_at": 0}], "indicators[0].observed_at", "YYYY-MM-DD"),
    (("consent", "recorded_at"), 1700000000, "consent.recorded_at", "not a date and time in ISO 8601 form"),
    # Text of digits alone, which pydantic also reads as seconds (or milliseconds) since 1970: 2010-01-01 here
    *[(("young_person", "date_of_birth"), v, "young_person.date_of_birth", "not a date in YYYY-MM-DD form")
      for v in ["1262304000", "1262304000000", " 1262304000 ", "-5", "+1262304000", "1262304000.5", "1.262304e9",
                "1.262304E12"]],
    (("indicators",), [{"code": "peers_offending", "observed_at": "1767312000"}], "indicators[0].observed_at",
     "not a date in YYYY-MM-DD form"),
    *[(("consent", "recorded_at"), v, "consent.recorded_at", "not a date and time in ISO 8601 form")
      for v in ["1700000000", "1700000000000", "1700000000.5", ".5", "-1", "1.7e9", "17.0e8", "1.7E+9"]],
])
def test_a_value_of_another_json_type_is_refused_naming_the_field(
    path: tuple[str | int, ...], value: Any, field: str, rule: str
) -> None:
    errors = _errors(_with(path, value))
    assert list(errors) == [field], errors
    assert rule in errors[field], errors
    assert "Input should" not in errors[field] and "yes" not in errors[field]


@pytest.mark.parametrize(("path", "value", "read"), [
    (("consent", "given"), True, lambda r: r.consent.given is True),
    (("prior_proven_offences",), 3, lambda r: r.prior_proven_offences == 3),
    (("prior_proven_offences",), 3.0, lambda r: r.prior_proven_offences == 3),  # JSON Schema's integer admits 3.0
    (("prior_proven_offences",), 0, lambda r: r.prior_proven_offences == 0),
    (("age_at_first_proven_offence",), 12, lambda r: r.age_at_first_proven_offence == 12),
    (("preferences",), {"mentor_gender_required": False}, lambda r: r.preferences.mentor_gender_required is False),
    (("young_person", "date_of_birth"), "2010-03-04", lambda r: str(r.young_person.date_of_birth) == "2010-03-04"),
    (("indicators",), [{"code": "peers_offending", "observed_at": "2026-01-02"}],
     lambda r: str(r.indicators[0].observed_at) == "2026-01-02"),
    (("consent", "recorded_at"), "2026-05-01T10:00:00+01:00", lambda r: r.consent.recorded_at.utcoffset().seconds == 3600),
])
def test_json_true_false_numbers_and_iso_dates_are_still_read(
    path: tuple[str | int, ...], value: Any, read: Any
) -> None:
    result = validate_referral(json.dumps(_with(path, value)).encode())
    assert isinstance(result, Referral), result
    assert read(result)


@pytest.mark.parametrize(("path", "value", "field", "message"), [
    (("consent", "given"), None, "consent.given", "must be true or false (JSON true/false), not null"),
    (("consent", "given"), "yes", "consent.given", "must be true or false (JSON true/false), not text"),
    (("consent", "given"), 1, "consent.given", "must be true or false (JSON true/false), not a number"),
    (("consent", "given"), [True], "consent.given", "must be true or false (JSON true/false), not a list"),
    (("prior_proven_offences",), True, "prior_proven_offences",
     "must be a whole number (a JSON number such as 3), not true/false"),
    (("prior_proven_offences",), "3", "prior_proven_offences", "must be a whole number (a JSON number such as 3), not text"),
])
def test_a_value_of_another_json_type_is_said_as_the_type_it_was_sent_as(
    path: tuple[str | int, ...], value: Any, field: str, message: str
) -> None:
    assert _errors(_with(path, value)) == {field: message}


_DATETIME = "not a date and time in ISO 8601 form with its offset, e.g. 2026-05-01T10:00:00+01:00"


@pytest.mark.parametrize(("value", "why"), [
    ("2026-02-30T10:00:00Z", "day value is outside expected range"),
    ("2026-13-01T10:00:00Z", "month value is outside expected range of 1-12"),
])
def test_a_well_formed_impossible_date_and_time_says_which_part_is_wrong(value: str, why: str) -> None:
    assert _errors(_with(("consent", "recorded_at"), value)) == {"consent.recorded_at": f"{_DATETIME} ({why})"}


@given(st.text(alphabet="0123456789-:TZ+. abcdeinrtyz", min_size=2, max_size=30))
def test_the_reason_a_date_and_time_is_refused_never_quotes_it(text: str) -> None:
    result = validate_referral(json.dumps(_with(("consent", "recorded_at"), text)).encode())
    if isinstance(result, list) and len(text.strip()) >= 2:  # one letter is in any sentence
        said = " ".join(e.message.removeprefix(_DATETIME) for e in result).casefold()
        assert text.strip().casefold() not in said, result


def test_a_count_too_large_to_read_is_refused_in_plain_words() -> None:
    body = json.dumps(_with(("prior_proven_offences",), 0)).replace(
        '"prior_proven_offences": 0', '"prior_proven_offences": 1e400, "age_at_first_proven_offence": -1e400')
    result = validate_referral(body.encode())
    assert isinstance(result, list)
    assert {e.field: e.message for e in result} == {
        "prior_proven_offences": "must be a whole number (a JSON number such as 3): this one is too large to read",
        "age_at_first_proven_offence": "must be a whole number (a JSON number such as 3): this one is too large to read",
    }


def test_consent_false_is_refused_as_not_given() -> None:
    assert _errors(_with(("consent", "given"), False)) == {
        "consent": "consent has not been given; we cannot accept a referral without it"}


@pytest.mark.parametrize(("path", "value", "field", "rule"), [
    (("young_person", "languages"), "en", "young_person.languages", "must be a list (a JSON array)"),
    (("young_person", "languages"), [], "young_person.languages", "too few: at least 1 item, not 0"),
    (("consent",), "yes", "consent", "must be an object (JSON {...}) with its own fields"),
    (("reason",), 5, "reason", "must be text (a JSON string)"),
    (("reason",), "", "reason", "must not be empty"),
    (("prior_proven_offences",), -1, "prior_proven_offences", "must be at least 0"),
    (("age_at_first_proven_offence",), 31, "age_at_first_proven_offence", "must be at most 30"),
])
def test_pydantics_wording_is_said_in_reroutes(path: tuple[str | int, ...], value: Any, field: str, rule: str) -> None:
    assert _errors(_with(path, value)) == {field: rule}
