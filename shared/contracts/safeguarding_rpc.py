"""Safeguarding alerts as the designated safeguarding lead works them: listed, and acknowledged by a named person.

Each alert is kept by the service that raised it (`safeguarding.alert.<agency_id>`), which owns it: risk for the
escalation rules it evaluates on referrals (E01–E09), scheduling for disengagement (E12). Both answer the same two
requests; `reroute alerts` merges their lists, and `reroute alerts ack` asks each until the owner answers.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.contracts.common import Contract
from shared.contracts.rpc import Endpoint, Role

_RAISERS = ("risk", "scheduling")
_DSL = frozenset({Role.DSL})


class AlertsRequest(Contract):
    acknowledged_days: float = Field(default=7, ge=0, le=3650, description=(
        "Also list alerts acknowledged within this many days (0: unacknowledged ones only)."))
    limit: int = Field(default=500, ge=1, le=5000)


class SafeguardingAlertView(Contract):
    """One safeguarding alert: what must be done by when, and who took it up."""

    alert_id: str = Field(description="The alert event's id (`reroute alerts ack` takes it).")
    service: str = Field(description="The service that raised it and keeps it: risk or scheduling.")
    referral_id: str
    agency_id: str | None = Field(description="The referring agency (none on risk's alerts raised before it was "
                                              "kept with them).")
    rule_id: str
    actions: list[str]
    raised_at: datetime
    deadline: datetime = Field(description="When the actions must be done by.")
    overdue: bool = Field(description="Unacknowledged and past its deadline at the time of the reply.")
    acknowledged_by: str | None = Field(description="The person who acknowledged it (from their own subject).")
    acknowledged_at: datetime | None
    note: str | None = Field(description="What they wrote when acknowledging it.")


class SafeguardingAlerts(Contract):
    service: str
    alerts: list[SafeguardingAlertView] = Field(description=(
        "Unacknowledged first, then by deadline (the most overdue, then the soonest due), newest first among equal "
        "deadlines."))


class AcknowledgeRequest(Contract):
    alert_id: str = Field(min_length=1, max_length=120)
    note: str = Field(default="", max_length=2000, description="What was done or arranged (optional).")
    by: str = Field(default="", max_length=200, description="Set by the service to the person the subject names.")


class Acknowledged(Contract):
    alert: SafeguardingAlertView


ALERTS = Endpoint("alerts.list", AlertsRequest, SafeguardingAlerts,
                  "The safeguarding alerts this service raised that nobody has acknowledged, and those acknowledged "
                  "lately, with actions, deadlines and who acknowledged them.", _RAISERS, roles=_DSL)
ACKNOWLEDGE = Endpoint("alerts.ack", AcknowledgeRequest, Acknowledged,
                       "Record that the asker has taken up one of this service's safeguarding alerts (once; a second "
                       "acknowledgement is refused, naming the first).", _RAISERS, roles=_DSL, acts_as="by")


def ordered(alerts: list[SafeguardingAlertView]) -> list[SafeguardingAlertView]:
    """Unacknowledged first, then by deadline (the most overdue first, then the soonest due), newest first among
    equal deadlines: the order each service lists its own in, kept when risk's and scheduling's lists are merged."""
    return sorted(alerts, key=lambda a: (a.acknowledged_at is not None, a.deadline, -a.raised_at.timestamp()))
