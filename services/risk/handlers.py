"""Risk's handlers: assess accepted referrals (again after each update or rules change), raise safeguarding
alerts, and record practitioners' reviews. Every assessment is kept, with who changed it and why."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlmodel import col

from services.risk.assessment import Assessment, assess
from services.risk.review import OverrideRequest, check_override, diff, overall_floor, review_due
from services.risk.tables import AlertRecord, AssessmentRecord, RiskCase
from shared.contracts.intake import ReferralRecorded
from shared.contracts.risk import Change, Override, RiskAssessed, SafeguardingAlert
from shared.contracts.rules import RuleSet
from shared.messaging import Delivery, parse_events
from shared.outbox import Outgoing, outgoing
from shared.subjects import Subjects


@dataclass
class Case:
    """A referral's risk state as one transaction sees it."""

    facts: ReferralRecorded
    latest: RiskAssessed
    new: bool = False
    changed: bool = False
    trace_context: str | None = None
    """The referral's trace (W3C traceparent), where a risk lead's decision on it is traced."""


@dataclass
class Decided:
    """A new assessment and the alerts it raises, ready to store and publish."""

    assessed: RiskAssessed
    alerts: list[SafeguardingAlert]
    changed_by: str | None = None


def handle_recorded(
    conn: Connection, batch: list[Delivery], now: datetime, *, rules: RuleSet, subjects: Subjects
) -> list[Outgoing]:
    """Assess each new referral and re-assess each updated one; alerts go out first, never waiting for scheduling."""
    events = parse_events(ReferralRecorded, batch)
    cases = load_cases(conn, [e.referral_id for _, e in events])
    decided: list[tuple[Decided, Delivery]] = []
    for d, accepted in events:
        d.span.set_attribute("referral.id", accepted.referral_id)
        case = cases.get(accepted.referral_id)
        if case is not None and accepted.revision <= case.facts.revision:
            d.span.set_attribute("reroute.outcome", "already_assessed")
            continue
        if case is None:
            case = cases[accepted.referral_id] = Case(accepted, _placeholder(accepted), new=True)
        if case.trace_context is None:  # the trace the referral arrived in (kept from its first assessment on)
            case.trace_context = d.headers.get("traceparent")
        result = next_assessment(case, accepted, rules=rules, now=now, cause="update")
        decided.append((result, d))
        d.span.set_attribute("risk.tier", result.assessed.tier.value)
        d.span.set_attribute("reroute.outcome", "assessed" if result.assessed.number == 1 else "reassessed")
    return store(conn, cases.values(), [r for r, _ in decided], now=now, subjects=subjects,
                 spans={r.assessed.event_id: d.span for r, d in decided})


def next_assessment(case: Case, facts: ReferralRecorded, *, rules: RuleSet, now: datetime, cause: str,
                    result: Assessment | None = None) -> Decided:
    """Compute the next assessment of `case` from `facts` (or take `result`, already computed) and update the case
    in place."""
    result = result or assess(facts, rules, now=now)
    first = case.latest.number == 0  # the placeholder: a new case not yet assessed, even earlier in this batch
    number = case.latest.number + 1
    assessed = _from_result(facts, result, number=number, rules=rules, now=now)
    if not first:
        previous = case.latest
        carried = _carry_override(previous, assessed)
        assessed = (carried or assessed).model_copy(
            update={"change": change_between(previous, carried or assessed, cause=cause)}
        )
    raised = set() if first else set(case.latest.escalations)
    alerts = [
        SafeguardingAlert(
            event_id=f"alert:{facts.referral_id}:{e.rule_id}:{number}",
            occurred_at=now,
            referral_id=facts.referral_id,
            agency_id=facts.agency_id,
            rule_id=e.rule_id,
            actions=e.actions,
            deadline=e.deadline,
        )
        for e in result.escalations
        if e.rule_id not in raised
    ]
    case.facts, case.latest, case.changed = facts, assessed, True
    return Decided(assessed, alerts)


def review(case: Case, request: OverrideRequest, *, rules: RuleSet, now: datetime) -> Decided:
    """A practitioner confirms or overrides the tier; raises OverrideRefused when the rules forbid it."""
    previous = case.latest
    kind = check_override(
        computed=previous.computed_tier, current=previous.tier, floor=overall_floor(previous), request=request
    )
    number = previous.number + 1
    assessed = previous.model_copy(
        update={
            "event_id": f"assessed:{previous.referral_id}:{number}",
            "occurred_at": now,
            "number": number,
            "tier": request.tier,
            "override": Override(kind=kind, tier=request.tier, reason=request.reason, by=request.by,
                                 countersigned_by=request.countersign, at=now),
            "review_due": review_due(tier=request.tier, last_assessed_at=now, rules=rules),
        }
    )
    assessed = assessed.model_copy(update={"change": change_between(previous, assessed, cause="override")})
    case.latest, case.changed = assessed, True
    return Decided(assessed, [], changed_by=request.by)


def store(conn: Connection, cases: Iterable[Case], decided: list[Decided], *, now: datetime, subjects: Subjects,
          spans: dict[str, trace.Span] | None = None) -> list[Outgoing]:
    """Save changed cases, the assessments and alerts; return the events (alerts first) for the outbox. Each new
    assessment is serialised once, for its row, its case's `latest` and its event alike."""
    dumped = {id(r.assessed): r.assessed.model_dump_json() for r in decided}
    save_cases(conn, cases, now=now, dumped=dumped)
    out: list[Outgoing] = []
    assessments, alerts = [], []
    for result in decided:
        span = (spans or {}).get(result.assessed.event_id)
        a = result.assessed
        assessments.append({
            "event_id": a.event_id, "referral_id": a.referral_id, "number": a.number, "assessed_at": now,
            "computed_tier": a.computed_tier.value, "final_tier": a.tier.value,
            "cause": a.change.cause if a.change else "referral", "changed_by": result.changed_by,
            "rules_version": a.rules_version, "event": dumped[id(a)],
        })
        for alert in result.alerts:
            alerts.append({
                "event_id": alert.event_id, "referral_id": alert.referral_id, "agency_id": alert.agency_id,
                "rule_id": alert.rule_id, "raised_at": now, "deadline": alert.deadline, "actions": json.dumps(alert.actions),
            })
            out.append(outgoing(alert, subjects.alert(alert.agency_id), span=span))
        out.append(outgoing(a, subjects.assessed(a.agency_id), span=span, payload=dumped[id(a)]))
    if assessments:
        conn.execute(insert(AssessmentRecord), assessments)
    if alerts:
        conn.execute(insert(AlertRecord), alerts)
    return out


def load_cases(conn: Connection, referral_ids: list[str]) -> dict[str, Case]:
    """The cases, each locked until the transaction ends: every path that writes a case reads it here, so a
    re-assessment and a risk lead's decision on the same referral, on two replicas, are taken one after the other,
    the second building on the first (each would otherwise number its assessment the same, and one would fail).
    Locked in referral order, so two batches never deadlock. On SQLite the transaction holds the one writer already
    (`FOR UPDATE` is not rendered there)."""
    rows = conn.execute(
        select(col(RiskCase.facts), col(RiskCase.latest), col(RiskCase.trace_context))
        .where(col(RiskCase.referral_id).in_(referral_ids))
        .order_by(col(RiskCase.referral_id)).with_for_update()
    )
    cases = {}
    for facts, latest, trace_context in rows:
        case = Case(ReferralRecorded.model_validate_json(facts), RiskAssessed.model_validate_json(latest),
                    trace_context=trace_context)
        cases[case.facts.referral_id] = case
    return cases


def save_cases(conn: Connection, cases: Iterable[Case], *, now: datetime, dumped: dict[int, str] | None = None) -> None:
    """`dumped`: assessments serialised already, by `id()`."""
    def values(c: Case) -> dict[str, object]:
        a = c.latest
        latest = (dumped or {}).get(id(a)) or a.model_dump_json()
        return {
            "facts": c.facts.model_dump_json(), "latest": latest, "tier": a.tier.value,
            "computed_tier": a.computed_tier.value, "override": a.override.kind if a.override else None,
            "rules_version": a.rules_version, "review_due": a.review_due, "updated_at": now,
            "trace_context": c.trace_context,
        }

    changed = [c for c in cases if c.changed]
    new = [{"referral_id": c.facts.referral_id, "agency_id": c.facts.agency_id, **values(c)} for c in changed if c.new]
    old = [{"rid": c.facts.referral_id, **values(c)} for c in changed if not c.new]
    if new:
        conn.execute(insert(RiskCase), new)
    if old:
        columns: dict[str, Any] = {k: bindparam(k) for k in old[0] if k != "rid"}
        conn.execute(
            update(RiskCase).where(col(RiskCase.referral_id) == bindparam("rid")).values(**columns),
            old,
        )
    for c in changed:
        c.new = c.changed = False


def change_between(previous: RiskAssessed, new: RiskAssessed, *, cause: str) -> Change:
    d = diff(previous, new)
    rank = new.tier.rank - previous.tier.rank
    direction = "up" if rank > 0 else "down" if rank < 0 else "same"
    tiers = f"{previous.tier.value} → {new.tier.value}" if rank else f"{new.tier.value} (unchanged)"
    summary = f"{tiers} by {new.override.kind} of {new.override.by}" if cause == "override" and new.override else (
        d.summary())
    return Change(previous_tier=previous.tier, direction=direction, cause=cause, rules_added=d.rules_added,
                  rules_removed=d.rules_removed, summary=summary)


def _from_result(facts: ReferralRecorded, result: Assessment, *, number: int, rules: RuleSet,
                 now: datetime) -> RiskAssessed:
    return RiskAssessed(
        event_id=f"assessed:{facts.referral_id}:{number}",
        occurred_at=now,
        referral_id=facts.referral_id,
        agency_id=facts.agency_id,
        tier=result.tier,
        computed_tier=result.tier,
        number=number,
        likelihood=result.likelihood,
        harm=result.harm,
        wellbeing=result.wellbeing,
        reasons=result.reasons,
        needs=result.needs,
        focus=result.focus,
        escalations=[e.rule_id for e in result.escalations],
        flags=result.flags,
        rules_version=result.rules_version,
        review_due=review_due(tier=result.tier, last_assessed_at=now, rules=rules),
    )


def _carry_override(previous: RiskAssessed, fresh: RiskAssessed) -> RiskAssessed | None:
    """Keep a practitioner's earlier decision while the computed tier is unchanged and no new floor forbids it."""
    o, floor = previous.override, overall_floor(fresh)
    if o is None or fresh.computed_tier != previous.computed_tier or (floor is not None and o.tier.rank < floor.rank):
        return None
    return fresh.model_copy(update={"tier": o.tier, "override": o})


def _placeholder(facts: ReferralRecorded) -> RiskAssessed:
    """Stands in for 'no assessment yet' on a new case; never stored or published. Every field with a default factory
    is given: for one left out, pydantic 2.14's `model_construct` inspects the factory's signature each time (parsing
    `list`'s text signature), which was a fifth of risk's work per referral."""
    return RiskAssessed.model_construct(referral_id=facts.referral_id, number=0, escalations=[], flags=[])
