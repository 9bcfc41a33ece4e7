"""The risk service: explainable rule-based assessment of accepted referrals, safeguarding escalation and the
practitioner's review of each tier."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from faststream import FastStream
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select
from sqlmodel import col

from services.risk import privacy
from services.risk.assessment import assess
from services.risk.handlers import Case, decide, handle_accepted, load_cases, review, store
from services.risk.review import OverrideRefused, OverrideRequest, diff, overdue, rescore_summary
from services.risk.shipped_rules import SHIPPED_RULES
from services.risk.tables import TABLES, AssessmentRecord, RiskCase
from shared.contracts.codes import Tier
from shared.contracts.risk import RiskAssessed
from shared.contracts.rules import RulesError, load_rules
from shared.outbox import Outgoing
from shared.service import ServiceHost
from shared.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    rules_file: Path | None = Field(default=None, description="Rules YAML; the shipped rule set when unset.")


class ReferralRequest(BaseModel):
    referral_id: str


class OverrideBody(BaseModel):
    referral_id: str
    tier: Tier
    reason: str = ""
    by: str = ""
    countersign: str | None = None


class ReviewsRequest(BaseModel):
    within_days: int = Field(default=14, ge=0, le=365)


class RescoreRequest(BaseModel):
    dry_run: bool = True
    rules_yaml: str | None = Field(default=None, description="A candidate rules file to preview (dry run only).")
    rules_name: str = "candidate rules"


def create_app(settings: RiskSettings | None = None) -> FastStream:
    settings = settings or RiskSettings()
    rules = load_rules(settings.rules_file or SHIPPED_RULES)  # refuses to start on a defective rules file
    host = ServiceHost("risk", settings, TABLES)
    s = host.subjects
    host.consume(stream=s.referrals_stream, subjects=[s.accepted()], what="accepted",
                 handler=partial(handle_accepted, rules=rules, subjects=s))

    @host.reply("assessment")
    async def assessment(request: ReferralRequest) -> dict[str, Any]:
        """The latest assessment of a referral with every reason, and the history of its tier."""
        with host.engine.connect() as conn:
            rows = conn.execute(
                select(AssessmentRecord)
                .where(col(AssessmentRecord.referral_id) == request.referral_id)
                .order_by(col(AssessmentRecord.number))
            ).all()
        if not rows:
            return {"found": False}
        history = []
        for r in rows:
            event = RiskAssessed.model_validate_json(r.event)
            history.append({
                "number": r.number, "at": r.assessed_at.isoformat(), "computed_tier": r.computed_tier,
                "tier": r.final_tier, "cause": r.cause, "by": r.changed_by, "rules_version": r.rules_version,
                "summary": event.change.summary if event.change else "first assessment",
                "reason": event.override.reason if event.override and r.cause == "override" else None,
                "countersigned_by": event.override.countersigned_by if event.override and r.cause == "override" else None,
            })
        return {"found": True, "assessment": json.loads(rows[-1].event), "history": history}

    @host.reply("override")
    async def override(request: OverrideBody) -> dict[str, Any]:
        """Confirm or override a tier (up needs a reason; down needs a reason and a countersignature)."""
        def decide_review(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            cases = load_cases(conn, [request.referral_id])
            if request.referral_id not in cases:
                return {"error": f"no assessment of {request.referral_id} to review"}, []
            case = cases[request.referral_id]
            try:
                result = review(case, OverrideRequest(tier=request.tier, reason=request.reason.strip(),
                                                      by=request.by.strip(), countersign=request.countersign),
                                rules=rules, now=now)
            except OverrideRefused as exc:
                return {"error": f"override refused: {exc}"}, []
            out = store(conn, [case], [result], now=now, subjects=s)
            return {"ok": True, "assessment": json.loads(result.assessed.model_dump_json())}, out

        return await host.transact(decide_review)

    @host.reply("reviews.due")
    async def reviews_due(request: ReviewsRequest) -> dict[str, Any]:
        """Referrals whose tier must be reviewed within the given days (overdue ones first)."""
        now = datetime.now().astimezone()
        until = now + timedelta(days=request.within_days)
        with host.engine.connect() as conn:
            rows = conn.execute(
                select(col(RiskCase.referral_id), col(RiskCase.agency_id), col(RiskCase.tier), col(RiskCase.review_due))
                .where(col(RiskCase.review_due) <= until)
                .order_by(col(RiskCase.review_due))
            ).all()
        return {"reviews": [
            {"referral_id": r.referral_id, "agency_id": r.agency_id, "tier": r.tier, "due": r.review_due.isoformat(),
             "overdue": overdue(r.review_due, now)} for r in rows
        ]}

    @host.reply("rules")
    async def rules_listing() -> dict[str, Any]:
        """Every indicator and protective-factor code the rules know, with its meaning."""
        return {"id": rules.id, "version": rules.version, "indicators": rules.indicator_meanings(),
                "protective_factors": rules.protective_meanings()}

    @host.reply("rules.rescore")
    async def rescore(request: RescoreRequest) -> dict[str, Any]:
        """Re-score every referral with the loaded rules (or preview a candidate file) and report the changes."""
        candidate = rules
        if request.rules_yaml is not None:
            if not request.dry_run:
                return {"error": "a candidate rules file can only be previewed (dry run); deploy it to apply it"}
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / Path(request.rules_name).name
                path.write_text(request.rules_yaml, encoding="utf-8")
                try:
                    candidate = load_rules(path)
                except RulesError as exc:
                    return {"error": f"the candidate rules are refused:\n{exc}"}

        def rescore_all(conn: Connection, now: datetime) -> tuple[dict[str, Any], list[Outgoing]]:
            ids = list(conn.execute(select(col(RiskCase.referral_id))).scalars())
            cases = load_cases(conn, ids)
            changes, decided = [], []
            for rid, case in cases.items():
                fresh = assess(case.facts, candidate, now=now)
                preview = case.latest.model_copy(update={"computed_tier": fresh.tier, "tier": fresh.tier,
                                                         "likelihood": fresh.likelihood, "harm": fresh.harm,
                                                         "wellbeing": fresh.wellbeing, "reasons": fresh.reasons})
                change = diff(case.latest, preview)
                changes.append((rid, change))
                if not request.dry_run and (case.latest.rules_version != candidate.version
                                            or change.direction != "same" or change.rules_added or change.rules_removed):
                    decided.append(decide(case, case.facts, rules=candidate, now=now, cause="rescore", result=fresh))
            summary = rescore_summary(changes)
            out = store(conn, cases.values(), decided, now=now, subjects=s) if decided else []
            return {"rules_version": candidate.version, "dry_run": request.dry_run, "lines": summary.lines(),
                    "total": summary.total, "up": summary.up, "down": summary.down, "republished": len(decided)}, out

        return await host.transact(rescore_all)

    @host.reply("audit.rows")
    async def audit_rows() -> dict[str, Any]:
        """Each referral's final tier and review kind (ids only), for intake's fairness audit."""
        with host.engine.connect() as conn:
            rows = conn.execute(select(col(RiskCase.referral_id), col(RiskCase.tier), col(RiskCase.override))).all()
        return {"rows": [{"referral_id": r[0], "tier": r[1], "override": r[2]} for r in rows]}

    host.serve_personal_data(privacy.export, privacy.erase)

    host.finish_routes()
    return host.app


__all__ = ["Case", "RiskSettings", "create_app"]
