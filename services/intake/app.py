"""The intake service: agencies' referrals in, accepted or rejected events out."""

from __future__ import annotations

from functools import partial
from typing import Any

from faststream import FastStream
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.intake.handlers import handle_submissions
from services.intake.tables import TABLES, EqualityRecord, ReferralRecord
from shared.contracts.codes import Tier
from shared.fairness import AuditRow, audit
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class AuditRequest(BaseModel):
    min_group_size: int = Field(default=10, ge=1)
    ratio_threshold: float = Field(default=1.25, gt=1)


class StatusRequest(BaseModel):
    referral_id: str | None = None
    agency_id: str | None = None
    agency_referral_id: str | None = None


def create_app(settings: ServiceSettings | None = None) -> FastStream:
    settings = settings or ServiceSettings()
    host = ServiceHost("intake", settings, TABLES)
    s = host.subjects
    host.consume(
        stream=s.referrals_stream,
        subjects=[s.submitted(), s.updated()],
        what="submitted",
        handler=partial(handle_submissions, subjects=s),
    )

    @host.reply("status")
    async def status(request: StatusRequest) -> dict[str, Any]:
        """Where a referral stands at intake (ids and dates only), by our id or the agency's."""
        query = select(ReferralRecord)
        if request.referral_id:
            query = query.where(ReferralRecord.referral_id == request.referral_id)
        elif request.agency_id and request.agency_referral_id:
            query = query.where(
                ReferralRecord.agency_id == request.agency_id,
                ReferralRecord.agency_referral_id == request.agency_referral_id,
            )
        else:
            return {"error": "give referral_id, or agency_id and agency_referral_id"}
        with host.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return {"found": False}
        return {
            "found": True,
            "referral_id": row.referral_id,
            "agency_id": row.agency_id,
            "agency_referral_id": row.agency_referral_id,
            "received_at": row.received_at.isoformat(),
            "submissions": row.submissions,
            "revision": row.revision,
        }

    @host.reply("audit")
    async def fairness_audit(request: AuditRequest) -> dict[str, Any]:
        """Tier and override rates overall and by equality-monitoring group (aggregates only, small counts hidden)."""
        risk = await host.request("risk", "audit.rows", {}, timeout=30)
        with host.engine.connect() as conn:
            answers = {
                r.referral_id: {k: v for k, v in (("ethnicity", r.ethnicity), ("religion", r.religion),
                                                  ("disability", r.disability)) if v}
                for r in conn.execute(select(EqualityRecord))
            }
        rows = [AuditRow(tier=Tier(r["tier"]), override=r["override"], groups=answers.get(r["referral_id"], {}))
                for r in risk["rows"]]
        report = audit(rows, min_group_size=request.min_group_size, ratio_threshold=request.ratio_threshold)
        return {"lines": report.lines(), "flagged": len(report.flagged), "total": report.total}

    host.finish_routes()
    return host.app
