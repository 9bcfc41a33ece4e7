"""A person's data at intake: everything for a subject access request, and irreversible erasure.

Erasure keeps anonymous counts only: each referral row stays (the agency, the dates, how often it was sent, when and
why it was withdrawn) under a random id, with its encrypted body and withdrawal note, person link and agency reference
gone; equality answers, the
access log and the person's matching key are deleted. Before that, `erase_from_streams` deletes every message
the JetStream streams still hold about the person's referrals."""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Connection, delete, select, update
from sqlmodel import col

from services.intake.crypto import IntakeKeys
from services.intake.store import equality_answers
from services.intake.tables import EqualityRecord, PersonalDataAccessRecord, PersonRecord, ReferralRecord
from shared.contracts.intake_rpc import (
    EqualityAnswers,
    IntakePersonalData,
    PersonalDataAccess,
    StoredReferral,
    StoredWithdrawal,
)
from shared.outbox import OutboxRow
from shared.subjects import Subjects


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
                                  revision=r.revision, referral=json.loads(keys.cipher.decrypt(r.body)),
                                  withdrawal=_withdrawal(keys, r)) for r in rows],
        equality_monitoring=[EqualityAnswers(referral_id=rid, **equality[rid]) for rid in ids if rid in equality],
        personal_data_access_log=[PersonalDataAccess(referral_id=a.referral_id, item=a.item, asked_by=a.asked_by,
                                                     purpose=a.purpose, asked_at=a.asked_at) for a in access],
    )


def _withdrawal(keys: IntakeKeys, r: Any) -> StoredWithdrawal | None:
    if r.withdrawn_at is None:
        return None
    note = None if r.withdrawal_note is None else keys.cipher.decrypt(r.withdrawal_note)
    return StoredWithdrawal(withdrawn_at=r.withdrawn_at, reason=r.withdrawal_reason, note=note)


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
            body="", person_id="erased", cloudevent=None, withdrawal_note=None))
        conn.execute(delete(OutboxRow).where(col(OutboxRow.payload).contains(rid.encode())))
    conn.execute(delete(EqualityRecord).where(col(EqualityRecord.referral_id).in_(ids)))
    conn.execute(delete(PersonalDataAccessRecord).where(col(PersonalDataAccessRecord.referral_id).in_(ids)))
    return len(ids)


@dataclass(frozen=True)
class BrokerTrace:
    """What names one referral in the messages on the broker: our id, and the agency's own reference."""

    referral_id: str
    agency_id: str
    agency_referral_id: str


def broker_traces(conn: Connection, person_id: str) -> list[BrokerTrace]:
    rows = conn.execute(select(ReferralRecord).where(col(ReferralRecord.person_id) == person_id)).all()
    return [BrokerTrace(r.referral_id, r.agency_id, r.agency_referral_id) for r in rows]


async def erase_from_streams(js: JetStreamContext, subjects: Subjects, traces: list[BrokerTrace]) -> int:
    """Delete (the server overwrites them) every message the streams hold about these referrals, before the link
    from the person to them is erased; returns how many. Events are kept 30 days (safeguarding alerts 90), and a
    recorded event (intake.recorded, in INTAKE; before schema_version 2, referrals.accepted in REFERRALS too) carries,
    besides our ids and the agency's reference, pseudonymous facts (age, gender, borough, indicators, unsafe areas,
    availability, the person id) that could be tied back to the child. Each agency's subjects are
    searched (subjects end in the agency id); a message names a referral by `referral_id`, or (intake's events) by
    the agency's `agency_referral_id`. Raw submissions are not searched: the submissions stream holds one only until
    intake has processed it, and one arriving after the erasure is a new submission from the agency."""
    by_agency: dict[str, list[BrokerTrace]] = defaultdict(list)
    for t in traces:
        by_agency[t.agency_id].append(t)
    erased = 0
    for agency, mine in by_agency.items():
        ids, references = {t.referral_id for t in mine}, {t.agency_referral_id for t in mine}
        for stream, subject in subjects.agency_events(agency):
            seq = 0
            while True:
                try:
                    msg = await js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
                except NotFoundError:  # no more (or no such stream)
                    break
                if msg.seq is None:  # never, for a stored message
                    break
                seq = msg.seq
                if _names(msg.data, ids, references):
                    await js.delete_msg(stream, msg.seq)
                    erased += 1
    return erased


def _names(data: bytes | None, ids: set[str], references: set[str]) -> bool:
    try:
        body = json.loads(data or b"")
    except ValueError:
        return False  # not an event (a poison message someone published): it names no one we can tell
    return isinstance(body, dict) and (body.get("referral_id") in ids or body.get("agency_referral_id") in references)
