"""Intake's rules on dates (`date_problems`): an age of 8 to 25 on the referral date, indicators observed between
birth and tomorrow, consent not recorded in the future. Pure: the receipt time is passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.validation import date_problems, validate_referral
from shared.contracts.common import FieldError
from shared.contracts.intake import Referral
from tests.support.cluster import referral

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # the referral date is 2026-11-30 (Europe/London)
AGE = "the young person must be aged 8 to 25 on the referral date"
BEFORE_BIRTH = "cannot be before the young person's date of birth"
FUTURE_OBSERVATION = "cannot be in the future: at the latest the day after the referral is received"
FUTURE_CONSENT = "cannot be in the future: at the latest 5 minutes after the referral is received"


def body(
    *, born: str = "2010-05-17", observed: tuple[str, ...] = (), recorded: str = "2026-11-20T10:00:00+00:00"
) -> dict[str, Any]:
    data = referral("R1", language="en")
    data["young_person"]["date_of_birth"] = born
    data["consent"]["recorded_at"] = recorded
    data["indicators"] = ["peers_offending", *({"code": "weapon_carrying", "observed_at": d} for d in observed)]
    return data


def problems(data: dict[str, Any], *, referred_at: datetime = NOW, now: datetime = NOW) -> list[tuple[str, str]]:
    valid = Referral.model_validate(data)
    return [(p.field, p.message) for p in date_problems(valid, referred_at=referred_at, now=now)]


def test_a_referral_with_plausible_dates_has_no_problems() -> None:
    assert problems(referral("R1", language="en")) == []
    assert problems(body(observed=("2026-10-01", "2026-11-30"))) == []


@pytest.mark.parametrize(("born", "ok"), [
    ("2018-11-30", True),   # 8 today
    ("2018-12-01", False),  # 8 tomorrow
    ("2000-12-01", True),   # 25, the last day before 26
    ("2000-11-30", False),  # 26 today
    ("9999-01-01", False),
    ("0001-01-01", False),
])
def test_the_young_person_is_aged_8_to_25_on_the_referral_date(born: str, ok: bool) -> None:
    assert problems(body(born=born)) == ([] if ok else [("young_person.date_of_birth", AGE)])


def test_the_referral_date_is_the_day_in_london() -> None:
    late_evening = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # already 1 July in London (BST)
    recorded = "2026-06-30T10:00:00+01:00"
    assert problems(body(born="2018-07-01", recorded=recorded), referred_at=late_evening, now=late_evening) == []
    assert problems(body(born="2018-07-02", recorded=recorded), referred_at=late_evening, now=late_evening) == [
        ("young_person.date_of_birth", AGE)]


def test_the_age_is_taken_on_the_date_first_received_not_on_the_date_of_an_update() -> None:
    aged_25 = body(born="2000-12-01")
    assert problems(aged_25, referred_at=NOW, now=NOW + timedelta(days=365)) == []
    assert problems(aged_25, referred_at=NOW + timedelta(days=365), now=NOW + timedelta(days=365)) == [
        ("young_person.date_of_birth", AGE)]


@pytest.mark.parametrize(("observed", "message"), [
    ("2026-12-01", None),  # tomorrow: an agency a time zone ahead may already be there
    ("2026-12-02", FUTURE_OBSERVATION),
    ("9999-12-31", FUTURE_OBSERVATION),
    ("2010-05-17", None),  # the day of birth
    ("2010-05-16", BEFORE_BIRTH),
    ("0001-01-01", BEFORE_BIRTH),
])
def test_an_indicator_is_observed_between_birth_and_tomorrow(observed: str, message: str | None) -> None:
    assert problems(body(observed=(observed,))) == ([] if message is None else [("indicators[1].observed_at", message)])


def test_tomorrow_is_counted_from_this_submission_not_from_the_first() -> None:
    later = NOW + timedelta(days=10)
    assert problems(body(observed=("2026-12-11",)), referred_at=NOW, now=later) == []


@pytest.mark.parametrize(("recorded", "ok"), [
    ("2026-11-30T09:05:00+00:00", True),  # 5 minutes ahead: clock skew
    ("2026-11-30T10:05:00+01:00", True),  # the same moment with an offset
    ("2026-11-30T09:05:01+00:00", False),
    ("2026-12-01T09:00:00+00:00", False),
    ("9999-12-31T23:59:59+00:00", False),
])
def test_consent_is_not_recorded_in_the_future_beyond_5_minutes_of_clock_skew(recorded: str, ok: bool) -> None:
    assert problems(body(recorded=recorded)) == ([] if ok else [("consent.recorded_at", FUTURE_CONSENT)])


def test_every_date_problem_is_named_and_none_echoes_the_date_given() -> None:
    bad = body(born="9999-01-01", observed=("2026-11-01", "9999-12-31"), recorded="9999-12-31T23:59:59+00:00")

    found = problems(bad)

    assert found == [("young_person.date_of_birth", AGE), ("indicators[1].observed_at", BEFORE_BIRTH),
                     ("indicators[2].observed_at", FUTURE_OBSERVATION), ("consent.recorded_at", FUTURE_CONSENT)]
    assert not any("9999" in message for _, message in found)


def test_the_shape_is_checked_first_and_without_a_clock() -> None:
    data = body(observed=("9999-12-31",))
    assert isinstance(validate_referral(json.dumps(data).encode()), Referral), "a well-formed body"
    data["young_person"]["date_of_birth"] = "2011-02-31"
    assert validate_referral(json.dumps(data).encode()) == [
        FieldError(field="young_person.date_of_birth", message="not a date in YYYY-MM-DD form")]
