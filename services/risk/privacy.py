"""What risk holds about a person, for a subject access request, and its irreversible anonymisation on erasure.

Erasure keeps anonymous counts only: each assessment row stays with its tiers and cause (so the fairness audit
and tier statistics still add up) but loses its link to the referral and every fact and explanation.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlmodel import col

from services.risk.tables import AlertRecord, AssessmentRecord, RiskCase
from shared.outbox import OutboxRow


def export(conn: Connection, referral_ids: list[str]) -> dict[str, Any]:
    cases = conn.execute(select(RiskCase).where(col(RiskCase.referral_id).in_(referral_ids))).all()
    assessments = conn.execute(
        select(AssessmentRecord).where(col(AssessmentRecord.referral_id).in_(referral_ids))
        .order_by(col(AssessmentRecord.referral_id), col(AssessmentRecord.number))
    ).all()
    alerts = conn.execute(select(AlertRecord).where(col(AlertRecord.referral_id).in_(referral_ids))).all()
    return {
        "facts": [json.loads(c.facts) for c in cases],
        "assessments": [json.loads(a.event) for a in assessments],
        "alerts": [{"rule_id": a.rule_id, "raised_at": a.raised_at.isoformat(), "actions": json.loads(a.actions),
                    "deadline": a.deadline.isoformat(), "referral_id": a.referral_id,
                    "acknowledged_by": a.acknowledged_by,
                    "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
                    "acknowledgement_note": a.acknowledgement_note} for a in alerts],
    }


def erase(conn: Connection, referral_ids: list[str]) -> dict[str, int]:
    """Delete the facts; keep each assessment's tiers under a random id no one can trace back."""
    if not referral_ids:
        return {"referrals": 0}
    found = list(conn.execute(select(col(RiskCase.referral_id)).where(col(RiskCase.referral_id).in_(referral_ids))).scalars())
    for rid in referral_ids:
        anon = f"erased_{secrets.token_hex(8)}"
        conn.execute(update(AssessmentRecord).where(col(AssessmentRecord.referral_id) == rid)
                     .values(referral_id=anon, event="{}", changed_by=None))
        conn.execute(update(AlertRecord).where(col(AlertRecord.referral_id) == rid)
                     .values(referral_id=anon))
        conn.execute(delete(OutboxRow).where(col(OutboxRow.payload).contains(rid.encode())))
    conn.execute(delete(RiskCase).where(col(RiskCase.referral_id).in_(referral_ids)))
    return {"referrals": len(found)}
