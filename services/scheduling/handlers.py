"""Scheduling's consumers: collect each referral's facts and tier, then book a mentor or waitlist, reschedule
the remaining sessions when the cadence tier changes, suspend them while the young person is missing, and close the
case when its agency withdraws the referral."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime

from opentelemetry import trace
from sqlalchemy import Connection

from services.scheduling.agency_reasons import Reason, withdrawn
from services.scheduling.booking import CaseTask, carry_out, retry_freed
from services.scheduling.lifecycle import MISSING, cadence_after
from services.scheduling.sessions import close
from services.scheduling.store import (
    add_cases,
    case_row,
    load_cases,
    remember_facts,
    save_assessments,
    save_facts,
)
from services.scheduling.tables import CaseRow
from shared.contracts.codes import Tier
from shared.contracts.intake import ReferralRecorded, ReferralWithdrawn
from shared.contracts.risk import RiskAssessed
from shared.contracts.scheduling import CaseStatus
from shared.messaging import Delivery, parse_events
from shared.outbox import Outgoing
from shared.subjects import Subjects

# Reasons about the young person and their tier: their agency may read them as they stand.
MISSING_WHY = Reason.shared("the young person is reported missing (E05): sessions are suspended until they are found")
FOUND_WHY = Reason.shared("the young person is no longer missing: sessions resume")
STAFFED_WHY = Reason.shared("harm is now high or above: staffed venue, ending by 19:00")


def handle_intake(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects,
                  tracer: trace.Tracer | None = None) -> list[Outgoing]:
    """intake.recorded and intake.withdrawn, from one consumer, so a referral's withdrawal never overtakes its facts
    (intake records none after a withdrawal)."""
    withdrawal = subjects.recorded_withdrawal("")
    facts = [d for d in batch if not d.subject.startswith(withdrawal)]
    withdrawals = [d for d in batch if d.subject.startswith(withdrawal)]
    out = handle_recorded(conn, facts, now, subjects=subjects) if facts else []
    if withdrawals:  # the facts' cases were tried just now: not again in this transaction
        tried = {e.referral_id for _, e in parse_events(ReferralRecorded, facts)}
        out += handle_withdrawn(conn, withdrawals, now, subjects=subjects, tracer=tracer, tried=tried)
    return out


def handle_recorded(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Keep the facts scheduling needs; book when the assessment is already here."""
    events = parse_events(ReferralRecorded, batch)
    cases = load_cases(conn, [e.referral_id for _, e in events])
    tasks: list[CaseTask] = []
    new_rows: dict[str, dict[str, object]] = {}  # inserted together at the end: an update in this batch changes
    # its row here, as the database has no row yet to update
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = _case(cases, new_rows, event.referral_id)
        facts = event.model_dump_json()
        if row is None:
            remember_facts(facts, event)  # booking reads them from the row without parsing them again
            new_rows[event.referral_id] = {
                "referral_id": event.referral_id, "agency_id": event.agency_id, "facts": facts,
                "person_id": event.person_id, "status": CaseStatus.AWAITING_ASSESSMENT, "updated_at": now,
                "trace_context": d.headers.get("traceparent")}  # the referral's trace, for re-plans of our own
            continue
        if event.duplicate or (row.facts is not None and _revision(row.facts) >= event.revision):
            continue  # a repeat submission, or facts we already hold
        remember_facts(facts, event)
        if (queued := new_rows.get(event.referral_id)) is not None:
            queued.update(facts=facts, person_id=event.person_id)
        else:
            save_facts(conn, event.referral_id, facts=facts, person_id=event.person_id, now=now)
        row.person_id = event.person_id
        waiting_for_facts = row.facts is None
        row.facts = facts
        if waiting_for_facts and row.tier is not None and row.status != CaseStatus.CLOSED:
            tasks.append(CaseTask(row, d.span, "suspend", MISSING_WHY) if row.missing else CaseTask(row, d.span))
    add_cases(conn, list(new_rows.values()))
    return carry_out(conn, tasks, now=now, subjects=subjects)


def handle_assessed(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects) -> list[Outgoing]:
    """Record the tier; book when the facts are here; reschedule when the cadence changes; suspend while missing."""
    events = parse_events(RiskAssessed, batch)
    cases = load_cases(conn, [e.referral_id for _, e in events])
    tasks: list[CaseTask] = []
    new_rows: dict[str, dict[str, object]] = {}
    assessed: list[CaseRow] = []  # cases with a newer assessment, as it leaves them
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = _case(cases, new_rows, event.referral_id)
        tier, wellbeing = event.tier.value, event.wellbeing.tier.value
        staffed = event.harm.tier.rank >= Tier.HIGH.rank or "risk_to_staff" in event.flags
        needs = json.dumps(event.focus)
        if row is None:
            new_rows[event.referral_id] = {
                "referral_id": event.referral_id, "agency_id": event.agency_id, "tier": tier, "cadence_tier": tier,
                "wellbeing_tier": wellbeing, "assessment_number": event.number,
                "missing": MISSING in event.escalations, "staffed_only": staffed, "needs": needs,
                "status": CaseStatus.AWAITING_REFERRAL, "updated_at": now,
                "trace_context": d.headers.get("traceparent")}
            continue
        if event.number <= row.assessment_number:
            continue  # an older or repeated assessment
        old_cadence = row.cadence_tier
        cadence, lower = (event.tier, 0) if old_cadence is None else cadence_after(
            Tier(old_cadence), event.tier, row.lower_reviews)
        safety_changed = staffed != row.staffed_only
        missing = MISSING in event.escalations
        row.tier, row.cadence_tier, row.lower_reviews = tier, cadence.value, lower
        row.wellbeing_tier, row.assessment_number, row.missing = wellbeing, event.number, missing
        row.staffed_only, row.needs = staffed, needs
        assessed.append(row)
        if row.facts is None or row.status == CaseStatus.CLOSED:
            continue
        if missing and row.status != CaseStatus.SUSPENDED:
            tasks.append(CaseTask(row, d.span, "suspend", MISSING_WHY))
        elif not missing and row.status == CaseStatus.SUSPENDED:
            tasks.append(CaseTask(row, d.span, "resume", FOUND_WHY))
        elif missing:
            continue
        elif row.status == CaseStatus.SCHEDULED and old_cadence != cadence.value:
            tasks.append(CaseTask(row, d.span, "reschedule",
                                  Reason.shared(f"tier changed {old_cadence} → {cadence.value}: new cadence")))
        elif row.status == CaseStatus.SCHEDULED and safety_changed and staffed:
            tasks.append(CaseTask(row, d.span, "reschedule", STAFFED_WHY))
        elif row.status in {CaseStatus.AWAITING_ASSESSMENT, CaseStatus.WAITLISTED}:
            tasks.append(CaseTask(row, d.span))
    add_cases(conn, list(new_rows.values()))
    save_assessments(conn, assessed, now=now)  # before booking reads the tiers back
    return carry_out(conn, tasks, now=now, subjects=subjects)


def handle_withdrawn(conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects,
                     tracer: trace.Tracer | None = None, tried: Collection[str] = ()) -> list[Outgoing]:
    """Close each withdrawn referral's case as a closure does: its future sessions cancelled (the mentor's time and
    place freed, and the waiting cases tried again), off the waitlist, the agency's reason recorded; a case closed
    already stays as it was. Safeguarding alerts are not touched: an open one stays open for the safeguarding lead."""
    events = parse_events(ReferralWithdrawn, batch)
    cases = load_cases(conn, [e.referral_id for _, e in events])
    out: list[Outgoing] = []
    freed: list[str | None] = []  # the mentors of the cases closed
    new_rows: dict[str, dict[str, object]] = {}
    for d, event in events:
        d.span.set_attribute("referral.id", event.referral_id)
        row = _case(cases, new_rows, event.referral_id)
        reason = withdrawn(event.agency_id, event.reason)
        if row is None:  # never heard of (its facts come first): closed, so nothing later books it
            values: dict[str, object] = {
                "referral_id": event.referral_id, "agency_id": event.agency_id, "status": CaseStatus.CLOSED,
                "reason": reason.detail, "agency_reason": reason.agency, "updated_at": now,
                "trace_context": d.headers.get("traceparent")}
            add_cases(conn, [values])
            new_rows[event.referral_id] = values
            d.span.set_attribute("reroute.outcome", "closed")
        elif row.status == CaseStatus.CLOSED:
            d.span.set_attribute("reroute.outcome", "already_closed")
        else:
            with trace.use_span(d.span, end_on_exit=False):  # its events continue the referral's trace
                out += close(conn, row.referral_id, row.agency_id, now=now, subjects=subjects, reason=reason)
            row.status = CaseStatus.CLOSED
            freed.append(row.mentor_id)
            d.span.set_attribute("reroute.outcome", "closed")
    return out + retry_freed(conn, freed, now=now, subjects=subjects,
                             tracer=tracer or trace.get_tracer("reroute.scheduling"), tried=tried)


def _case(cases: dict[str, CaseRow], new_rows: Mapping[str, Mapping[str, object]], referral_id: str) -> CaseRow | None:
    """The batch's case for `referral_id`: as loaded, or as the batch is to insert it, its row made only when the batch
    comes back to it (rarely: a row costs 45-100 µs to build, as much as the rest of a new case's facts here); None
    for a case neither stored nor new in this batch."""
    row = cases.get(referral_id)
    if row is None and (values := new_rows.get(referral_id)) is not None:
        row = cases[referral_id] = case_row(values)
    return row


def _revision(facts: str) -> int:
    return ReferralRecorded.model_validate_json(facts).revision
