"""The risk service: explainable rule-based assessment of accepted referrals, safeguarding escalation and the
practitioner's review of each tier."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from faststream import FastStream
from pydantic import Field

from services.risk import privacy, rpc
from services.risk.handlers import Case, handle_recorded
from services.risk.metrics import safeguarding_samples
from services.risk.shipped_rules import SHIPPED_RULES
from services.risk.tables import TABLES
from shared.contracts import risk_rpc, safeguarding_rpc
from shared.contracts.rules import load_rules
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    rules_file: Path | None = Field(default=None, description="Rules YAML; the shipped rule set when unset.")
    pending_override_hours: float = Field(default=72, gt=0, le=24 * 90, description=(
        "How long a lowered tier waits for a second risk lead's countersignature before it lapses."))


def create_app(settings: RiskSettings | None = None) -> FastStream:
    """Wiring only: the consumer of accepted referrals and the endpoints of services/risk/rpc.py."""
    settings = settings or RiskSettings()
    rules = load_rules(settings.rules_file or SHIPPED_RULES)  # refuses to start on a defective rules file
    host = ServiceHost("risk", settings, TABLES)
    s = host.subjects
    host.consume(stream=s.intake_stream, subjects=[s.recorded()], what="recorded", formerly=("accepted",),
                 handler=partial(handle_recorded, rules=rules, subjects=s))
    risk = rpc.Risk(host, rules, pending_for=timedelta(hours=settings.pending_override_hours))
    host.reply(risk_rpc.ASSESSMENT)(partial(rpc.assessment, risk=risk))
    host.reply(risk_rpc.OVERRIDE)(partial(rpc.override, risk=risk))
    host.reply(risk_rpc.COUNTERSIGN)(partial(rpc.countersign, risk=risk))
    host.reply(risk_rpc.REFUSE_OVERRIDE)(partial(rpc.refuse_override, risk=risk))
    host.reply(risk_rpc.PENDING_OVERRIDES)(partial(rpc.pending_overrides, risk=risk))
    host.reply(risk_rpc.REVIEWS_DUE)(partial(rpc.reviews_due, risk=risk))
    host.reply(risk_rpc.RULES)(partial(rpc.rules_listing, risk=risk))
    host.reply(risk_rpc.RESCORE)(partial(rpc.rescore, risk=risk))
    host.reply(risk_rpc.AUDIT_ROWS)(partial(rpc.audit_rows, risk=risk))
    host.reply(safeguarding_rpc.ALERTS)(partial(rpc.alerts_list, risk=risk))
    host.reply(safeguarding_rpc.ACKNOWLEDGE)(partial(rpc.alerts_ack, risk=risk))
    host.sample(safeguarding_samples)
    host.serve_personal_data(privacy.export, privacy.erase)
    host.finish_routes()
    return host.app


__all__ = ["Case", "RiskSettings", "create_app"]
