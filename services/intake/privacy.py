"""A person's data at intake: everything for a subject access request, and irreversible erasure.

Erasure keeps anonymous counts only: each referral row stays (the agency, the dates, how often it was sent)
under a random id, with its encrypted body, person link and agency reference gone; equality answers, the
access log and the person's matching key are deleted."""

from __future__ import annotations

import json
import secrets

from sqlalchemy import Connection, delete, select, update
from sqlmodel import col

from services.intake.crypto import IntakeKeys
from services.intake.store import equality_answers
from services.intake.tables import EqualityRecord, PersonalDataAccessRecord, PersonRecord, ReferralRecord
from shared.contracts.intake_rpc import EqualityAnswers, IntakePersonalData, PersonalDataAccess, StoredReferral
from shared.outbox import OutboxRow


def referral_ids(conn: Connection, person_id: str) -> list[str]:
    return list(conn.execute(select(col(ReferralRecord.referral_id)).where(
        col(ReferralRecord.person_id) == person_id).order_by(col(ReferralRecord.received_at))).scalars())


def export(conn: Connection, keys: IntakeKeys, person_id: str) -> IntakePersonalData:
    rows = conn.execute(select(ReferralRecord).where(col(ReferralRecord.person_id) == person_id)
                        .order_by(col(ReferralRecord.received_at))).all()
    ids = [r.referral_id for r in rows]
    equality = equality_answers(conn, keys, ids)
    access = conn.execute(select(PersonalDataAccessRecord).where(col(PersonalDataAccessRecord.referral_id).in_(ids))
                          .order_by(col(PersonalDataAccessRecord.asked_at))).all()
    return IntakePersonalData(
        referrals=[StoredReferral(referral_id=r.referral_id, agency_id=r.agency_id,
                                  agency_referral_id=r.agency_referral_id, received_at=r.received_at,
                                  revision=r.revision, referral=json.loads(keys.cipher.decrypt(r.body))) for r in rows],
        equality_monitoring=[EqualityAnswers(referral_id=rid, **equality[rid]) for rid in ids if rid in equality],
        personal_data_access_log=[PersonalDataAccess(referral_id=a.referral_id, item=a.item, asked_by=a.asked_by,
                                                     purpose=a.purpose, asked_at=a.asked_at) for a in access],
    )


def erase(conn: Connection, person_id: str) -> dict[str, int]:
    ids = referral_ids(conn, person_id)
    erase_referrals(conn, ids)
    conn.execute(delete(PersonRecord).where(col(PersonRecord.person_id) == person_id))
    return {"referrals": len(ids)}


def erase_referrals(conn: Connection, ids: list[str]) -> int:
    """Anonymise these referrals (the person's other referrals, and the person, stay)."""
    for rid in ids:
        conn.execute(update(ReferralRecord).where(col(ReferralRecord.referral_id) == rid).values(
            referral_id=f"erased_{secrets.token_hex(8)}", agency_referral_id=f"erased_{secrets.token_hex(8)}",
            body="", person_id="erased", cloudevent=None))
        conn.execute(delete(OutboxRow).where(col(OutboxRow.payload).contains(rid.encode())))
    conn.execute(delete(EqualityRecord).where(col(EqualityRecord.referral_id).in_(ids)))
    conn.execute(delete(PersonalDataAccessRecord).where(col(PersonalDataAccessRecord.referral_id).in_(ids)))
    return len(ids)
