"""Handing out a piece of a young person's personal data: only to a named person, for a stated purpose, logged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlmodel import col

from services.intake.crypto import IntakeKeys
from services.intake.people import first_name, match_keys_of
from services.intake.tables import PersonalDataAccessRecord, PersonRecord, ReferralRecord, as_utc
from shared.contracts.intake import Referral
from shared.contracts.intake_rpc import (
    AccessLog,
    AccessLogEntry,
    AccessLogRequest,
    FindPersonRequest,
    FirstName,
    FoundPerson,
    FoundReferral,
    Identity,
    IdentityRequest,
    ReferrerContact,
)
from shared.contracts.rpc import Invalid


def first_name_for(conn: Connection, keys: IntakeKeys, *, referral_id: str, asked_by: str, purpose: str,
                   now: datetime) -> FirstName | None:
    """The first name of the referral's young person (None: no such referral); every answered or unanswered
    request is logged, so the caller commits even when there is nothing to answer."""
    asked_by, purpose = _who_and_why(asked_by, purpose)
    body = conn.execute(select(col(ReferralRecord.body)).where(col(ReferralRecord.referral_id) == referral_id)).scalar()
    conn.execute(insert(PersonalDataAccessRecord).values(
        referral_id=referral_id[:40], item="first_name", asked_by=asked_by, purpose=purpose, asked_at=now,
        answered=body is not None))
    if body is None:
        return None
    referral = Referral.model_validate_json(keys.cipher.decrypt(body))
    return FirstName(referral_id=referral_id, first_name=first_name(referral))


def identity_for(conn: Connection, keys: IntakeKeys, request: IdentityRequest, *, now: datetime) -> Identity | None:
    """The referral's young person and referrer (None: no such referral); logged, answered or not."""
    asked_by, purpose = _who_and_why(request.asked_by, request.purpose)
    row = conn.execute(select(col(ReferralRecord.body), col(ReferralRecord.agency_id),
                              col(ReferralRecord.agency_referral_id))
                       .where(col(ReferralRecord.referral_id) == request.referral_id)).first()
    conn.execute(insert(PersonalDataAccessRecord).values(
        referral_id=request.referral_id[:40], item="identity", asked_by=asked_by, purpose=purpose, asked_at=now,
        answered=row is not None))
    if row is None:
        return None
    referral = Referral.model_validate_json(keys.cipher.decrypt(row.body))
    child, referrer = referral.young_person, referral.referrer
    return Identity(referral_id=request.referral_id, agency_id=row.agency_id, agency_referral_id=row.agency_referral_id,
                    given_name=child.given_name, family_name=child.family_name, date_of_birth=child.date_of_birth,
                    borough=child.borough, referrer=ReferrerContact(name=referrer.name, role=referrer.role,
                                                                    email=referrer.email, phone=referrer.phone))


def access_log(conn: Connection, request: AccessLogRequest) -> AccessLog:
    """The access log, newest first, narrowed as asked (who looked: case-insensitive, as written before people had
    ids of their own)."""
    query = select(PersonalDataAccessRecord).order_by(col(PersonalDataAccessRecord.asked_at).desc(),
                                                      col(PersonalDataAccessRecord.id).desc())
    if request.asked_by.strip():
        query = query.where(func.lower(col(PersonalDataAccessRecord.asked_by)) == request.asked_by.strip().lower())
    if request.referral_id.strip():
        query = query.where(col(PersonalDataAccessRecord.referral_id) == request.referral_id.strip())
    if request.person_id.strip():
        query = query.where(col(PersonalDataAccessRecord.referral_id).in_(
            select(col(ReferralRecord.referral_id)).where(col(ReferralRecord.person_id) == request.person_id.strip())))
    rows = conn.execute(query.limit(request.limit + 1)).all()
    return AccessLog(more=len(rows) > request.limit, entries=[
        AccessLogEntry(referral_id=r.referral_id, item=r.item, asked_by=r.asked_by, purpose=r.purpose,
                       asked_at=as_utc(r.asked_at), answered=r.answered) for r in rows[:request.limit]])


def find_person(conn: Connection, keys: IntakeKeys, request: FindPersonRequest, *, now: datetime) -> FoundPerson | None:
    """The young person a name and birth date identify, with their referrals (None: no one), matched under every
    matching key as a new referral would be. Logged whatever the answer: one row per referral found (so the
    person's own export shows who looked them up and why), or one unanswered row naming no one; the name and birth
    date asked for are never stored."""
    asked_by, purpose = _who_and_why(request.asked_by, request.purpose)
    hashes = match_keys_of(keys.matcher, request.given_name, request.family_name, request.date_of_birth)
    person_id = conn.execute(select(col(PersonRecord.person_id)).where(col(PersonRecord.match_key).in_(hashes))
                             .limit(1)).scalar()
    rows = [] if person_id is None else conn.execute(
        select(col(ReferralRecord.referral_id), col(ReferralRecord.agency_id), col(ReferralRecord.agency_referral_id),
               col(ReferralRecord.received_at))
        .where(col(ReferralRecord.person_id) == person_id).order_by(col(ReferralRecord.received_at))).all()
    logged = [r.referral_id for r in rows] or [""]
    conn.execute(insert(PersonalDataAccessRecord), [
        {"referral_id": rid, "item": "person_find", "asked_by": asked_by, "purpose": purpose, "asked_at": now,
         "answered": bool(rows)} for rid in logged])
    if person_id is None or not rows:
        return None
    return FoundPerson(person_id=person_id, referrals=[
        FoundReferral(referral_id=r.referral_id, agency_id=r.agency_id, agency_referral_id=r.agency_referral_id,
                      received_at=as_utc(r.received_at)) for r in rows])


def _who_and_why(asked_by: str, purpose: str) -> tuple[str, str]:
    asked_by, purpose = " ".join(asked_by.split()), " ".join(purpose.split())
    if not asked_by or not purpose:
        raise Invalid("say who is asking (asked_by) and why (purpose): every look-up of personal data is logged")
    if len(asked_by) > 200 or len(purpose) > 500:
        raise Invalid("asked_by is at most 200 characters and purpose at most 500")
    return asked_by, purpose
