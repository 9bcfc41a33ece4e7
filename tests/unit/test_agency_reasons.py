"""What a referring agency is told of a waitlist or a barred mentor, beside what schedulers see (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.scheduling.agency_reasons import MENTOR_UNAVAILABLE, stored_before
from services.scheduling.matching import MentorState, Waitlist, match
from services.scheduling.mentor_changes import why_cases_move
from shared.contracts.codes import Tier
from shared.contracts.scheduling import CaseStatus, Licence, Vetting
from tests.support.agency_view import assert_told_neutrally
from tests.support.matching import NOW, case, mentor


def _barred(m: MentorState, how: str) -> MentorState:
    if how == "vetting":
        record = m.record.model_copy(update={"vetting": Vetting(enhanced_check_expires=date(2026, 1, 1))})
        return replace(m, record=record, without_check=True)
    licence = Licence(return_by="22:00", suspended=True)
    return replace(m, record=m.record.model_copy(update={"kind": "rotl", "licence": licence}))


@pytest.mark.parametrize(("label", "changes", "mentors", "scheduler_sees", "agency_told"), [
    ("expired check", {}, [_barred(mentor("m-jason"), "vetting")], "1 has an expired enhanced check",
     "none available at present"),
    ("suspended licence", {}, [_barred(mentor("m-jason"), "licence")], "1 has a suspended licence",
     "none available at present"),
    ("exclusion zone", {"unsafe_areas": ["Peckham"]}, [mentor("m-jason", kind="rotl", zones=("Peckham",))],
     "exclusion zone", "none passes the safety checks for the young person's areas and groups"),
    ("full, elsewhere, tier", {"tier": Tier.HIGH},
     [mentor("a", caseload=4), mentor("b", caseload=4), mentor("c", boroughs=("Lambeth",)),
      mentor("d", kind="volunteer")],
     "no mentor fits: 2 at caseload, 1 does not cover Hackney, 1 takes only low and medium tiers",
     "(caseloads are full; none covers Hackney; none takes high tier cases)"),
])
def test_the_agency_is_told_what_is_missing_by_category_and_schedulers_by_rule(
    label: str, changes: dict[str, object], mentors: list[MentorState], scheduler_sees: str, agency_told: str
) -> None:
    result = match(case(**changes), mentors, now=NOW)
    assert isinstance(result, Waitlist), label
    assert scheduler_sees in result.reason, label
    assert result.agency_reason.startswith("no mentor available yet") and agency_told in result.agency_reason, label
    assert result.agency_reason.endswith("the service keeps looking and books the first session as soon as a mentor "
                                         "fits")
    assert_told_neutrally(result.agency_reason, "m-jason")


@pytest.mark.parametrize(("how", "detail"), [("vetting", "m-jason's enhanced check expired on 2026-01-01"),
                                             ("licence", "m-jason's licence is suspended")])
def test_a_barred_mentor_is_explained_to_schedulers_and_only_unavailable_to_agencies(how: str, detail: str) -> None:
    why = why_cases_move(_barred(mentor("m-jason"), how).record, date(2026, 3, 2))
    assert why is not None and (why.detail, why.agency) == (detail, MENTOR_UNAVAILABLE)


def test_cases_stored_before_the_split_tell_the_agency_only_what_their_status_implies() -> None:
    assert stored_before(CaseStatus.CLOSED) == "closed by the service; its remaining sessions are cancelled"
    assert (stored_before(CaseStatus.WAITLISTED) or "").startswith("no mentor available yet")
    assert stored_before(CaseStatus.SCHEDULED) is None
