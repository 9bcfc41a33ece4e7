"""`store.case_row` builds the same case as `CaseRow.model_validate`, without validating again."""

from __future__ import annotations

from datetime import UTC, datetime

from services.scheduling.store import case_row
from services.scheduling.tables import CaseRow
from shared.contracts.scheduling import CaseStatus

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_a_row_read_back_is_the_validated_one() -> None:
    values = {name: None for name in CaseRow.model_fields} | {
        "referral_id": "r-read", "agency_id": "a1", "facts": "{}", "tier": "high", "assessment_number": 2,
        "lower_reviews": 1, "missing": True, "staffed_only": False, "status": "scheduled", "mentor_id": "m1",
        "deadline_met": True, "updated_at": NOW}
    built, validated = case_row(values), CaseRow.model_validate(values)
    assert built.model_dump() == validated.model_dump() == values
    assert built.model_fields_set == validated.model_fields_set


def test_a_new_case_takes_the_defaults_and_can_change() -> None:
    values = {"referral_id": "r-new", "agency_id": "a1", "status": CaseStatus.AWAITING_ASSESSMENT, "updated_at": NOW}
    built, validated = case_row(values), CaseRow.model_validate(values)
    assert built.model_dump() == validated.model_dump()
    assert (built.assessment_number, built.lower_reviews, built.missing) == (0, 0, False)
    assert built.model_fields_set == validated.model_fields_set == set(values)
    built.status, built.mentor_id = CaseStatus.SCHEDULED, "m2"
    assert (built.status, built.mentor_id) == ("scheduled", "m2")
    assert built.model_dump()["mentor_id"] == "m2"
