"""Intake's batch handler: validate, de-duplicate, store and acknowledge submitted referrals."""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, tuple_, update

from services.intake.tables import ReferralRecord, RejectionRecord
from services.intake.validation import readable_agency_referral_id, validate_referral
from shared.contracts.common import FieldError
from shared.contracts.intake import (
    Indicator,
    PersonFacts,
    Referral,
    ReferralAccepted,
    ReferralRejected,
    age_band,
)
from shared.messaging import Delivery
from shared.outbox import Outgoing, outgoing
from shared.subjects import AGENCY_ID, Subjects

LONDON = ZoneInfo("Europe/London")


def new_referral_id() -> str:
    return f"ref_{secrets.token_hex(8)}"


def handle_submissions(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Accept or reject each submission; a repeat of (agency, agency_referral_id) is the same referral."""
    parsed: list[tuple[Delivery, str, Referral | list[FieldError]]] = []
    for d in batch:
        agency = subjects.agency_of(d.subject)
        result: Referral | list[FieldError]
        if not AGENCY_ID.match(agency):
            result = [FieldError(field="", message=f"agency id '{agency}' in the subject is not valid")]
        else:
            result = validate_referral(d.data)
        parsed.append((d, agency, result))

    keys = {(agency, r.agency_referral_id) for _, agency, r in parsed if isinstance(r, Referral)}
    known = _known_referrals(conn, keys)
    out: list[Outgoing] = []
    new_rows: list[dict[str, object]] = []
    rejections: list[dict[str, object]] = []
    for d, agency, result in parsed:
        d.span.set_attribute("agency.id", agency)
        if isinstance(result, list):
            event, row = _reject(d, agency, result, now=now)
            rejections.append(row)
            out.append(outgoing(event, subjects.rejected(agency), span=d.span))
            continue
        key = (agency, result.agency_referral_id)
        existing = known.get(key)
        if existing is None:
            referral_id = new_referral_id()
            new_rows.append(
                {
                    "referral_id": referral_id,
                    "agency_id": agency,
                    "agency_referral_id": result.agency_referral_id,
                    "received_at": now,
                    "body": result.model_dump_json(),
                    "cloudevent": _cloudevent_headers(d.headers),
                    "submissions": 1,
                }
            )
            known[key] = (referral_id, now)
            event_id, duplicate, received_at = f"accepted:{referral_id}", False, now
        else:
            referral_id, received_at = existing
            pending = next((r for r in new_rows if r["referral_id"] == referral_id), None)
            if pending is not None:  # repeated within this batch: not inserted yet
                pending["submissions"] = int(pending["submissions"]) + 1  # type: ignore[call-overload]
            else:
                conn.execute(
                    update(ReferralRecord)
                    .where(ReferralRecord.referral_id == referral_id)  # type: ignore[arg-type]
                    .values(submissions=ReferralRecord.submissions + 1)
                )
            event_id, duplicate = f"accepted:{referral_id}:repeat:{d.key}", True
        d.span.set_attribute("referral.id", referral_id)
        d.span.set_attribute("reroute.outcome", "duplicate" if duplicate else "accepted")
        event = accepted_event(
            result, referral_id=referral_id, agency_id=agency, received_at=received_at, event_id=event_id, now=now
        ).model_copy(update={"duplicate": duplicate})
        out.append(outgoing(event, subjects.accepted(agency), span=d.span))
    if new_rows:
        conn.execute(insert(ReferralRecord), new_rows)
    if rejections:
        conn.execute(insert(RejectionRecord), rejections)
    return out


def accepted_event(
    referral: Referral, *, referral_id: str, agency_id: str, received_at: datetime, event_id: str, now: datetime
) -> ReferralAccepted:
    """What risk and scheduling may know: no names, birth date, contact details or free text."""
    referral_date = received_at.astimezone(LONDON).date()
    yp = referral.young_person
    age = _age_on(yp.date_of_birth, referral_date)
    return ReferralAccepted(
        event_id=event_id,
        occurred_at=now,
        referral_id=referral_id,
        agency_id=agency_id,
        agency_referral_id=referral.agency_referral_id,
        person=PersonFacts(
            age_years=age, age_band=age_band(age), gender=yp.gender, borough=yp.borough, languages=yp.languages
        ),
        index_offence=referral.index_offence,
        prior_proven_offences=referral.prior_proven_offences,
        age_at_first_proven_offence=referral.age_at_first_proven_offence,
        indicators=[Indicator(code=i.code, observed_at=i.observed_at or referral_date) for i in referral.indicators],
        protective_factors=referral.protective_factors,
        unsafe_areas=referral.unsafe_areas,
        preferences=referral.preferences,
        availability=referral.availability,
    )


def _reject(d: Delivery, agency: str, errors: list[FieldError], *, now: datetime) -> tuple[ReferralRejected, dict[str, object]]:
    event = ReferralRejected(
        event_id=f"rejected:{d.key}",
        occurred_at=now,
        agency_id=agency,
        agency_referral_id=readable_agency_referral_id(d.data),
        errors=errors,
    )
    d.span.set_attribute("reroute.outcome", "rejected")
    d.span.set_attribute("reroute.error_count", len(errors))
    row = {
        "event_id": event.event_id,
        "agency_id": agency,
        "agency_referral_id": event.agency_referral_id,
        "received_at": now,
        "errors": json.dumps([e.model_dump() for e in errors]),
    }
    return event, row


def _known_referrals(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, datetime]]:
    if not keys:
        return {}
    rows = conn.execute(
        select(
            ReferralRecord.agency_id,
            ReferralRecord.agency_referral_id,
            ReferralRecord.referral_id,
            ReferralRecord.received_at,
        ).where(tuple_(ReferralRecord.agency_id, ReferralRecord.agency_referral_id).in_(list(keys)))
    ).all()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def _cloudevent_headers(headers: dict[str, str]) -> str | None:
    ce = {k.lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    return json.dumps(ce) if ce else None


def _age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
