"""Where a referral stands, as its agency may see it: intake's record plus what risk and scheduling say.

`status_of` is pure; `ask_status` asks risk and scheduling over NATS request-reply (services never import
each other) and still answers, marked incomplete, when one of them does not reply in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Literal, TypeVar

import nats.errors
from pydantic import BaseModel, Field

from shared.contracts.common import LondonTime
from shared.contracts.deadletters import HeldRequest
from shared.contracts.risk_rpc import ASSESSMENT, Assessment, AssessmentRequest
from shared.contracts.rpc import HELD, ErrorCode, ServiceError
from shared.contracts.scheduling_rpc import STATUS, ReferralRequest, SchedulingStatus
from shared.service import ServiceHost

log = logging.getLogger(__name__)
Stage = Literal["received", "assessed", "scheduled", "waitlisted", "suspended", "closed", "withdrawn", "held"]
HELD_FOR_REVIEW = "held for review by the service"
"""All an agency is told of a message about its referral that a service set aside (operators see the reason)."""
_SCHEDULING_STAGES: dict[str, Stage] = {
    "scheduled": "scheduled", "waitlisted": "waitlisted", "suspended": "suspended", "closed": "closed",
}
R = TypeVar("R")
NOT_YET: Literal["not yet"] = "not yet"
"""The service answered that it has no record of the referral yet."""


def withdrawn_because(reason: str) -> str:
    """What an agency's status view says of a referral it withdrew."""
    return f"withdrawn by your agency ({reason.replace('_', ' ')}): its sessions are cancelled; it takes no updates"


class ReferralStatus(BaseModel):
    """A referral's progress: received by intake, assessed by risk, then scheduled, waitlisted, suspended or closed;
    or withdrawn by the agency."""

    referral_id: str = Field(description="Our id for the referral.")
    agency_referral_id: str = Field(description="Your id for the referral.")
    status: Stage = Field(description=(
        "The furthest stage reached; `withdrawn` once your agency withdrew it; `held` while a message about it waits "
        "for the service's review."))
    received_at: datetime = Field(description="When intake first accepted it.")
    revision: int = Field(description="How many times you updated it.")
    tier: str | None = Field(default=None, description="The risk tier, once assessed.")
    first_session: LondonTime | None = Field(default=None, description=(
        "Start of the first booked session, once scheduled: Europe/London local time with its offset."))
    mentor_first_name: str | None = Field(default=None, description="The mentor's first name, once scheduled.")
    reason: str | None = Field(default=None, description=(
        "Why it waits (waitlisted), or why it was suspended, closed or withdrawn."))
    complete: bool = Field(default=True, description="False when risk or scheduling did not answer: try again shortly.")


def status_of(
    *, referral_id: str, agency_referral_id: str, received_at: datetime, revision: int,
    risk: Assessment | Literal["not yet"] | None, scheduling: SchedulingStatus | Literal["not yet"] | None,
    held: bool = False, withdrawal_reason: str | None = None,
) -> ReferralStatus:
    """Combine the answers (None: that service did not answer; "not yet": it has no record of the referral yet)
    into the agency's view. `held`: a service set a message about it aside, so it will not move until an
    operator replays or discards that message (a withdrawal scheduling set aside, too). `withdrawal_reason`: the
    agency withdrew it, for this reason."""
    status: Stage = "received"
    tier = None
    if isinstance(risk, Assessment):
        status, tier = "assessed", risk.assessment.tier.value
    first = mentor = reason = None
    if isinstance(scheduling, SchedulingStatus):
        status = _SCHEDULING_STAGES.get(scheduling.status, status)
        tier = scheduling.tier.value if scheduling.tier else tier
        if status == "scheduled":
            first = scheduling.sessions[0].start if scheduling.sessions else None
            mentor = scheduling.mentor_first_name
        else:
            reason = scheduling.agency_reason  # never `reason`: that one is for schedulers
    if withdrawal_reason is not None:
        status, first, mentor, reason = "withdrawn", None, None, withdrawn_because(withdrawal_reason)
    if held:
        status, first, mentor, reason = "held", None, None, HELD_FOR_REVIEW
    return ReferralStatus(
        referral_id=referral_id, agency_referral_id=agency_referral_id, status=status, received_at=received_at,
        revision=revision, tier=tier, first_session=first, mentor_first_name=mentor, reason=reason,
        complete=risk is not None and scheduling is not None,
    )


async def ask_status(host: ServiceHost, *, referral_id: str, agency_referral_id: str, received_at: datetime,
                     revision: int, withdrawal_reason: str | None = None, timeout: float = 3) -> ReferralStatus:
    """Ask risk and scheduling where the referral stands (scheduling also gives the mentor's first name), and
    whether either holds a message about it, all at once."""
    async def held_by(service: str) -> bool:
        try:
            answer = await host.ask(HELD, HeldRequest(referral_ids=[referral_id]), service=service, timeout=timeout)
        except (nats.errors.Error, TimeoutError, ServiceError) as exc:
            log.warning("%s did not answer %s: %s", service, HELD.verb, type(exc).__name__)
            return False
        return bool(answer.held.get(referral_id))

    risk, scheduling, *held = await asyncio.gather(
        _ask(host.ask(ASSESSMENT, AssessmentRequest(referral_id=referral_id), timeout=timeout)),
        _ask(host.ask(STATUS, ReferralRequest(referral_id=referral_id), timeout=timeout)),
        held_by("risk"), held_by("scheduling"))
    return status_of(referral_id=referral_id, agency_referral_id=agency_referral_id, received_at=received_at,
                     revision=revision, risk=risk, scheduling=scheduling, held=any(held),
                     withdrawal_reason=withdrawal_reason)


async def _ask(question: Awaitable[R]) -> R | Literal["not yet"] | None:
    try:
        return await question
    except ServiceError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return NOT_YET
        log.warning("a service could not say where a referral stands: %s", exc.message)
        return None
    except (nats.errors.Error, TimeoutError) as exc:  # no responders, time-out: say what we know
        log.warning("a service did not answer where a referral stands: %s", type(exc).__name__)
        return None
