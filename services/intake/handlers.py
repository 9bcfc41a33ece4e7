"""Intake's batch handler: validate, de-duplicate, store and acknowledge submitted referrals."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, delete, insert, select, tuple_, update

from services.intake.tables import EqualityRecord, ReferralRecord, RejectionRecord
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


@dataclass
class _Stored:
    """A referral as this batch sees it: loaded from the table or created in this batch."""

    referral_id: str
    received_at: datetime
    body: str
    revision: int
    submissions: int
    new: bool = False
    changed: bool = False
    cloudevent: str | None = None


def handle_submissions(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Accept or reject each submission or update; a repeat of (agency, agency_referral_id) is the same referral."""
    update_prefix = subjects.updated("")
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
    rejections: list[dict[str, object]] = []
    monitoring: dict[str, dict[str, object]] = {}
    for d, agency, result in parsed:
        d.span.set_attribute("agency.id", agency)
        is_update = d.subject.startswith(update_prefix)
        stored = known.get((agency, result.agency_referral_id)) if isinstance(result, Referral) else None
        if isinstance(result, Referral) and is_update and stored is None:
            result = [FieldError(field="agency_referral_id", message=(
                f"no referral '{result.agency_referral_id}' from {agency} to update: submit it on "
                "referrals.submitted first"))]
        if isinstance(result, list):
            event, row = _reject(d, agency, result, now=now)
            rejections.append(row)
            out.append(outgoing(event, subjects.rejected(agency), span=d.span))
            continue
        body = result.model_dump_json(exclude={"equality_monitoring"})
        if stored is None:
            stored = _Stored(new_referral_id(), now, body, revision=0, submissions=1, new=True,
                             cloudevent=_cloudevent_headers(d.headers))
            known[(agency, result.agency_referral_id)] = stored
            event_id, duplicate = f"accepted:{stored.referral_id}", False
        elif is_update and body != stored.body:
            stored.body, stored.revision, stored.changed = body, stored.revision + 1, True
            event_id, duplicate = f"accepted:{stored.referral_id}:r{stored.revision}", False
        else:  # a repeat, or an update that changes nothing: acknowledge again
            stored.submissions += 1
            stored.changed = True
            event_id, duplicate = f"accepted:{stored.referral_id}:repeat:{d.key}", True
        if result.equality_monitoring is not None:
            monitoring[stored.referral_id] = {
                "referral_id": stored.referral_id, "recorded_at": now, **result.equality_monitoring.model_dump()}
        d.span.set_attribute("referral.id", stored.referral_id)
        outcome = "duplicate" if duplicate else ("updated" if is_update else "accepted")
        d.span.set_attribute("reroute.outcome", outcome)
        event = accepted_event(
            result, referral_id=stored.referral_id, agency_id=agency, received_at=stored.received_at,
            event_id=event_id, now=now,
        ).model_copy(update={"duplicate": duplicate, "revision": stored.revision})
        out.append(outgoing(event, subjects.accepted(agency), span=d.span))
    _save(conn, known, now=now)
    if rejections:
        conn.execute(insert(RejectionRecord), rejections)
    if monitoring:
        conn.execute(delete(EqualityRecord).where(EqualityRecord.referral_id.in_(list(monitoring))))  # type: ignore[attr-defined]
        conn.execute(insert(EqualityRecord), list(monitoring.values()))
    return out


def _save(conn: Connection, known: dict[tuple[str, str], _Stored], *, now: datetime) -> None:
    new = [
        {"referral_id": s.referral_id, "agency_id": agency, "agency_referral_id": arid, "received_at": s.received_at,
         "updated_at": now, "body": s.body, "revision": s.revision, "submissions": s.submissions,
         "cloudevent": s.cloudevent}
        for (agency, arid), s in known.items() if s.new
    ]
    changed = [
        {"rid": s.referral_id, "body": s.body, "revision": s.revision, "submissions": s.submissions, "updated_at": now}
        for s in known.values() if s.changed and not s.new
    ]
    if new:
        conn.execute(insert(ReferralRecord), new)
    if changed:
        conn.execute(
            update(ReferralRecord)
            .where(ReferralRecord.referral_id == bindparam("rid"))  # type: ignore[arg-type]
            .values(body=bindparam("body"), revision=bindparam("revision"), submissions=bindparam("submissions"),
                    updated_at=bindparam("updated_at")),
            changed,
        )


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


def _known_referrals(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Stored]:
    if not keys:
        return {}
    rows = conn.execute(
        select(ReferralRecord).where(
            tuple_(ReferralRecord.agency_id, ReferralRecord.agency_referral_id).in_(list(keys))
        )
    ).all()
    return {
        (r.agency_id, r.agency_referral_id): _Stored(r.referral_id, r.received_at, r.body, r.revision, r.submissions)
        for r in rows
    }


def _cloudevent_headers(headers: dict[str, str]) -> str | None:
    ce = {k.lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    return json.dumps(ce) if ce else None


def _age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
