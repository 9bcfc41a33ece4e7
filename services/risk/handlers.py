"""Risk's batch handler: assess each accepted referral, raise safeguarding alerts, publish the assessment."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, insert, select

from services.risk.assessment import Assessment, assess
from services.risk.ruleset import RuleSet
from services.risk.tables import AlertRecord, AssessmentRecord, RiskCase
from shared.contracts.intake import ReferralAccepted
from shared.contracts.risk import RiskAssessed, SafeguardingAlert
from shared.messaging import Delivery, parse_event
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects


def handle_accepted(
    conn: Connection, batch: list[Delivery], now: datetime, *, rules: RuleSet, subjects: Subjects
) -> list[Outgoing]:
    """Assess each new referral once; alerts go out first and never wait for scheduling."""
    out: list[Outgoing] = []
    events = [(d, parse_event(ReferralAccepted, d)) for d in batch]
    ids = [e.referral_id for _, e in events]
    known = set(conn.execute(select(RiskCase.referral_id).where(RiskCase.referral_id.in_(ids))).scalars())  # type: ignore[attr-defined]
    cases: list[dict[str, object]] = []
    records: list[dict[str, object]] = []
    alert_rows: list[dict[str, object]] = []
    for d, accepted in events:
        d.span.set_attribute("referral.id", accepted.referral_id)
        if accepted.referral_id in known:
            d.span.set_attribute("reroute.outcome", "already_assessed")
            continue
        known.add(accepted.referral_id)
        result = assess(accepted, rules, now=now)
        assessed = assessed_event(accepted, result, number=1, now=now)
        alerts = alert_events(accepted, result, now=now)
        cases.append(
            {
                "referral_id": accepted.referral_id,
                "agency_id": accepted.agency_id,
                "facts": accepted.model_dump_json(),
                "accepted_at": accepted.occurred_at,
                "current_tier": result.tier.value,
                "assessments": 1,
            }
        )
        records.append(assessment_row(assessed, number=1, now=now))
        for alert in alerts:
            alert_rows.append(
                {
                    "event_id": alert.event_id,
                    "referral_id": alert.referral_id,
                    "rule_id": alert.rule_id,
                    "raised_at": now,
                    "deadline": alert.deadline,
                    "actions": json.dumps(alert.actions),
                }
            )
            out.append(outgoing(alert, subjects.alert(accepted.agency_id), span=d.span))
        out.append(outgoing(assessed, subjects.assessed(accepted.agency_id), span=d.span))
        d.span.set_attribute("risk.tier", result.tier.value)
        d.span.set_attribute("risk.escalations", len(alerts))
        d.span.set_attribute("reroute.outcome", "assessed")
    for table, rows in ((RiskCase, cases), (AssessmentRecord, records), (AlertRecord, alert_rows)):
        if rows:
            conn.execute(insert(table), rows)
    return out


def assessed_event(accepted: ReferralAccepted, result: Assessment, *, number: int, now: datetime) -> RiskAssessed:
    return RiskAssessed(
        event_id=f"assessed:{accepted.referral_id}:{number}",
        occurred_at=now,
        referral_id=accepted.referral_id,
        agency_id=accepted.agency_id,
        tier=result.tier,
        computed_tier=result.tier,
        likelihood=result.likelihood,
        harm=result.harm,
        wellbeing=result.wellbeing,
        reasons=result.reasons,
        needs=result.needs,
        focus=result.focus,
        escalations=[e.rule_id for e in result.escalations],
        flags=result.flags,
        rules_version=result.rules_version,
    )


def alert_events(accepted: ReferralAccepted, result: Assessment, *, now: datetime) -> list[SafeguardingAlert]:
    return [
        SafeguardingAlert(
            event_id=f"alert:{accepted.referral_id}:{e.rule_id}",
            occurred_at=now,
            referral_id=accepted.referral_id,
            agency_id=accepted.agency_id,
            rule_id=e.rule_id,
            actions=e.actions,
            deadline=e.deadline,
        )
        for e in result.escalations
    ]


def assessment_row(event: RiskAssessed, *, number: int, now: datetime) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "referral_id": event.referral_id,
        "number": number,
        "assessed_at": now,
        "computed_tier": event.computed_tier.value,
        "final_tier": event.tier.value,
        "rules_version": event.rules_version,
        "event": event.model_dump_json(),
    }
