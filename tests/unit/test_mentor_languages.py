"""Mentor languages: codes on import, as referrals; a record stored before that check is read as it is and
named as a problem, so upgrading never loses a mentor."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from services.scheduling.constraints import mentor_problems
from shared.contracts.scheduling import IMPORTING, MentorRecord

RECORD = {"id": "m-1", "name": "Sam Mentor", "kind": "staff", "boroughs": ["Hackney"], "gender": "male",
          "max_caseload": 3, "vetting": {"enhanced_check_expires": "2030-01-01"}}


def test_an_import_takes_codes_only_and_stores_them_as_referrals_carry_them() -> None:
    record = MentorRecord.model_validate(RECORD | {"languages": [" EN", "so"]}, context={IMPORTING: True})
    assert record.languages == ["en", "so"]
    with pytest.raises(ValidationError, match="'english', 'somali': not ISO 639-1"):
        MentorRecord.model_validate(RECORD | {"languages": ["english", "so", "somali"]}, context={IMPORTING: True})


def test_a_stored_record_with_a_language_name_is_read_and_listed_as_a_problem() -> None:
    stored = MentorRecord.model_validate(RECORD | {"languages": ["english"]})
    assert stored.languages == ["english"]
    problems = mentor_problems(stored, date(2026, 12, 6))
    assert problems == [("language(s) english are not ISO 639-1 codes, so no referral matches them: re-import "
                         "with codes such as 'en'")]
    assert mentor_problems(MentorRecord.model_validate(RECORD | {"languages": ["en"]}), date(2026, 12, 6)) == []
