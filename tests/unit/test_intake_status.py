"""What an agency sees of its referral's progress, from intake's record and risk's and scheduling's answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.intake.referral_status import status_of

RECEIVED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ASSESSED = {"found": True, "assessment": {"tier": "high"}}
SCHEDULED = {"found": True, "status": "scheduled", "tier": "high", "mentor_id": "m-1", "reason": None,
             "sessions": [{"start": "2026-12-01T16:00:00+00:00"}, {"start": "2026-12-08T16:00:00+00:00"}]}
WAITLISTED = {"found": True, "status": "waitlisted", "tier": "high", "mentor_id": None, "reason": "no mentor speaks so",
              "sessions": []}


@pytest.mark.parametrize(("risk", "scheduling", "stage", "complete"), [
    ({"found": False}, {"found": False}, "received", True),
    (None, None, "received", False),
    (ASSESSED, {"found": False}, "assessed", True),
    (ASSESSED, None, "assessed", False),
    (ASSESSED, {"found": True, "status": "awaiting_assessment"}, "assessed", True),
    (ASSESSED, SCHEDULED, "scheduled", True),
    (ASSESSED, WAITLISTED, "waitlisted", True),
    (ASSESSED, {**WAITLISTED, "status": "closed", "reason": "moved away"}, "closed", True),
])
def test_the_furthest_stage_reached_is_reported(
    risk: dict[str, Any] | None, scheduling: dict[str, Any] | None, stage: str, complete: bool
) -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=risk,
                       scheduling=scheduling, mentor_name="Amara Okafor")
    assert (status.status, status.complete) == (stage, complete)


def test_scheduled_gives_the_first_session_and_only_the_mentors_first_name() -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=SCHEDULED, mentor_name="Amara Okafor")
    assert status.first_session == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    assert status.mentor_first_name == "Amara" and status.tier == "high" and status.reason is None


def test_waitlisted_gives_the_reason_and_no_mentor() -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=WAITLISTED, mentor_name=None)
    assert status.reason == "no mentor speaks so" and status.mentor_first_name is None


def test_a_referral_with_a_message_set_aside_is_held_and_the_agency_is_told_no_more() -> None:
    status = status_of(referral_id="ref_1", agency_referral_id="R1", received_at=RECEIVED, revision=0, risk=ASSESSED,
                       scheduling=SCHEDULED, mentor_name="Amara Okafor", held=True)
    assert status.status == "held" and status.reason == "held for review by the service"
    assert status.first_session is None and status.mentor_first_name is None
