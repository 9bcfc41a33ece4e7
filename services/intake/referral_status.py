"""Where a referral stands, as its agency may see it: intake's record plus what risk and scheduling say.

`status_of` is pure; `ask_status` asks risk and scheduling over NATS request-reply (services never import
each other) and still answers, marked incomplete, when one of them does not reply in time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Literal

import nats.errors
from pydantic import BaseModel, Field

from shared.service import ServiceHost

log = logging.getLogger(__name__)
Stage = Literal["received", "assessed", "scheduled", "waitlisted", "suspended", "closed", "held"]
HELD_FOR_REVIEW = "held for review by the service"
"""All an agency is told of a message about its referral that a service set aside (operators see the reason)."""
_SCHEDULING_STAGES: dict[str, Stage] = {
    "scheduled": "scheduled", "waitlisted": "waitlisted", "suspended": "suspended", "closed": "closed",
}


class ReferralStatus(BaseModel):
    """A referral's progress: received by intake, assessed by risk, then scheduled, waitlisted, suspended or closed."""

    referral_id: str = Field(description="Our id for the referral.")
    agency_referral_id: str = Field(description="Your id for the referral.")
    status: Stage = Field(description=(
        "The furthest stage reached; `held` while a message about it waits for the service's review."))
    received_at: datetime = Field(description="When intake first accepted it.")
    revision: int = Field(description="How many times you updated it.")
    tier: str | None = Field(default=None, description="The risk tier, once assessed.")
    first_session: datetime | None = Field(default=None, description="Start of the first booked session, once scheduled.")
    mentor_first_name: str | None = Field(default=None, description="The mentor's first name, once scheduled.")
    reason: str | None = Field(default=None, description="Why it waits (waitlisted), or why it was suspended or closed.")
    complete: bool = Field(default=True, description="False when risk or scheduling did not answer: try again shortly.")


def status_of(
    *, referral_id: str, agency_referral_id: str, received_at: datetime, revision: int,
    risk: dict[str, Any] | None, scheduling: dict[str, Any] | None, mentor_name: str | None,
    held: bool = False,
) -> ReferralStatus:
    """Combine the answers (None: that service did not answer) into the agency's view. `held`: a service set a
    message about it aside, so it will not move until an operator replays or discards that message."""
    status: Stage = "received"
    tier = None
    if risk and risk.get("found"):
        status, tier = "assessed", risk["assessment"]["tier"]
    first = mentor = reason = None
    if scheduling and scheduling.get("found"):
        status = _SCHEDULING_STAGES.get(scheduling.get("status", ""), status)
        tier = scheduling.get("tier") or tier
        if status == "scheduled":
            sessions = scheduling.get("sessions") or []
            first = datetime.fromisoformat(sessions[0]["start"]) if sessions else None
            mentor = mentor_name.split()[0] if mentor_name and mentor_name.split() else None
        else:
            reason = scheduling.get("reason")
    if held:
        status, first, mentor, reason = "held", None, None, HELD_FOR_REVIEW
    return ReferralStatus(
        referral_id=referral_id, agency_referral_id=agency_referral_id, status=status, received_at=received_at,
        revision=revision, tier=tier, first_session=first, mentor_first_name=mentor, reason=reason,
        complete=risk is not None and scheduling is not None,
    )


async def ask_status(host: ServiceHost, *, referral_id: str, agency_referral_id: str, received_at: datetime,
                     revision: int, timeout: float = 3) -> ReferralStatus:
    """Ask risk and scheduling where the referral stands (scheduling also gives the mentor's first name)."""
    risk = await _ask(host, "risk", "assessment", {"referral_id": referral_id}, timeout=timeout)
    scheduling = await _ask(host, "scheduling", "status", {"referral_id": referral_id}, timeout=timeout)
    mentor_name = (scheduling or {}).get("mentor_first_name")
    asked = {"referral_ids": [referral_id]}
    answers = await asyncio.gather(*(_ask(host, s, "deadletters.held", asked, timeout=timeout)
                                     for s in ("risk", "scheduling")))
    held = any(answer and answer.get("held", {}).get(referral_id) for answer in answers)
    return status_of(referral_id=referral_id, agency_referral_id=agency_referral_id, received_at=received_at,
                     revision=revision, risk=risk, scheduling=scheduling, mentor_name=mentor_name, held=held)


async def _ask(host: ServiceHost, service: str, verb: str, payload: dict[str, Any], *,
               timeout: float) -> dict[str, Any] | None:
    try:
        answer = await host.request(service, verb, payload, timeout=timeout)
    except (nats.errors.Error, TimeoutError, ValueError) as exc:  # no responders, time-out: say what we know
        log.warning("%s did not answer %s for %s: %s", service, verb, payload, type(exc).__name__)
        return None
    return answer if isinstance(answer, dict) else None
