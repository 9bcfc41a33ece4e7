"""What scheduling holds about a person, for a subject access request, and its anonymisation on erasure.

Erasure keeps anonymous counts only: sessions stay (mentors' workload history) under a random case reference,
with no link back to the referral; the case's facts are deleted.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlmodel import col

from services.scheduling.store import forget_facts
from services.scheduling.tables import AlertRow, CaseRow, SessionRow
from shared.outbox import OutboxRow


def export(conn: Connection, referral_ids: list[str]) -> dict[str, Any]:
    cases = conn.execute(select(CaseRow).where(col(CaseRow.referral_id).in_(referral_ids))).all()
    sessions = conn.execute(
        select(SessionRow).where(col(SessionRow.referral_id).in_(referral_ids)).order_by(col(SessionRow.start))
    ).all()
    return {
        "cases": [{"referral_id": c.referral_id, "status": c.status, "tier": c.tier, "mentor_id": c.mentor_id,
                   "reason": c.reason} for c in cases],
        "sessions": [{"session_id": s.session_id, "referral_id": s.referral_id, "mentor_id": s.mentor_id,
                      "start": s.start.isoformat(), "end": s.end.isoformat(), "status": s.status} for s in sessions],
        "alerts": [{"rule_id": a.rule_id, "referral_id": a.referral_id, "raised_at": a.raised_at.isoformat(),
                    "actions": json.loads(a.actions), "deadline": a.deadline.isoformat(),
                    "acknowledged_by": a.acknowledged_by,
                    "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
                    "acknowledgement_note": a.acknowledgement_note}
                   for a in conn.execute(select(AlertRow).where(col(AlertRow.referral_id).in_(referral_ids))).all()],
    }


def erase(conn: Connection, referral_ids: list[str]) -> dict[str, int]:
    if not referral_ids:
        return {"referrals": 0}
    found = conn.execute(select(col(CaseRow.referral_id), col(CaseRow.facts))
                         .where(col(CaseRow.referral_id).in_(referral_ids))).all()
    forget_facts(facts for _, facts in found if facts is not None)
    for rid in referral_ids:
        anon = f"erased_{secrets.token_hex(8)}"
        conn.execute(update(SessionRow).where(col(SessionRow.referral_id) == rid).values(referral_id=anon))
        conn.execute(update(AlertRow).where(col(AlertRow.referral_id) == rid)
                     .values(referral_id=anon, acknowledgement_note=None))
        conn.execute(delete(OutboxRow).where(col(OutboxRow.payload).contains(rid.encode())))
    conn.execute(delete(CaseRow).where(col(CaseRow.referral_id).in_(referral_ids)))
    return {"referrals": len(found)}
