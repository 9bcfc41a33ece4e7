"""Handing out a piece of a young person's personal data: only to a named person, for a stated purpose, logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlmodel import col

from services.intake.crypto import IntakeKeys
from services.intake.people import first_name
from services.intake.tables import PersonalDataAccessRecord, ReferralRecord
from shared.contracts.intake import Referral


def first_name_for(conn: Connection, keys: IntakeKeys, *, referral_id: str, asked_by: str, purpose: str,
                   now: datetime) -> dict[str, Any]:
    """The first name of the referral's young person; every answered or unanswered request is logged."""
    asked_by, purpose = " ".join(asked_by.split()), " ".join(purpose.split())
    if not asked_by or not purpose:
        return {"error": "say who is asking (asked_by) and why (purpose): every look-up of personal data is logged"}
    if len(asked_by) > 200 or len(purpose) > 500:
        return {"error": "asked_by is at most 200 characters and purpose at most 500"}
    body = conn.execute(select(col(ReferralRecord.body)).where(col(ReferralRecord.referral_id) == referral_id)).scalar()
    conn.execute(insert(PersonalDataAccessRecord).values(
        referral_id=referral_id[:40], item="first_name", asked_by=asked_by, purpose=purpose, asked_at=now,
        answered=body is not None))
    if body is None:
        return {"found": False}
    referral = Referral.model_validate_json(keys.cipher.decrypt(body))
    return {"found": True, "referral_id": referral_id, "first_name": first_name(referral)}
