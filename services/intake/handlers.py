"""Intake's decision on each submitted, updated or withdrawn referral: validate, de-duplicate, store, outbox event.

One function, `decide_submissions`, makes it for both doors: a batch of NATS messages (`handle_submissions`)
and a single HTTP request (services/intake/http.py), so the two can never disagree.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from opentelemetry import trace
from sqlalchemy import Connection

from services.intake.crypto import IntakeKeys
from services.intake.people import match_keys, previous_referrals
from services.intake.store import ReferralStore, StoredReferral, rejection_row
from services.intake.validation import (
    age_on,
    date_problems,
    london_date,
    readable_agency_referral_id,
    validate_referral,
    validate_withdrawal,
)
from shared.contracts.common import FieldError
from shared.contracts.intake import (
    Indicator,
    PersonFacts,
    PreviousReferrals,
    Referral,
    ReferralAccepted,
    ReferralRecorded,
    ReferralRejected,
    ReferralWithdrawn,
    Withdrawal,
    age_band,
)
from shared.messaging import Delivery, drop_if_server_reply
from shared.outbox import Outgoing, outgoing
from shared.subjects import AGENCY_ID, Subjects
from shared.telemetry import caller_links, referral_trace, traceparent

Outcome = Literal["accepted", "updated", "duplicate", "rejected", "withdrawn", "already_withdrawn", "not_found"]
Kind = Literal["submitted", "updated", "withdraw"]
"""What an agency sent: a referral, an update of one, or the withdrawal of one (the verb of its NATS subject)."""
STATUS_PATH = "/v1/referrals/{referral_id}"
"""Where the HTTP API serves a referral's status (services/intake/http.py routes it)."""


def new_referral_id() -> str:
    return f"ref_{secrets.token_hex(8)}"


def event_id(keys: IntakeKeys, kind: str, *identity: str) -> str:
    """The id of one of intake's events, which is also its `Nats-Msg-Id`: a keyed hash (the matching key's HMAC,
    under a label no normalised name can equal) of what identifies the decision, so no one outside intake can
    predict it (an agency knows its referral ids and its own message ids, and could otherwise publish first under
    an id intake will use), and the same id whenever the same decision is made again (a dead letter replayed)."""
    return f"{kind}-{keys.matcher.match_key('reroute event id', kind, *identity)[:32]}"


@dataclass(frozen=True)
class Submission:
    """One referral an agency submitted, updated or withdrew, whichever door it came through."""

    agency_id: str
    data: bytes
    key: str  # identity of this submission: the NATS message key, or the HTTP request's id
    kind: Kind
    span: trace.Span
    cloudevent: str | None = None
    delivery: Delivery | None = None
    """The NATS message it came in (None through the HTTP door)."""


@dataclass(frozen=True)
class Decision:
    """What intake decided for one submission."""

    outcome: Outcome
    agency_referral_id: str | None
    referral_id: str | None = None
    revision: int = 0
    errors: list[FieldError] = field(default_factory=list)
    withdrawn: ReferralWithdrawn | None = None
    """What the agency is told of a withdrawal (outcomes withdrawn and already_withdrawn)."""


def handle_submissions(
    conn: Connection, batch: list[Delivery], now: datetime, *, subjects: Subjects, keys: IntakeKeys, max_body_bytes: int,
    status_base: str | None = None, tracer: trace.Tracer | None = None,
) -> list[Outgoing]:
    """The NATS door: each message on referrals.submitted/updated/withdraw.<agency_id> is one submission; one over
    `max_body_bytes` (REROUTE_INTAKE_MAX_BODY_BYTES, the HTTP door's limit too) is rejected unread."""
    submissions = [
        Submission(subjects.agency_of(d.subject), d.data, d.key, _kind(subjects, d.subject), d.span,
                   _cloudevent_headers(d.headers), d)
        for d in batch
    ]
    return decide_submissions(conn, submissions, now, subjects=subjects, keys=keys, max_body_bytes=max_body_bytes,
                              status_base=status_base, tracer=tracer)[1]


def decide_submissions(
    conn: Connection, submissions: list[Submission], now: datetime, *, subjects: Subjects, keys: IntakeKeys,
    max_body_bytes: int | None = None, status_base: str | None = None, tracer: trace.Tracer | None = None,
) -> tuple[list[Decision], list[Outgoing]]:
    """Accept or reject each submission in order; a repeat of (agency, agency_referral_id) is the same referral. An
    answer of the NATS server's that came in as a submission gets no decision (`drop_if_server_reply`).
    `max_body_bytes`: refuse larger bodies (the HTTP door refuses them before they get here, with 413).
    `status_base`: where the HTTP API serves a referral's status (its public URL, or '' for paths); None: no API.
    `tracer`: for the span an update or a repeat gets in the referral's own trace."""
    tracer = tracer or trace.get_tracer(__name__)
    checked = [(s, _check(s, max_body_bytes)) for s in submissions]
    # the NATS server's own answer, aimed at a submission subject by another client: dropped unread, never rejected
    checked = [(s, r) for s, r in checked
               if not (isinstance(r, list) and s.delivery is not None and drop_if_server_reply(s.delivery))]
    valid = [(s, r) for s, r in checked if isinstance(r, Referral | Withdrawal)]
    people = {id(r): match_keys(keys.matcher, r) for _, r in valid if isinstance(r, Referral)}  # once per referral
    store = ReferralStore(conn, keys)
    store.load({(s.agency_id, r.agency_referral_id) for s, r in valid}, {k for ks in people.values() for k in ks})
    decisions: list[Decision] = []
    out: list[Outgoing] = []
    for submission, result in checked:
        decision, events = _decide(store, submission, result, now=now, subjects=subjects, keys=keys,
                                   status_base=status_base, tracer=tracer, person_keys=people.get(id(result), []))
        decisions.append(decision)
        out += events
    store.save(now=now)
    return decisions, out


def _kind(subjects: Subjects, subject: str) -> Kind:
    if subject.startswith(subjects.updated("")):
        return "updated"
    return "withdraw" if subject.startswith(subjects.withdraw("")) else "submitted"


def _check(s: Submission, max_body_bytes: int | None) -> Referral | Withdrawal | list[FieldError]:
    if not AGENCY_ID.match(s.agency_id):
        return [FieldError(field="", message=f"agency id '{s.agency_id}' in the subject is not valid")]
    if s.kind == "withdraw":
        return validate_withdrawal(s.data, max_bytes=max_body_bytes)
    return validate_referral(s.data, max_bytes=max_body_bytes)


def _decide(
    store: ReferralStore, s: Submission, result: Referral | Withdrawal | list[FieldError], *, now: datetime,
    subjects: Subjects, keys: IntakeKeys, status_base: str | None, tracer: trace.Tracer, person_keys: list[str],
) -> tuple[Decision, list[Outgoing]]:
    """`person_keys`: the referral's `match_keys`, worked out once for the batch's look-up."""
    s.span.set_attribute("agency.id", s.agency_id)
    if isinstance(result, Withdrawal):
        return _withdraw(store, s, result, now=now, subjects=subjects, keys=keys, tracer=tracer)
    stored = store.find(s.agency_id, result.agency_referral_id) if isinstance(result, Referral) else None
    if isinstance(result, Referral) and s.kind == "updated" and stored is None:
        result = [FieldError(field="agency_referral_id", message=(
            f"no referral '{result.agency_referral_id}' from {s.agency_id} to update: submit it on "
            "referrals.submitted first (or POST /v1/referrals)"))]
    if isinstance(result, Referral) and stored is not None and stored.withdrawn_at is not None:
        result = [_withdrawn_already(stored.withdrawn_at)]
    if isinstance(result, Referral):  # a repeat or an update keeps the referral date it was first received on
        result = date_problems(result, referred_at=stored.received_at if stored else now, now=now) or result
    if isinstance(result, list):
        return _reject(store, s, result, now=now, subjects=subjects, keys=keys)
    body = result.model_dump_json(exclude={"equality_monitoring"})
    outcome: Outcome
    if stored is None:
        stored = StoredReferral(new_referral_id(), s.agency_id, result.agency_referral_id, now, body, revision=0,
                                submissions=1, person_id=store.person_for(person_keys),
                                cloudevent=s.cloudevent, trace_context=traceparent(s.span))
        store.add(stored)
        event, outcome = event_id(keys, "accepted", stored.referral_id, "0"), "accepted"
    elif s.kind == "updated" and body != stored.body:
        stored.body, stored.revision, stored.changed = body, stored.revision + 1, True
        person_id = store.person_for(person_keys)
        if person_id != stored.person_id:
            store.move(stored, person_id)
        event, outcome = event_id(keys, "accepted", stored.referral_id, str(stored.revision)), "updated"
    else:  # a repeat, or an update that changes nothing: acknowledge again what we hold
        stored.submissions += 1
        stored.changed = True
        result = Referral.model_validate_json(stored.body).model_copy(
            update={"equality_monitoring": result.equality_monitoring})
        event, outcome = event_id(keys, "accepted", stored.referral_id, "repeat", s.key), "duplicate"
    if result.equality_monitoring is not None:
        store.keep_monitoring(stored.referral_id, result.equality_monitoring.model_dump(), now=now)
    s.span.set_attribute("referral.id", stored.referral_id)
    s.span.set_attribute("reroute.outcome", outcome)
    span = s.span if outcome == "accepted" else _in_referral_trace(tracer, stored, s.span, outcome)
    recorded = recorded_event(
        result, referral_id=stored.referral_id, agency_id=s.agency_id, received_at=stored.received_at,
        event_id=event_id(keys, "recorded", event), now=now, person_id=stored.person_id,
        previously_referred=previous_referrals(store.earlier_referrals(stored)),
    ).model_copy(update={"duplicate": outcome == "duplicate", "revision": stored.revision})
    accepted = ReferralAccepted(
        event_id=event, occurred_at=now, referral_id=stored.referral_id,
        agency_id=s.agency_id, agency_referral_id=stored.agency_referral_id, duplicate=outcome == "duplicate",
        revision=stored.revision, received_at=stored.received_at,
        status_url=None if status_base is None else f"{status_base}{STATUS_PATH.format(referral_id=stored.referral_id)}")
    decision = Decision(outcome, stored.agency_referral_id, stored.referral_id, stored.revision)
    # the agency is told of its own referral only; whether the child is known goes where no agency may read
    events = [outgoing(recorded, subjects.recorded(s.agency_id), span=span),
              outgoing(accepted, subjects.accepted(s.agency_id), span=span)]
    if span is not s.span:
        span.end()
    return decision, events


def _withdraw(
    store: ReferralStore, s: Submission, withdrawal: Withdrawal, *, now: datetime, subjects: Subjects, keys: IntakeKeys,
    tracer: trace.Tracer,
) -> tuple[Decision, list[Outgoing]]:
    """Record the withdrawal once (a repeat answers `already_withdrawn`, changing nothing) and tell the agency and,
    the first time, scheduling. Another agency's referral is not found, exactly as one that does not exist."""
    stored = store.find(s.agency_id, withdrawal.agency_referral_id)
    if stored is None:
        return _reject(store, s, [FieldError(field="agency_referral_id", message=(
            "no referral of yours with this agency_referral_id: nothing to withdraw"))], now=now, subjects=subjects,
            keys=keys, outcome="not_found")
    first = stored.withdrawn_at is None
    if first:
        stored.withdrawn_at, stored.withdrawal_reason, stored.withdrawal_note = now, withdrawal.reason, withdrawal.note
        stored.changed = True
    outcome: Outcome = "withdrawn" if first else "already_withdrawn"
    assert stored.withdrawn_at is not None and stored.withdrawal_reason is not None
    s.span.set_attributes({"referral.id": stored.referral_id, "reroute.outcome": outcome})
    span = _in_referral_trace(tracer, stored, s.span, outcome)
    told = ReferralWithdrawn(
        event_id=event_id(keys, "withdrawn", stored.referral_id) if first else
        event_id(keys, "withdrawn", stored.referral_id, "repeat", s.key),
        occurred_at=now, referral_id=stored.referral_id, agency_id=s.agency_id,
        agency_referral_id=stored.agency_referral_id, reason=stored.withdrawal_reason,
        withdrawn_at=stored.withdrawn_at, duplicate=not first)
    events = [outgoing(told, subjects.withdrawn(s.agency_id), span=span)]
    if first:  # scheduling closes the case: told once, beside intake.recorded, so it comes after the referral's facts
        events.insert(0, outgoing(told.model_copy(update={"event_id": event_id(keys, "recorded", told.event_id)}),
                                  subjects.recorded_withdrawal(s.agency_id), span=span))
    if span is not s.span:
        span.end()
    return Decision(outcome, stored.agency_referral_id, stored.referral_id, stored.revision, withdrawn=told), events


def _withdrawn_already(withdrawn_at: datetime) -> FieldError:
    return FieldError(field="agency_referral_id", message=(
        f"this referral was withdrawn on {london_date(withdrawn_at):%d %B %Y}: it can no longer be updated or sent "
        "again; to refer the young person again, submit a new referral with a new agency_referral_id"))


def _in_referral_trace(tracer: trace.Tracer, stored: StoredReferral, door: trace.Span, outcome: Outcome) -> trace.Span:
    """An update or a repeat continues the referral's own trace (what it causes in risk and scheduling too), linked
    to the trace it came in on; a referral accepted before intake kept its trace takes this one's."""
    context = referral_trace(stored.trace_context)
    if context is None:
        stored.trace_context, stored.changed = traceparent(door), True
        return door
    span = tracer.start_span(f"intake referral {outcome}", context=context, links=caller_links(door, besides=context),
                             attributes={"referral.id": stored.referral_id, "reroute.outcome": outcome,
                                         "reroute.revision": stored.revision})
    if door.is_recording() and span.get_span_context().trace_id != door.get_span_context().trace_id:
        door.add_link(span.get_span_context())  # and the caller's trace points to the referral's
    return span


def _reject(
    store: ReferralStore, s: Submission, errors: list[FieldError], *, now: datetime, subjects: Subjects,
    keys: IntakeKeys, outcome: Literal["rejected", "not_found"] = "rejected",
) -> tuple[Decision, list[Outgoing]]:
    """Refuse, telling the agency on referrals.rejected; `not_found` (no such referral of the agency's, as the HTTP
    door answers 404) is told there alike."""
    event = ReferralRejected(
        event_id=event_id(keys, "rejected", s.key),
        occurred_at=now,
        agency_id=s.agency_id,
        agency_referral_id=readable_agency_referral_id(s.data),
        errors=errors,
    )
    s.span.set_attribute("reroute.outcome", outcome)
    s.span.set_attribute("reroute.error_count", len(errors))
    store.reject(rejection_row(event.event_id, s.agency_id, event.agency_referral_id,
                               [e.model_dump() for e in errors], now=now))
    decision = Decision(outcome, event.agency_referral_id, errors=errors)
    return decision, [outgoing(event, subjects.rejected(s.agency_id), span=s.span)]


def recorded_event(
    referral: Referral, *, referral_id: str, agency_id: str, received_at: datetime, event_id: str, now: datetime,
    person_id: str | None = None, previously_referred: PreviousReferrals | None = None,
) -> ReferralRecorded:
    """What risk and scheduling may know: no names, birth date, contact details or free text."""
    referral_date = london_date(received_at)
    yp = referral.young_person
    age = age_on(yp.date_of_birth, referral_date)
    return ReferralRecorded(
        event_id=event_id,
        occurred_at=now,
        referral_id=referral_id,
        agency_id=agency_id,
        agency_referral_id=referral.agency_referral_id,
        person_id=person_id,
        previously_referred=previously_referred,
        person=PersonFacts(
            age_years=age, age_band=age_band(age), gender=yp.gender, borough=yp.borough, languages=yp.languages
        ),
        index_offence=referral.index_offence,
        prior_proven_offences=referral.prior_proven_offences,
        age_at_first_proven_offence=referral.age_at_first_proven_offence,
        indicators=[Indicator(code=i.code, observed_at=i.observed_at or referral_date) for i in referral.indicators],
        protective_factors=referral.protective_factors,
        unsafe_areas=referral.unsafe_areas,
        conflict_groups=referral.conflict_groups,
        preferences=referral.preferences,
        availability=referral.availability,
    )


def _cloudevent_headers(headers: dict[str, str]) -> str | None:
    ce = {k.lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    return json.dumps(ce) if ce else None
