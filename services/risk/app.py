"""The risk service: explainable rule-based assessment of accepted referrals, with safeguarding escalation."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from faststream import FastStream
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.risk.handlers import handle_accepted
from services.risk.ruleset import load_rules
from services.risk.tables import TABLES, AssessmentRecord
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    rules_file: Path | None = Field(default=None, description="Rules YAML; the shipped rule set when unset.")


class ReferralRequest(BaseModel):
    referral_id: str


def create_app(settings: RiskSettings | None = None) -> FastStream:
    settings = settings or RiskSettings()
    rules = load_rules(settings.rules_file)  # refuses to start on a defective rules file
    host = ServiceHost("risk", settings, TABLES)
    s = host.subjects
    host.consume(
        stream=s.referrals_stream,
        filter_subject=s.accepted(),
        what="accepted",
        handler=partial(handle_accepted, rules=rules, subjects=s),
    )

    @host.reply("assessment")
    async def assessment(request: ReferralRequest) -> dict[str, Any]:
        """The latest assessment of a referral, with every reason (the `risk.assessed` event)."""
        with host.engine.connect() as conn:
            row = conn.execute(
                select(AssessmentRecord.event)
                .where(AssessmentRecord.referral_id == request.referral_id)
                .order_by(AssessmentRecord.number.desc())  # type: ignore[attr-defined]
            ).first()
        return {"found": False} if row is None else {"found": True, "assessment": json.loads(row[0])}

    @host.reply("rules")
    async def rules_listing() -> dict[str, Any]:
        """Every indicator and protective-factor code the rules know, with its meaning."""
        return {
            "id": rules.id,
            "version": rules.version,
            "indicators": rules.indicator_meanings(),
            "protective_factors": rules.protective_meanings(),
        }

    host.finish_routes()
    return host.app
