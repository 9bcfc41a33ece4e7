"""Handing out a piece of a young person's personal data: only to a named person, for a stated purpose, logged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select
from sqlmodel import col

from services.intake.crypto import IntakeKeys
from services.intake.people import first_name
from services.intake.tables import PersonalDataAccessRecord, ReferralRecord
from shared.contracts.intake import Referral
from shared.contracts.intake_rpc import FirstName
from shared.contracts.rpc import Invalid


def first_name_for(conn: Connection, keys: IntakeKeys, *, referral_id: str, asked_by: str, purpose: str,
                   now: datetime) -> FirstName | None:
    """The first name of the referral's young person (None: no such referral); every answered or unanswered
    request is logged, so the caller commits even when there is nothing to answer."""
    asked_by, purpose = " ".join(asked_by.split()), " ".join(purpose.split())
    if not asked_by or not purpose:
        raise Invalid("say who is asking (asked_by) and why (purpose): every look-up of personal data is logged")
    if len(asked_by) > 200 or len(purpose) > 500:
        raise Invalid("asked_by is at most 200 characters and purpose at most 500")
    body = conn.execute(select(col(ReferralRecord.body)).where(col(ReferralRecord.referral_id) == referral_id)).scalar()
    conn.execute(insert(PersonalDataAccessRecord).values(
        referral_id=referral_id[:40], item="first_name", asked_by=asked_by, purpose=purpose, asked_at=now,
        answered=body is not None))
    if body is None:
        return None
    referral = Referral.model_validate_json(keys.cipher.decrypt(body))
    return FirstName(referral_id=referral_id, first_name=first_name(referral))
