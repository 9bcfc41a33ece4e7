"""The intake service: agencies' referrals in (NATS and HTTP), accepted or rejected events out.

It alone holds personal data (encrypted), the agencies' API keys, and the log of who asked for a first name."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

from faststream import FastStream
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select
from sqlmodel import col

from services.intake import privacy
from services.intake.agencies import AgencyError, AgencyRegistry
from services.intake.crypto import load_keys
from services.intake.fairness import AuditRow, audit
from services.intake.handlers import handle_submissions
from services.intake.http import create_http_api
from services.intake.personal_data import first_name_for
from services.intake.settings import IntakeSettings
from services.intake.tables import TABLES, EqualityRecord, ReferralRecord
from shared.contracts.codes import Tier
from shared.nats_auth import agency_inbox_prefix, agency_user
from shared.outbox import Outgoing
from shared.service import ServiceHost

log = logging.getLogger(__name__)


class PurgeRequest(BaseModel):
    days: float | None = Field(default=None, ge=0)


class PersonRequest(BaseModel):
    person_id: str = Field(min_length=1, max_length=40)


class AuditRequest(BaseModel):
    min_group_size: int = Field(default=10, ge=1)
    ratio_threshold: float = Field(default=1.25, gt=1)


class StatusRequest(BaseModel):
    referral_id: str | None = None
    agency_id: str | None = None
    agency_referral_id: str | None = None


class AgencyRequest(BaseModel):
    agency_id: str = ""
    name: str = ""


class FirstNameRequest(BaseModel):
    referral_id: str = ""
    asked_by: str = ""
    purpose: str = ""


def nats_access(agency_id: str, password: str) -> dict[str, Any]:
    """What an agency's IT team needs to publish on NATS."""
    user = agency_user(agency_id, password_hash="")
    return {"nats": {"user": user.user, "password": password, "inbox_prefix": agency_inbox_prefix(agency_id),
                     "publish": user.publish, "subscribe": [s for s in user.subscribe if not s.startswith("_INBOX")]}}


def create_app(settings: IntakeSettings | None = None) -> FastStream:
    settings = settings or IntakeSettings()
    keys = load_keys(settings)  # before anything else: a bad key refuses start-up with its reason
    host = ServiceHost("intake", settings, TABLES)
    host.seal_dead_letters(keys.cipher.seal, keys.cipher.unseal)  # a submission holds personal data
    s = host.subjects
    host.consume(
        stream=s.referrals_stream,
        subjects=[s.submitted(), s.updated()],
        what="submitted",
        handler=partial(handle_submissions, subjects=s, keys=keys),
    )
    agencies = AgencyRegistry(host.engine)

    @host.reply("status")
    async def status(request: StatusRequest) -> dict[str, Any]:
        """Where a referral stands at intake (ids and dates only), by our id or the agency's."""
        query = select(ReferralRecord)
        if request.referral_id:
            query = query.where(col(ReferralRecord.referral_id) == request.referral_id)
        elif request.agency_id and request.agency_referral_id:
            query = query.where(
                col(ReferralRecord.agency_id) == request.agency_id,
                col(ReferralRecord.agency_referral_id) == request.agency_referral_id,
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
            "person_id": row.person_id,
        }

    @host.reply("first_name")
    async def first_name(request: FirstNameRequest) -> dict[str, Any]:
        """The young person's first name, for a named person and a stated purpose; every request is logged."""
        with host.engine.begin() as conn:
            return first_name_for(conn, keys, referral_id=request.referral_id, asked_by=request.asked_by,
                                  purpose=request.purpose, now=datetime.now(UTC))

    @host.reply("agencies.add")
    async def add_agency(request: AgencyRequest) -> dict[str, Any]:
        """Register an agency; the reply holds its API key, which is never shown again."""
        try:
            agency, key, nats_password = agencies.add(request.agency_id, request.name, now=datetime.now(UTC))
        except AgencyError as exc:
            return {"error": str(exc)}
        return {"agency": agency, "api_key": key, **nats_access(request.agency_id, nats_password)}

    @host.reply("agencies.rotate")
    async def rotate_agency(request: AgencyRequest) -> dict[str, Any]:
        """Issue an agency a new API key; the old one stops working at once."""
        try:
            agency, key, nats_password = agencies.rotate(request.agency_id, now=datetime.now(UTC))
        except AgencyError as exc:
            return {"error": str(exc)}
        return {"agency": agency, "api_key": key, **nats_access(request.agency_id, nats_password)}

    @host.reply("agencies.revoke")
    async def revoke_agency(request: AgencyRequest) -> dict[str, Any]:
        """Revoke an agency's API key at once."""
        try:
            return {"agency": agencies.revoke(request.agency_id, now=datetime.now(UTC))}
        except AgencyError as exc:
            return {"error": str(exc)}

    @host.reply("person.referrals")
    async def person_referrals(request: PersonRequest) -> dict[str, Any]:
        """The referral ids of one young person (for export and erasure across the services)."""
        with host.engine.connect() as conn:
            return {"referral_ids": privacy.referral_ids(conn, request.person_id)}

    @host.reply("person.export")
    async def person_export(request: PersonRequest) -> dict[str, Any]:
        """Everything intake holds about one young person (a subject access request)."""
        with host.engine.connect() as conn:
            return {"service": "intake", "data": privacy.export(conn, keys, request.person_id)}

    @host.reply("person.erase")
    async def person_erase(request: PersonRequest) -> dict[str, Any]:
        """Erase one young person irreversibly, keeping anonymous counts only; confirms what was done."""
        def decide(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            return {"service": "intake", "erased": privacy.erase(conn, request.person_id)}, []

        return await host.transact(decide)

    async def purge(days: float) -> dict[str, Any]:
        """Erase referrals closed more than `days` ago from every service (retention policy)."""
        ids = (await host.request("scheduling", "closed.before", {"days": days}, timeout=30))["referral_ids"]
        if not ids:
            return {"purged": 0}
        for service in ("risk", "scheduling"):
            await host.request(service, "person.erase", {"referral_ids": ids}, timeout=60)

        def decide(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            return {"purged": privacy.erase_referrals(conn, ids)}, []

        return await host.transact(decide)

    @host.reply("purge")
    async def purge_now(request: PurgeRequest) -> dict[str, Any]:
        """Purge closed referrals now (default: the configured retention period)."""
        return await purge(settings.retention_days if request.days is None else request.days)

    async def scheduled_purge() -> None:
        log.info("retention purge: %s", await purge(settings.retention_days))

    host.every(settings.purge_every_hours * 3600, scheduled_purge, name="retention-purge")

    @host.reply("agencies.nats")
    async def agencies_nats() -> dict[str, Any]:
        """Active agencies' NATS password hashes, for the NATS server's configuration (operator only)."""
        return {"agencies": agencies.nats_credentials()}

    @host.reply("agencies.list")
    async def list_agencies() -> dict[str, Any]:
        """Every registered agency (never keys or hashes)."""
        return {"agencies": agencies.all()}

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

    if settings.intake_http_port:
        api = create_http_api(host=host, keys=keys, agencies=agencies, max_body_bytes=settings.intake_max_body_bytes)
        host.serve_http(api, port=settings.intake_http_port, host=settings.intake_http_host,
                        port_setting="REROUTE_INTAKE_HTTP_PORT")
    host.finish_routes()
    return host.app
