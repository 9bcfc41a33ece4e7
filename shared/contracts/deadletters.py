"""Dead letters on the wire: what every service answers on `reroute.rpc.<service>.deadletters.*`.

A dead letter is kept by the service that failed it, in its own database (intake's encrypted, since a
submission holds personal data); the broker only carries a notice without the body on `deadletter.<service>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts.common import Contract

DeadLetterStatus = Literal["open", "replayed", "discarded"]


class DeadLetter(Contract):
    """One message a service could not process, and what became of it."""

    id: str = Field(description="`<service>-<hex>`: the service that keeps it, and its number there.")
    service: str
    consumer: str = Field(description="The durable consumer that failed it.")
    subject: str = Field(description="Where the message was published.")
    reason: str = Field(description="Why it failed, in words (no personal data).")
    deliveries: int = Field(description="Deliveries before it was set aside (1 for a message that cannot be read).")
    failed_at: datetime
    referral_id: str | None = Field(default=None, description="The referral it concerns, when the body names one.")
    status: DeadLetterStatus
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = Field(default=None, description="The discard reason, or what the replay did.")


class DeadLetterListRequest(Contract):
    include_resolved: bool = Field(default=False, description="Also list replayed and discarded ones.")
    limit: int = Field(default=200, ge=1, le=1000)


class DeadLetterList(Contract):
    service: str
    dead_letters: list[DeadLetter]
    open_by_reason: dict[str, int] = Field(description="Open dead letters counted by reason.")


class DeadLetterShowRequest(Contract):
    id: str = Field(max_length=100)
    body: bool = Field(default=False, description="Include the message body (logged: it may hold personal data).")
    asked_by: str = Field(default="", max_length=100)


class DeadLetterDetail(Contract):
    dead_letter: DeadLetter
    headers: dict[str, str]
    body: str | None = Field(default=None, description="The body as text (invalid UTF-8 replaced), when asked for.")
    body_bytes: int


class DeadLetterReplayRequest(Contract):
    ids: list[str] = Field(min_length=1, max_length=500)
    asked_by: str = Field(min_length=1, max_length=100)


class DeadLetterDiscardRequest(Contract):
    id: str = Field(max_length=100)
    reason: str = Field(min_length=3, max_length=500)
    asked_by: str = Field(min_length=1, max_length=100)


class DeadLetterResult(Contract):
    id: str
    outcome: Literal["replayed", "failed again", "already resolved", "not found", "discarded"]
    detail: str = ""


class DeadLetterResults(Contract):
    service: str
    results: list[DeadLetterResult]


class HeldRequest(Contract):
    referral_ids: list[str] = Field(max_length=1000)


class HeldMessage(Contract):
    id: str = Field(description="The dead letter's id.")
    reason: str


class Held(Contract):
    """Referrals with a message this service set aside: held for review until it is replayed or discarded."""

    service: str
    held: dict[str, list[HeldMessage]] = Field(description="By referral id.")
