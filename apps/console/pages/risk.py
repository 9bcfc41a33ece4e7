"""Risk reviews, for risk leads: the lowerings of a tier waiting for a second lead's countersignature, the tiers due
for review, one referral's assessment with every reason and the history of its tier, where a lead confirms, raises or
lowers it (a lowering waits for a second lead, who sees the case before countersigning or refusing it), and the
fairness audit. The same contracts as `reroute override`, `reroute countersign`, `reroute reviews due` and
`reroute audit`; risk records the person logged in. Ids only: no child's name is on these pages."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from apps.console.areas import area
from apps.console.auth import Me, MySession
from apps.console.client import Person, ServicesClient
from apps.console.rendering import render
from apps.console.state import state_of
from shared.contracts import intake_rpc, risk_rpc
from shared.contracts.codes import Tier
from shared.contracts.rpc import Empty, ErrorCode, Role, ServiceError, readable

T = TypeVar("T")
AREA = area("risk", "Risk reviews", {Role.RISK_LEAD})
REVIEW_DAYS = 14
AUDIT_TIMEOUT = 60.0
"""The audit reads every assessment (as `reroute audit` does, with the same allowance)."""


def case_href(referral_id: str) -> str:
    return f"{AREA.href}/referral?referral_id={quote(referral_id, safe='')}"


async def _or_problem(coroutine: Awaitable[T], problems: list[str], what: str) -> T | None:
    """The reply, or None with the reason in `problems` (the page shows the rest)."""
    try:
        return await coroutine
    except ServiceError as exc:
        problems.append(f"{what}: {exc.message}")
        return None


def _number(given: str, *, default: int, least: int, most: int, what: str, problems: list[str]) -> int:
    """A number from the query string, or `default` with what was wrong in `problems`."""
    if not given.strip():
        return default
    if len(given) <= 6 and given.strip().isdigit() and least <= int(given) <= most:
        return int(given)
    problems.append(f"{what} must be a whole number from {least} to {most}; showing {default}.")
    return default


@AREA.router.get("")
async def page(request: Request, me: Me, session: MySession,
               within: str = "") -> Response:
    client, problems = state_of(request).client, list[str]()
    days = _number(within, default=REVIEW_DAYS, least=0, most=365, what="Days ahead", problems=problems)
    waiting = await _or_problem(client.ask(me, risk_rpc.PENDING_OVERRIDES, Empty()), problems,
                                "Lowerings waiting for a countersignature not listed")
    due = await _or_problem(client.ask(me, risk_rpc.REVIEWS_DUE, risk_rpc.ReviewsRequest(within_days=days),
                                       timeout=30), problems, "Reviews due not listed")
    return render(request, "risk/page.html", session=session, area=AREA, problems=problems, within=days,
                  waiting=waiting.lowerings if waiting else None, due=due.reviews if due else None, case_href=case_href)


@AREA.router.get("/referral")
async def case(request: Request, me: Me, session: MySession,
               referral_id: str = "") -> Response:
    """One referral's assessment, its history and any lowering waiting for a countersignature, with the forms."""
    referral_id = referral_id.strip()
    found, problem, status = None, None, 200
    if len(referral_id) > 100:
        problem, status = "No assessment: a referral id has at most 100 characters.", 400
    elif referral_id:
        try:
            found = await state_of(request).client.ask(me, risk_rpc.ASSESSMENT,
                                                       risk_rpc.AssessmentRequest(referral_id=referral_id))
        except ServiceError as exc:
            missing = exc.code == ErrorCode.NOT_FOUND
            problem = (f"No assessment of {referral_id}: check the referral id (it starts ref_)." if missing
                       else f"Cannot show {referral_id}: {exc.message}.")
            status = 404 if missing else 503
    return render(request, "risk/case.html", session=session, area=AREA, referral_id=referral_id, found=found,
                  problem=problem, tiers=list(Tier), status_code=status)


UNSEEN = "Nothing recorded: the page did not say which lowering and assessment you saw; open the case again."


def _seen(tier: str, requested_at: str, assessment_number: str) -> risk_rpc.SeenLowering | None:
    """The lowering and the assessment the page showed (its hidden fields); None when they do not say (a page from an
    older console)."""
    if not assessment_number.strip():
        return None
    try:
        return risk_rpc.SeenLowering.model_validate({"tier": tier, "requested_at": requested_at,
                                                     "assessment_number": assessment_number})
    except ValidationError:
        return None


async def _decide(client: ServicesClient, me: Person, referral_id: str, action: str, *, tier: str = "",
                  reason: str = "", seen: risk_rpc.SeenLowering | None = None) -> str:
    """Ask risk for the decision in `me`'s name; what happened, in a sentence."""
    try:
        if action == "override":
            reviewed = await client.ask(me, risk_rpc.OVERRIDE, risk_rpc.OverrideRequest(
                referral_id=referral_id, tier=Tier(tier), reason=reason))
        elif action == "countersign":
            reviewed = await client.ask(me, risk_rpc.COUNTERSIGN, risk_rpc.CountersignRequest(
                referral_id=referral_id, lowering=seen))
        else:
            reviewed = await client.ask(me, risk_rpc.REFUSE_OVERRIDE, risk_rpc.RefuseOverrideRequest(
                referral_id=referral_id, reason=reason, lowering=seen))
    except ValidationError as exc:
        return f"Nothing recorded: {readable(exc)}."
    except ServiceError as exc:
        return f"Nothing recorded: {exc.message}."
    a = reviewed.assessment
    if reviewed.pending is not None:
        p = reviewed.pending
        return (f"Lowering {referral_id} to {p.tier} is asked for by {p.by}: it waits for a second risk lead's "
                f"countersignature; until then tier {a.tier} stays in force.")
    if action == "refuse":
        return f"The lowering is refused: {referral_id} stays at tier {a.tier}."
    signed = f", countersigned by {a.override.countersigned_by}" if a.override and a.override.countersigned_by else ""
    return f"{referral_id} is now at tier {a.tier}{signed}; scheduling is told."


def _back(referral_id: str) -> Response:
    return RedirectResponse(case_href(referral_id), status_code=303)


def _too_long(referral_id: str, reason: str) -> str | None:
    if not referral_id.strip() or len(referral_id) > 100:
        return "Nothing recorded: give a referral id (at most 100 characters)."
    if len(reason) > 2000:
        return "Nothing recorded: the reason may have at most 2000 characters."
    return None


@AREA.router.post("/referral/override")
async def override(request: Request, me: Me, session: MySession, referral_id: Annotated[str, Form()] = "",
                   tier: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> Response:
    """Confirm, raise or ask to lower the tier (`reroute override`)."""
    said = _too_long(referral_id, reason)
    if said is None and tier not in set(Tier):
        said = f"Nothing recorded: choose a tier ({', '.join(Tier)})."
    session.notices.append(said or await _decide(state_of(request).client, me, referral_id.strip(), "override",
                                                 tier=tier, reason=reason.strip()))
    return _back(referral_id.strip())


@AREA.router.post("/referral/countersign")
async def countersign(request: Request, me: Me, session: MySession, referral_id: Annotated[str, Form()] = "",
                      tier: Annotated[str, Form()] = "", requested_at: Annotated[str, Form()] = "",
                      assessment_number: Annotated[str, Form()] = "") -> Response:
    """Countersign the lowering the page showed (`reroute countersign`): risk refuses one's own, any other, and any
    once the case was re-assessed since."""
    seen = _seen(tier, requested_at, assessment_number)
    said = _too_long(referral_id, "") or (None if seen else UNSEEN)
    session.notices.append(said or await _decide(state_of(request).client, me, referral_id.strip(), "countersign",
                                                 seen=seen))
    return _back(referral_id.strip())


@AREA.router.post("/referral/refuse")
async def refuse(request: Request, me: Me, session: MySession, referral_id: Annotated[str, Form()] = "",
                 reason: Annotated[str, Form()] = "", tier: Annotated[str, Form()] = "",
                 requested_at: Annotated[str, Form()] = "", assessment_number: Annotated[str, Form()] = "") -> Response:
    """Refuse the lowering the page showed, or withdraw one's own (`reroute countersign --refuse`), with a reason."""
    seen = _seen(tier, requested_at, assessment_number)
    said = _too_long(referral_id, reason) or (None if seen else UNSEEN)
    if said is None and not reason.strip():
        said = "Nothing recorded: say why you refuse the lowering."
    session.notices.append(said or await _decide(state_of(request).client, me, referral_id.strip(), "refuse",
                                                 reason=reason.strip(), seen=seen))
    return _back(referral_id.strip())


@AREA.router.get("/audit")
async def audit(request: Request, me: Me, session: MySession,
                min_group: str = "") -> Response:
    """The fairness audit, as `reroute audit` prints it (aggregates only, small groups hidden)."""
    problems: list[str] = []
    smallest = _number(min_group, default=10, least=1, most=10_000, what="The smallest group", problems=problems)
    report = await _or_problem(state_of(request).client.ask(
        me, intake_rpc.AUDIT, intake_rpc.AuditRequest(min_group_size=smallest), timeout=AUDIT_TIMEOUT),
        problems, "No audit")
    return render(request, "risk/audit.html", session=session, area=AREA, problems=problems, report=report,
                  min_group=smallest)
