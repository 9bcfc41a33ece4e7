"""Risk's request-reply endpoints: each takes its typed request (shared/contracts/risk_rpc.py) and what it needs,
and returns its typed reply or raises a `ServiceError`. `app.create_app` wires them to the host."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opentelemetry import trace
from sqlalchemy import Connection, select
from sqlmodel import col

from services.risk import pending
from services.risk.assessment import assess
from services.risk.handlers import Case, load_cases, next_assessment, review, store
from services.risk.review import (
    AskedLowering,
    OverrideRefused,
    check_override,
    diff,
    overall_floor,
    overdue,
    rescore_summary,
    said_at,
    unseen_case,
    unseen_lowering,
)
from services.risk.review import OverrideRequest as Decision
from services.risk.tables import AlertRecord, AssessmentRecord, RiskCase
from shared import alerts
from shared.contracts.codes import Tier
from shared.contracts.risk import RiskAssessed
from shared.contracts.risk_rpc import (
    Assessment,
    AssessmentRequest,
    AuditRows,
    AuditTier,
    CountersignRequest,
    OverrideRequest,
    PendingOverride,
    PendingOverrides,
    RefuseOverrideRequest,
    Rescored,
    RescoreRequest,
    ReviewDue,
    Reviewed,
    ReviewsDue,
    ReviewsRequest,
    RulesListing,
    SeenLowering,
    TierChange,
)
from shared.contracts.rpc import Empty, NotFound, Refused, ServiceError
from shared.contracts.rules import RulesError, RuleSet, load_rules
from shared.contracts.safeguarding_rpc import Acknowledged, AcknowledgeRequest, AlertsRequest, SafeguardingAlerts
from shared.contracts.scheduling_rpc import CLOSED_BEFORE, ClosedBeforeRequest
from shared.db import lock_for_update
from shared.outbox import Outgoing
from shared.service import ServiceHost
from shared.telemetry import referral_trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Risk:
    """What risk's endpoints work with."""

    host: ServiceHost
    rules: RuleSet
    pending_for: timedelta = timedelta(hours=72)
    """How long a lowering waits for its countersignature before it lapses."""


async def assessment(request: AssessmentRequest, risk: Risk) -> Assessment:
    def read() -> tuple[list[AssessmentRecord], PendingOverride | None]:
        with risk.host.engine.connect() as conn:
            return [AssessmentRecord.model_validate(r._mapping) for r in conn.execute(
                select(AssessmentRecord).where(col(AssessmentRecord.referral_id) == request.referral_id)
                .order_by(col(AssessmentRecord.number)))], pending.in_force(conn, request.referral_id, now=_now())

    rows, waiting = await risk.host.database.run(read)
    if not rows:
        raise NotFound(f"no assessment of {request.referral_id}")
    events = [RiskAssessed.model_validate_json(r.event) for r in rows]
    history = [
        TierChange(number=r.number, at=r.assessed_at, computed_tier=Tier(r.computed_tier), tier=Tier(r.final_tier), cause=r.cause,
                   by=r.changed_by, rules_version=r.rules_version,
                   summary=event.change.summary if event.change else "first assessment",
                   reason=event.override.reason if event.override and r.cause == "override" else None,
                   countersigned_by=(event.override.countersigned_by if event.override and r.cause == "override"
                                     else None))
        for r, event in zip(rows, events, strict=True)
    ]
    return Assessment(assessment=events[-1], history=history, pending=waiting)


async def override(request: OverrideRequest, risk: Risk) -> Reviewed:
    """Confirm or raise a tier at once; a lowering is only asked for: it waits for a second risk lead."""
    def decide_review(conn: Connection, now: datetime) -> tuple[Reviewed, list[Outgoing]]:
        case = _locked_case(conn, request.referral_id)
        with _traced(risk, "risk override", case, tier=request.tier) as span:
            decision = Decision(tier=request.tier, reason=request.reason.strip(), by=request.by.strip())
            previous = case.latest
            try:
                kind = check_override(computed=previous.computed_tier, current=previous.tier,
                                      floor=overall_floor(previous), request=decision, asking=True)
            except OverrideRefused as exc:
                raise Refused(f"override refused: {exc}") from None
            span.set_attribute("risk.override.kind", kind)
            if kind == "down":
                asked = pending.ask(conn, referral_id=request.referral_id, tier=request.tier, reason=decision.reason,
                                    by=decision.by, now=now, lasts=risk.pending_for)
                log.info("risk: a lowering of %s asked for, waiting for a countersignature", request.referral_id)
                span.set_attribute("reroute.outcome", "countersignature_asked")
                return Reviewed(assessment=previous, pending=asked), []
            pending.decide_all(conn, request.referral_id, status="replaced", by=decision.by,
                               reason=f"{kind} decided meanwhile", now=now)
            return _apply(conn, case, decision, risk=risk, now=now, span=span)

    return await risk.host.transact(decide_review)


async def countersign(request: CountersignRequest, risk: Risk) -> Reviewed:
    """A second risk lead countersigns a pending lowering: it takes effect, checked again against the case now."""
    def decide(conn: Connection, now: datetime) -> tuple[Reviewed, list[Outgoing]]:
        case = _locked_case(conn, request.referral_id)
        with _traced(risk, "risk countersign", case) as span:
            row_id, asked = _waiting(conn, case, request.lowering, now=now, doing="countersign")
            span.set_attribute("risk.tier", asked.tier.value)
            decision = Decision(tier=asked.tier, reason=asked.reason, by=asked.by, countersign=request.by.strip())
            applied = _apply(conn, case, decision, risk=risk, now=now, span=span)
            pending.decide(conn, row_id, status="countersigned", by=decision.countersign or "", reason=None, now=now)
            return applied

    return await risk.host.transact(decide)


async def refuse_override(request: RefuseOverrideRequest, risk: Risk) -> Reviewed:
    """A pending lowering is refused (or withdrawn by the lead who asked): the tier in force stays."""
    def decide(conn: Connection, now: datetime) -> tuple[Reviewed, list[Outgoing]]:
        case = _locked_case(conn, request.referral_id)
        with _traced(risk, "risk refuse override", case) as span:
            row_id, _ = _waiting(conn, case, request.lowering, now=now, doing="refuse")
            pending.decide(conn, row_id, status="refused", by=request.by.strip(), reason=request.reason.strip(),
                           now=now)
            span.set_attribute("reroute.outcome", "override_refused")
            return Reviewed(assessment=case.latest), []

    return await risk.host.transact(decide)


async def pending_overrides(_: Empty, risk: Risk) -> PendingOverrides:
    def read() -> PendingOverrides:
        with risk.host.engine.connect() as conn:
            return PendingOverrides(lowerings=pending.waiting(conn, now=_now()))

    return await risk.host.database.run(read)


def _now() -> datetime:
    return datetime.now(UTC)


def _locked_case(conn: Connection, referral_id: str) -> Case:
    """The case, read once this transaction holds its tier's lock: a risk lead's decisions on one referral's tier
    (asking, countersigning, refusing, withdrawing) are taken one at a time across replicas, each seeing the last."""
    lock_for_update(conn, f"risk-tier:{referral_id}")
    cases = load_cases(conn, [referral_id])
    if referral_id not in cases:
        raise NotFound(f"no assessment of {referral_id} to review")
    return cases[referral_id]


def _waiting(conn: Connection, case: Case, seen: SeenLowering | None, *, now: datetime,
             doing: str) -> tuple[int, PendingOverride]:
    """The pending lowering, if it is the one the risk lead saw (and names), read with the case as it stands, and has
    not lapsed."""
    referral_id = case.facts.referral_id
    if seen is None:  # an older console or CLI: deciding on whatever is pending now could be deciding unseen
        raise Refused(f"name the lowering you {doing}: its tier and when it was asked, as the case shows them; this "
                      "request names none (an older console or CLI: update it, then open the case again)")
    found = pending.latest(conn, referral_id)
    now_pending = None if found is None else AskedLowering(tier=found[1].tier, by=found[1].by,
                                                            requested_at=found[1].requested_at)
    problem = unseen_lowering(tier=seen.tier, requested_at=seen.requested_at, pending=now_pending,
                              seen=pending.asked(conn, referral_id, seen.requested_at))
    if found is None:
        raise NotFound(f"no lowering of {referral_id}'s tier is waiting for a countersignature: {problem}")
    if problem is not None:
        log.info("risk: a %s of %s named a lowering no longer pending; refused", doing, referral_id)
        raise Refused(problem)
    if (stale := unseen_case(seen=seen.assessment_number, latest=case.latest.number, at=case.latest.occurred_at)):
        log.info("risk: a %s of %s named an assessment not the latest; refused", doing, referral_id)
        raise Refused(stale)
    if now >= found[1].expires_at:
        raise Refused(f"the lowering of {referral_id}'s tier asked by {found[1].by} lapsed unsigned at "
                      f"{said_at(found[1].expires_at)}; a risk lead may ask again")
    return found


def _apply(conn: Connection, case: Case, decision: Decision, *, risk: Risk, now: datetime, span: trace.Span,
           ) -> tuple[Reviewed, list[Outgoing]]:
    """The decision taking effect: a new assessment, stored with its event for the outbox (in `span`'s trace)."""
    try:
        result = review(case, decision, rules=risk.rules, now=now)
    except OverrideRefused as exc:
        raise Refused(f"override refused: {exc}") from None
    span.set_attributes({"risk.tier": result.assessed.tier.value, "reroute.outcome": "tier_decided"})
    return Reviewed(assessment=result.assessed), store(conn, [case], [result], now=now, subjects=risk.host.subjects,
                                                       spans={result.assessed.event_id: span})


@contextmanager
def _traced(risk: Risk, name: str, case: Case, *, tier: Tier | None = None) -> Iterator[trace.Span]:
    """A risk lead's decision as a span in the referral's own trace (scheduling's re-plan follows it there); a
    refusal is an outcome, not a fault."""
    span = risk.host.tracer.start_span(name, context=referral_trace(case.trace_context), kind=trace.SpanKind.SERVER,
                                       attributes={"referral.id": case.facts.referral_id})
    if tier is not None:
        span.set_attribute("risk.tier", tier.value)
    try:
        yield span
    except ServiceError as exc:
        span.set_attribute("reroute.outcome", exc.code.value)
        raise
    except Exception as exc:
        span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        span.end()


async def reviews_due(request: ReviewsRequest, risk: Risk) -> ReviewsDue:
    """Tiers due for review, but not of referrals scheduling has closed: a closed case has no one to review."""
    now = datetime.now().astimezone()
    until = now + timedelta(days=request.within_days)
    closed = set((await risk.host.ask(CLOSED_BEFORE, ClosedBeforeRequest(days=0), timeout=30)).referral_ids)

    def read() -> ReviewsDue:
        with risk.host.engine.connect() as conn:
            rows = conn.execute(
                select(col(RiskCase.referral_id), col(RiskCase.agency_id), col(RiskCase.tier), col(RiskCase.review_due))
                .where(col(RiskCase.review_due) <= until).order_by(col(RiskCase.review_due))).all()
        return ReviewsDue(reviews=[ReviewDue(referral_id=r.referral_id, agency_id=r.agency_id, tier=r.tier,
                                             due=r.review_due, overdue=overdue(r.review_due, now)) for r in rows
                                   if r.referral_id not in closed])

    return await risk.host.database.run(read)


async def rules_listing(_: Empty, risk: Risk) -> RulesListing:
    rules = risk.rules
    return RulesListing(id=rules.id, version=rules.version, indicators=rules.indicator_meanings(),
                        protective_factors=rules.protective_meanings())


def _candidate(request: RescoreRequest, loaded: RuleSet) -> RuleSet:
    """The rules to re-score with: the loaded ones, or a candidate file to preview."""
    if request.rules_yaml is None:
        return loaded
    if not request.dry_run:
        raise Refused("a candidate rules file can only be previewed (dry run); deploy it to apply it")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(request.rules_name).name
        path.write_text(request.rules_yaml, encoding="utf-8")
        try:
            return load_rules(path)
        except RulesError as exc:
            raise Refused(f"the candidate rules are refused:\n{exc}") from None


async def rescore(request: RescoreRequest, risk: Risk) -> Rescored:
    candidate = _candidate(request, risk.rules)

    def rescore_all(conn: Connection, now: datetime) -> tuple[Rescored, list[Outgoing]]:
        ids = list(conn.execute(select(col(RiskCase.referral_id))).scalars())
        cases = load_cases(conn, ids)
        changes, decided = [], []
        for rid, case in cases.items():
            fresh = assess(case.facts, candidate, now=now)
            preview = case.latest.model_copy(update={"computed_tier": fresh.tier, "tier": fresh.tier,
                                                     "likelihood": fresh.likelihood, "harm": fresh.harm,
                                                     "wellbeing": fresh.wellbeing, "reasons": fresh.reasons})
            change = diff(case.latest, preview)
            changes.append((rid, change))
            if not request.dry_run and (case.latest.rules_version != candidate.version
                                        or change.direction != "same" or change.rules_added or change.rules_removed):
                decided.append(next_assessment(case, case.facts, rules=candidate, now=now, cause="rescore", result=fresh))
        summary = rescore_summary(changes)
        spans = {d.assessed.event_id: risk.host.tracer.start_span(  # each re-assessment in its referral's trace
            "risk rescore", context=referral_trace(cases[d.assessed.referral_id].trace_context),
            attributes={"referral.id": d.assessed.referral_id, "risk.tier": d.assessed.tier.value,
                        "risk.rules_version": candidate.version}) for d in decided}
        out = store(conn, cases.values(), decided, now=now, subjects=risk.host.subjects, spans=spans) if decided else []
        for span in spans.values():
            span.end()
        return Rescored(rules_version=candidate.version, dry_run=request.dry_run, lines=summary.lines(),
                        total=summary.total, up=summary.up, down=summary.down, republished=len(decided)), out

    return await risk.host.transact(rescore_all)


async def audit_rows(_: Empty, risk: Risk) -> AuditRows:
    def read() -> AuditRows:
        with risk.host.engine.connect() as conn:
            rows = conn.execute(select(col(RiskCase.referral_id), col(RiskCase.tier), col(RiskCase.override))).all()
        return AuditRows(rows=[AuditTier.model_validate({"referral_id": r[0], "tier": r[1], "override": r[2]}) for r in rows])

    return await risk.host.database.run(read)


async def alerts_list(request: AlertsRequest, risk: Risk) -> SafeguardingAlerts:
    def read() -> SafeguardingAlerts:
        with risk.host.engine.connect() as conn:
            return SafeguardingAlerts(service="risk", alerts=alerts.listing(
                conn, AlertRecord, service="risk", now=_now(), acknowledged_days=request.acknowledged_days,
                limit=request.limit))

    return await risk.host.database.run(read)


async def alerts_ack(request: AcknowledgeRequest, risk: Risk) -> Acknowledged:
    def record(conn: Connection, now: datetime) -> tuple[Acknowledged, list[Outgoing]]:
        return Acknowledged(alert=alerts.acknowledge(conn, AlertRecord, request.alert_id, service="risk",
                                                     by=request.by, note=request.note, now=now)), []

    acknowledged = await risk.host.transact(record)
    log.info("risk: safeguarding alert %s acknowledged by %s", request.alert_id, acknowledged.alert.acknowledged_by)
    return acknowledged
