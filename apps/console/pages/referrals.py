"""A referral's page, for schedulers: where it stands at intake, risk's tier with every reason on each axis, its needs
and focus, escalations and the history of its assessments, scheduling's status with its sessions, and a link to its
trace; then who could take it (`recommend`: the top three with their scores, and why every other mentor is out) and
assigning one with a recorded reason (refused with the constraint named). The same contracts as `reroute status`,
`assessment`, `recommend` and `assign`. Ids only: no child's name on these pages.

Its trace (`/<id>/trace`) is this referral's waterfall across intake, risk and scheduling, under this area's guard:
whoever may open the referral's page may open its trace, because the trace shows less than the page (span names,
services, timings, errors and outcome codes; ids, never a name or free text: apps/console/pages/traces.py says
why). The traces pages themselves (every trace, the slowest, those with errors, one by id) stay operators'."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from apps.console.areas import area
from apps.console.auth import Me, MySession
from apps.console.client import Person, ServicesClient
from apps.console.pages.traces import referral_waterfall
from apps.console.rendering import LONDON, local, render
from apps.console.state import state_of
from shared.contracts import intake_rpc, risk_rpc
from shared.contracts import scheduling_rpc as sched
from shared.contracts.deadletters import Held, HeldRequest
from shared.contracts.rpc import HELD, Empty, ErrorCode, Role, ServiceError, unless_not_found
from shared.deadletters import REFERRAL_ID

AREA = area("referrals", "Referrals", {Role.SCHEDULER})
REASON_MAX = 2000


@dataclass
class Referral:
    """Everything the page shows, each part from the service that owns it (None: it has none yet)."""

    referral_id: str
    intake: intake_rpc.IntakeStatus | None
    risk: risk_rpc.Assessment | None
    scheduling: sched.SchedulingStatus | None
    held: list[Held]
    missing: list[str]
    """Services that did not answer, and why."""


async def referral(client: ServicesClient, person: Person, referral_id: str) -> Referral:
    """Intake's, risk's and scheduling's answers about one referral, asked at once."""
    found = Referral(referral_id, None, None, None, [], [])

    async def part(name: str, question: Awaitable[Any]) -> Any:
        try:
            return await unless_not_found(question)
        except ServiceError as exc:
            found.missing.append(f"{name}: {exc.message}")
            return None

    asked = HeldRequest(referral_ids=[referral_id])
    found.intake, found.risk, found.scheduling, *held = await asyncio.gather(
        part("intake", client.ask(person, intake_rpc.STATUS, intake_rpc.StatusRequest(referral_id=referral_id))),
        part("risk", client.ask(person, risk_rpc.ASSESSMENT, risk_rpc.AssessmentRequest(referral_id=referral_id))),
        part("scheduling", client.ask(person, sched.STATUS, sched.ReferralRequest(referral_id=referral_id))),
        *(part(f"{s} (held messages)", client.ask(person, HELD, asked, service=s)) for s in HELD.services
          if s != "intake"))
    found.held = [h for h in held if h is not None]
    return found


def _known(referral_id: str) -> bool:
    return REFERRAL_ID.fullmatch(referral_id) is not None


def _no_such(request: Request, session: Any, said: str, query: str = "") -> Response:
    return render(request, "referrals/find.html", session=session, area=AREA, problem=said, query=query,
                  status_code=404)


@AREA.router.get("")
async def find(request: Request, me: Me, session: MySession, q: str = "") -> Response:
    """Find a referral by our id or the agency's own reference (as `reroute status` does)."""
    query = q.strip()
    if not query:
        return render(request, "referrals/find.html", session=session, area=AREA, query="")
    if _known(query):
        return RedirectResponse(f"{AREA.href}/{query}", status_code=303)
    if len(query) > 100:
        return _no_such(request, session, "No referral has a reference that long (at most 100 characters).")
    try:
        theirs = await state_of(request).client.ask(me, intake_rpc.STATUS,
                                                    intake_rpc.StatusRequest(agency_referral_id=query))
    except ServiceError as exc:
        return _no_such(request, session, f"No referral found for “{query}”: {exc.message}.", query)
    return RedirectResponse(f"{AREA.href}/{theirs.referral_id}", status_code=303)


@AREA.router.get("/{referral_id}")
async def page(request: Request, me: Me, session: MySession, referral_id: str) -> Response:
    if not _known(referral_id):
        return _no_such(request, session, "That is not a referral id: ours look like ref_ and 16 letters and digits "
                                          "(0–9, a–f).")
    found = await referral(state_of(request).client, me, referral_id)
    if found.intake is None and found.risk is None and found.scheduling is None and not found.missing:
        return _no_such(request, session, f"No referral {referral_id}: intake, risk and scheduling know none.")
    return render(request, "referrals/page.html", session=session, area=AREA, r=found)


async def _recommendation(request: Request, me: Me, session: MySession, referral_id: str, *,
                          problem: str | None = None, chosen: dict[str, str] | None = None,
                          status_code: int = 200) -> Response:
    client = state_of(request).client
    try:
        recommended, mentors = await asyncio.gather(
            client.ask(me, sched.RECOMMEND, sched.ReferralRequest(referral_id=referral_id)),
            client.ask(me, sched.MENTORS, Empty()))
    except ServiceError as exc:
        status = 404 if exc.code == ErrorCode.NOT_FOUND else 503 if exc.code == ErrorCode.UNAVAILABLE else 409
        return render(request, "referrals/recommend.html", session=session, area=AREA, referral_id=referral_id,
                      rec=None, names={}, problem=f"No recommendation for {referral_id}: {exc.message}.",
                      chosen=chosen or {}, status_code=status)
    names = {m.id: m.name for m in mentors.mentors}
    return render(request, "referrals/recommend.html", session=session, area=AREA, referral_id=referral_id,
                  rec=recommended, names=names, problem=problem, chosen=chosen or {}, status_code=status_code)


@AREA.router.get("/{referral_id}/recommend")
async def recommend(request: Request, me: Me, session: MySession, referral_id: str) -> Response:
    """Who could take it: the top three with their scores, and why each other mentor is out; assign from here."""
    if not _known(referral_id):
        return _no_such(request, session, "That is not a referral id.")
    return await _recommendation(request, me, session, referral_id)


@AREA.router.get("/{referral_id}/trace")
async def trace(request: Request, me: Me, session: MySession, referral_id: str) -> Response:
    """This referral's traces as waterfalls (its own, and the callers' linked to it), from the span store."""
    if not _known(referral_id):
        return _no_such(request, session, "That is not a referral id.")
    return await referral_waterfall(request, me, session, referral_id, shown_in=AREA)


def _first_start(text: str) -> datetime | None:
    """A first session's start as typed in a datetime-local field (Europe/London); None when left empty."""
    if not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=LONDON)


@AREA.router.post("/{referral_id}/assign")
async def assign(request: Request, me: Me, session: MySession, referral_id: str,
                 mentor_id: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                 start: Annotated[str, Form()] = "") -> Response:
    """Book the chosen mentor in the name of the person logged in, with their reason; refused with the constraint."""
    if not _known(referral_id):
        return _no_such(request, session, "That is not a referral id.")
    mentor_id, reason = mentor_id.strip(), reason.strip()
    chosen = {"mentor_id": mentor_id, "reason": reason, "start": start}

    def again(problem: str, status: int) -> Awaitable[Response]:
        return _recommendation(request, me, session, referral_id, problem=problem, chosen=chosen,
                               status_code=status)

    if not mentor_id or len(mentor_id) > 64:
        return await again("Not assigned: name the mentor (their id, at most 64 characters).", 400)
    if not reason or len(reason) > REASON_MAX:
        return await again(f"Not assigned: say why this mentor (it is recorded), in at most {REASON_MAX} "
                           "characters.", 400)
    try:
        first = _first_start(start)
    except ValueError:
        return await again("Not assigned: the first session's start is not a date and time (e.g. 2026-12-08 16:00).",
                           400)
    asked = sched.AssignRequest(referral_id=referral_id, mentor_id=mentor_id, reason=reason, by=me.person_id,
                                start=first)
    try:
        done = await state_of(request).client.ask(me, sched.ASSIGN, asked)
    except ServiceError as exc:
        status = 503 if exc.code == ErrorCode.UNAVAILABLE else 404 if exc.code == ErrorCode.NOT_FOUND else 409
        return await again(f"Not assigned: {exc.message}.", status)
    session.notices.append(f"{referral_id} assigned to {done.mentor_id} by {me.person_id}: {done.sessions} sessions, "
                           f"first {local(done.first)}.")
    return RedirectResponse(f"{AREA.href}/{referral_id}", status_code=303)
