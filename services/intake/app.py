"""The intake service: agencies' referrals in, accepted or rejected events out."""

from __future__ import annotations

from functools import partial
from typing import Any

from faststream import FastStream
from pydantic import BaseModel
from sqlalchemy import select

from services.intake.handlers import handle_submissions
from services.intake.tables import TABLES, ReferralRecord
from shared.service import ServiceHost
from shared.settings import ServiceSettings


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
        filter_subject=s.submitted(),
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
        }

    host.finish_routes()
    return host.app
