"""What an agency sees of its referral's progress, from intake's record and risk's and scheduling's answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest

from services.intake.referral_status import NOT_YET, status_of
from shared.contracts.codes import Tier
from shared.contracts.risk import AxisAssessment, RiskAssessed
from shared.contracts.risk_rpc import Assessment
from shared.contracts.scheduling_rpc import BookedSession, SchedulingStatus

RECEIVED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_AXIS = AxisAssessment(tier=Tier.HIGH, score=9)
ASSESSED = Assessment(assessment=RiskAssessed(
    event_id="assessed:ref_1:1", occurred_at=RECEIVED, referral_id="ref_1", agency_id="agency-1", tier=Tier.HIGH,
    computed_tier=Tier.HIGH, likelihood=_AXIS, harm=_AXIS, wellbeing=_AXIS, reasons=[], needs=[], focus=[],
    rules_version="test"), history=[])
SCHEDULED = SchedulingStatus(
    status="scheduled", tier=Tier.HIGH, mentor_id="m-1", mentor_first_name="Amara", deadline_met=True, reason=None,
    sessions=[BookedSession(session_id="s1", start=datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
                            end=datetime(2026, 12, 1, 17, 0, tzinfo=UTC)),
              BookedSession(session_id="s2", start=datetime(2026, 12, 8, 16, 0, tzinfo=UTC),
                            end=datetime(2026, 12, 8, 17, 0, tzinfo=UTC))])
WAITLISTED = SchedulingStatus(status="waitlisted", tier=Tier.HIGH, mentor_id=None, mentor_first_name=None,
                              deadline_met=None, reason="no mentor fits: 1 shares no language",
                              agency_reason="no mentor available yet (none shares a language with the young person)",
                              sessions=[])
Answer = Literal["not yet"] | None


@pytest.mark.parametrize(("risk", "scheduling", "stage", "complete"), [
    (NOT_YET, NOT_YET, "received", True),
    (None, None, "received", False),
    (ASSESSED, NOT_YET, "assessed", True),
    (ASSESSED, None, "assessed", False),
    (ASSESSED, WAITLISTED.model_copy(update={"status": "awaiting_assessment"}), "assessed", True),
    (ASSESSED, SCHEDULED, "scheduled", True),
    (ASSESSED, WAITLISTED, "waitlisted", True),
    (ASSESSED, WAITLISTED.model_copy(update={"status": "closed", "reason": "moved away"}), "closed", True),
])
def test_the_furthest_stage_reached_is_reported(
    risk: Assessment | Answer, scheduling: SchedulingStatus | Answer, stage: str, complete: bool
) -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=risk,
                       scheduling=scheduling)
    assert (status.status, status.complete) == (stage, complete)


def test_scheduled_gives_the_first_session_and_the_mentors_first_name() -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=SCHEDULED)
    assert status.first_session == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    assert status.mentor_first_name == "Amara" and status.tier == "high" and status.reason is None


def test_waitlisted_gives_the_agencys_reason_and_no_mentor() -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=WAITLISTED)
    assert status.reason == WAITLISTED.agency_reason and status.mentor_first_name is None


def test_the_schedulers_reason_never_reaches_the_agency() -> None:
    closed = WAITLISTED.model_copy(update={"status": "closed", "reason": "closed by Kim: mentor's licence suspended",
                                           "agency_reason": None})
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=closed)
    assert status.status == "closed" and status.reason is None


def test_a_referral_with_a_message_set_aside_is_held_and_the_agency_is_told_no_more() -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=SCHEDULED, held=True)
    assert status.status == "held" and status.reason == "held for review by the service"
    assert status.first_session is None and status.mentor_first_name is None
