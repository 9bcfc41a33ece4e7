"""Booking reads a case's facts as scheduling stored them: the facts it remembers from storing them give the same case
as parsing the stored text, and text it never stored is parsed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.scheduling import store
from services.scheduling.store import case_from, case_row, forget_facts, remember_facts
from services.scheduling.tables import CaseRow
from shared.contracts.codes import INDICATOR_CODES
from shared.contracts.common import WeeklyWindow
from shared.contracts.intake import Indicator, PersonFacts, Preferences, ReferralRecorded

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


def facts(referral_id: str) -> ReferralRecorded:
    return ReferralRecorded(
        event_id=f"recorded-{referral_id}", occurred_at=NOW, referral_id=referral_id, agency_id="yot",
        agency_referral_id=f"A-{referral_id}", person_id="psn_1",
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Tower Hamlets",
                           languages=["en", "bn"]),
        indicators=[Indicator(code=code) for code in sorted(INDICATOR_CODES)[:3]], protective_factors=[],
        unsafe_areas=["Hackney"], conflict_groups=["group-a"],
        preferences=Preferences(mentor_gender="female", mentor_gender_required=False, language="bn"),
        availability=[WeeklyWindow(day="tue", start="16:00", end="19:00"),
                      WeeklyWindow(day="sat", start="10:00", end="13:30")])


def row_with(stored: str, referral_id: str) -> CaseRow:
    return case_row({"referral_id": referral_id, "agency_id": "yot", "facts": stored, "tier": "high",
                     "cadence_tier": "high", "needs": '["education"]', "status": "awaiting_assessment",
                     "updated_at": NOW})


def test_remembered_facts_give_the_case_their_stored_text_gives() -> None:
    r = f"ref_{uuid.uuid4().hex[:16]}"
    event = facts(r)
    stored = event.model_dump_json()
    parsed = case_from(row_with(stored, r))  # never remembered: parsed from the text

    remember_facts(stored, event)
    remembered = case_from(row_with(stored, r))

    assert remembered == parsed
    assert remembered.languages is not case_from(row_with(stored, r)).languages, "each case has lists of its own"


def test_only_the_latest_facts_are_kept() -> None:
    first = [facts(f"ref_{uuid.uuid4().hex[:16]}") for _ in range(3)]
    for event in first:
        remember_facts(event.model_dump_json(), event)
    for i in range(store.FACTS_KEPT):
        event = facts(f"ref_{i:016d}")
        remember_facts(event.model_dump_json(), event)

    assert len(store._FACTS) == store.FACTS_KEPT
    assert not any(store._digest(e.model_dump_json()) in store._FACTS for e in first)
    assert case_from(row_with(first[0].model_dump_json(), first[0].referral_id)).borough == "Tower Hamlets"


def test_what_is_kept_names_no_referral_or_young_person_and_goes_on_erasure() -> None:
    r = f"ref_{uuid.uuid4().hex[:16]}"
    event = facts(r)
    stored = event.model_dump_json()
    remember_facts(stored, event)

    kept = repr(list(store._FACTS.items()))
    assert r not in kept and str(event.person_id) not in kept and event.agency_referral_id not in kept
    assert store._digest(stored) in store._FACTS

    forget_facts([stored])
    assert store._digest(stored) not in store._FACTS
    assert case_from(row_with(stored, r)).borough == "Tower Hamlets"  # parsed again from the stored text
