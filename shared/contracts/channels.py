"""Every JetStream event channel, declared once: its subject (spelled in shared/subjects.py), its payload contract,
who publishes it, who consumes it, and whether agencies see it.

shared/asyncapi.py generates the AsyncAPI documents from these declarations; tests hold them to the consumers
the services register, to the agencies' NATS permissions and to what really flows on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.common import Contract
from shared.contracts.intake import (
    Referral,
    ReferralAccepted,
    ReferralRecorded,
    ReferralRejected,
    ReferralWithdrawn,
    Withdrawal,
)
from shared.contracts.risk import RiskAssessed, SafeguardingAlert
from shared.contracts.rpc import SERVICES
from shared.contracts.scheduling import SessionsCancelled, SessionsRescheduled, SessionsScheduled, SessionsWaitlisted
from shared.subjects import Subjects

AGENCY = "agency"
"""The party outside: an agency publishing referrals and reading its own outcomes."""
AGENCY_ID = "{agency_id}"
"""The parameter that ends every public subject: the agency's id (NATS permissions confine each agency to its own)."""

Audience = Literal["agency", "internal"]


class EventHeaders(BaseModel):
    """The NATS headers of every event a service publishes (through its outbox)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    msg_id: str = Field(alias="Nats-Msg-Id", description="The event's event_id: the stream drops a re-publish.")
    content_type: Literal["application/json"] = Field(alias="content-type")
    traceparent: str | None = Field(default=None, description="W3C trace context: one trace per referral.")
    tracestate: str | None = Field(default=None, description="W3C trace state, when the trace has one.")


class SubmissionHeaders(BaseModel):
    """NATS headers an agency may send with a referral; every `ce-*` (CloudEvents binary mode) header is recorded."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")

    msg_id: str | None = Field(default=None, alias="Nats-Msg-Id",
                               description="Honoured per agency: intake processes a message with an id your agency "
                                           "sent before on the same subject once, however long after. The "
                                           "stream's own de-duplication spans every agency but only 100 ms: use a "
                                           "random id (a UUID), which no other agency can guess.")
    traceparent: str | None = Field(default=None, description="W3C trace context, continued by intake.")


class DeadLetterNotice(Contract):
    """The headers of a dead-letter notice (its body is empty): a service set a message aside, kept it, and says why.
    `reroute deadletter` reads, replays and discards it through the service that keeps it."""

    model_config = ConfigDict(populate_by_name=True)

    dead_letter_id: str = Field(alias="Reroute-Dead-Letter-Id", description="`<service>-<hex>`: who keeps it.")
    failed_subject: str = Field(alias="Reroute-Failed-Subject", description="Where the failed message was published.")
    failed_service: str = Field(alias="Reroute-Failed-Service", description="The service that failed it.")
    failed_reason: str = Field(alias="Reroute-Failed-Reason", max_length=500,
                               description="Why, in words (no personal data).")
    msg_id: str = Field(alias="Nats-Msg-Id", description="`dead:<dead letter id>`: the notice is published once.")


@dataclass(frozen=True)
class Channel:
    """One JetStream subject family: what flows on it, from whom to whom."""

    name: str
    """Its name in the documents: the subject without its parameter, e.g. `referrals.accepted`."""
    subject: Callable[[Subjects, str], str]
    """The `Subjects` method that spells it."""
    argument: str
    """What `subject` is called with: `AGENCY_ID` (the parameter) or a service's name."""
    payload: type[BaseModel] | None
    """The body's contract; None for a notice whose body is empty."""
    headers: type[BaseModel]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    """Services with a durable consumer on it, and `AGENCY` when agencies read it."""
    audience: Audience
    description: str

    def address(self, subjects: Subjects | None = None) -> str:
        """The subject with its parameter, e.g. `referrals.accepted.{agency_id}` (namespaced by `subjects`)."""
        return self.subject(subjects or Subjects(), self.argument)


def _dead_letters(service: str) -> Channel:
    kept = "encrypted, as a submission holds personal data" if service == "intake" else "with its body"
    return Channel(
        name=f"deadletter.{service}", subject=Subjects.dead_letter, argument=service, payload=None,
        headers=DeadLetterNotice, producers=(service,), consumers=(), audience="internal",
        description=f"A notice (no body) that {service} set a message aside after it failed: the message is kept in "
                    f"{service}'s own database ({kept}), for an operator to read, replay or discard with `reroute "
                    "deadletter`. No service consumes the notice; it is for anyone watching.",
    )


CHANNELS: tuple[Channel, ...] = (
    Channel(
        name="referrals.submitted", subject=Subjects.submitted, argument=AGENCY_ID, payload=Referral,
        headers=SubmissionHeaders, producers=(AGENCY,), consumers=("intake",), audience="agency",
        description="An agency submits a referral (JSON). Intake answers on referrals.accepted or referrals.rejected; "
                    "a repeat of the same agency_referral_id is the same referral. The message waits in a "
                    "work-queue stream until intake has processed it (however long intake is down) and is removed "
                    "then: the referral is kept only by intake, encrypted.",
    ),
    Channel(
        name="referrals.updated", subject=Subjects.updated, argument=AGENCY_ID, payload=Referral,
        headers=SubmissionHeaders, producers=(AGENCY,), consumers=("intake",), audience="agency",
        description="An agency updates a referral it submitted (the same body, the same agency_referral_id); risk "
                    "re-assesses. An unknown referral is rejected. Kept on the broker only until intake has "
                    "processed it, like a submission.",
    ),
    Channel(
        name="referrals.withdraw", subject=Subjects.withdraw, argument=AGENCY_ID, payload=Withdrawal,
        headers=SubmissionHeaders, producers=(AGENCY,), consumers=("intake",), audience="agency",
        description="An agency withdraws a referral it submitted (consent withdrawn, referred in error, ...), naming "
                    "it by its agency_referral_id with a coded reason. Intake answers on referrals.withdrawn (again, "
                    "marked duplicate, for a referral already withdrawn) or referrals.rejected (an unknown referral, "
                    "or another agency's, is refused alike; so is a bad reason code). Its sessions are then "
                    "cancelled and its case closed; an open safeguarding alert stays open. Kept on the broker only "
                    "until intake has processed it, like a submission.",
    ),
    Channel(
        name="referrals.accepted", subject=Subjects.accepted, argument=AGENCY_ID, payload=ReferralAccepted,
        headers=EventHeaders, producers=("intake",), consumers=(AGENCY,), audience="agency",
        description="Intake stored a valid referral: our referral_id, your own reference, its revision and where to "
                    "follow it. Only what concerns your own referral: nothing says whether any agency referred the "
                    "same young person before (schema_version 2).",
    ),
    Channel(
        name="referrals.rejected", subject=Subjects.rejected, argument=AGENCY_ID, payload=ReferralRejected,
        headers=EventHeaders, producers=("intake",), consumers=(AGENCY,), audience="agency",
        description="Intake refused a submission, an update or a withdrawal, one {field, message} per problem; nothing "
                    "was stored for it.",
    ),
    Channel(
        name="referrals.withdrawn", subject=Subjects.withdrawn, argument=AGENCY_ID, payload=ReferralWithdrawn,
        headers=EventHeaders, producers=("intake",), consumers=(AGENCY,), audience="agency",
        description="Intake recorded your withdrawal of a referral: our referral_id, your reference, the reason and "
                    "when; `duplicate` when it was withdrawn already. Its future sessions are cancelled next "
                    "(sessions.cancelled, with the reason) and it can no longer be updated.",
    ),
    Channel(
        name="intake.recorded", subject=Subjects.recorded, argument=AGENCY_ID, payload=ReferralRecorded,
        headers=EventHeaders, producers=("intake",), consumers=("risk", "scheduling"), audience="internal",
        description="Intake stored a valid referral: the pseudonymous facts risk and scheduling need (no names, "
                    "birth date, contact details or free text), with the young person's pseudonymous person_id and "
                    "earlier referrals by any agency. Published with each referrals.accepted; agencies never read "
                    "it.",
    ),
    Channel(
        name="intake.withdrawn", subject=Subjects.recorded_withdrawal, argument=AGENCY_ID, payload=ReferralWithdrawn,
        headers=EventHeaders, producers=("intake",), consumers=("scheduling",), audience="internal",
        description="Intake recorded an agency's withdrawal of a referral (once, with its first referrals.withdrawn), "
                    "in the stream of intake.recorded, which scheduling reads with the same consumer so the "
                    "withdrawal comes after the referral's facts: scheduling cancels its future sessions and closes "
                    "its case, as a closure, with the agency's reason. Agencies never read it.",
    ),
    Channel(
        name="risk.assessed", subject=Subjects.assessed, argument=AGENCY_ID, payload=RiskAssessed,
        headers=EventHeaders, producers=("risk",), consumers=("scheduling",), audience="internal",
        description="Risk's explainable assessment: a tier per axis with every rule that fired, needs and flags; "
                    "again after an update, a practitioner's override or a re-score. Agencies never read it.",
    ),
    Channel(
        name="safeguarding.alert", subject=Subjects.alert, argument=AGENCY_ID, payload=SafeguardingAlert,
        headers=EventHeaders, producers=("risk", "scheduling"), consumers=(), audience="internal",
        description="An urgent safeguarding escalation for the safeguarding lead: from risk before any scheduling, "
                    "from scheduling on disengagement (missed sessions). No service consumes it; agencies never "
                    "read it.",
    ),
    Channel(
        name="sessions.scheduled", subject=Subjects.scheduled, argument=AGENCY_ID, payload=SessionsScheduled,
        headers=EventHeaders, producers=("scheduling",), consumers=(AGENCY,), audience="agency",
        description="A mentor matched and sessions booked; deadline_met says whether the first is within the "
                    "tier's deadline.",
    ),
    Channel(
        name="sessions.waitlisted", subject=Subjects.waitlisted, argument=AGENCY_ID, payload=SessionsWaitlisted,
        headers=EventHeaders, producers=("scheduling",), consumers=(AGENCY,), audience="agency",
        description="No mentor fits yet, and why.",
    ),
    Channel(
        name="sessions.rescheduled", subject=Subjects.rescheduled, argument=AGENCY_ID, payload=SessionsRescheduled,
        headers=EventHeaders, producers=("scheduling",), consumers=(AGENCY,), audience="agency",
        description="Sessions re-planned (a tier change, leave, a mentor who can no longer mentor, the batch round, "
                    "a scheduler's choice), with why.",
    ),
    Channel(
        name="sessions.cancelled", subject=Subjects.cancelled, argument=AGENCY_ID, payload=SessionsCancelled,
        headers=EventHeaders, producers=("scheduling",), consumers=(AGENCY,), audience="agency",
        description="Sessions cancelled, suspended while the young person is missing, or the case closed, with why.",
    ),
    *(_dead_letters(service) for service in SERVICES),
)
"""Every event channel, agency-facing first, in the order the documents list them."""
