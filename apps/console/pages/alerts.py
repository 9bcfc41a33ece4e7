"""Safeguarding alerts, for designated safeguarding leads: open ones first, the most overdue and then the soonest
due at the top, each with its rule, actions and deadline; acknowledged by the person logged in (the service that
raised it records them, from the subject it is asked on); a new alert appears on an open page without a reload and is
announced to screen readers. Ids only: no child's name is on this page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from apps.console.areas import FRAGMENT, STREAM, area
from apps.console.auth import Me, MySession
from apps.console.client import Person, ServicesClient
from apps.console.rendering import local, render
from apps.console.state import state_of
from shared.contracts.rpc import ErrorCode, Role, ServiceError
from shared.contracts.safeguarding_rpc import (
    ACKNOWLEDGE,
    ALERTS,
    AcknowledgeRequest,
    AlertsRequest,
    SafeguardingAlertView,
    ordered,
)

AREA = area("alerts", "Safeguarding alerts", {Role.DSL})
ACKNOWLEDGED_DAYS = 7
KEEP_ALIVE_SECONDS = 15.0


@dataclass(frozen=True)
class Listing:
    open: list[SafeguardingAlertView]
    acknowledged: list[SafeguardingAlertView]
    missing: list[str]
    """Services whose alerts could not be listed, and why."""


async def listing(client: ServicesClient, person: Person) -> Listing:
    """Risk's and scheduling's alerts, merged in one order."""
    found: list[SafeguardingAlertView] = []
    missing: list[str] = []
    for service in ALERTS.services:
        try:
            found += (await client.ask(person, ALERTS, AlertsRequest(acknowledged_days=ACKNOWLEDGED_DAYS),
                                       service=service)).alerts
        except ServiceError as exc:
            missing.append(f"{service}: {exc.message}")
    alerts = ordered(found)
    return Listing([a for a in alerts if a.acknowledged_at is None], [a for a in alerts if a.acknowledged_at],
                   missing)


def _late(deadline: datetime, now: datetime) -> str:
    minutes = int((now - deadline).total_seconds() // 60)
    days, hours = minutes // 1440, minutes % 1440 // 60
    return f"{days} d {hours} h" if days else f"{hours} h {minutes % 60} min"


async def _context(request: Request, person: Person) -> dict[str, Any]:
    return {"listing": await listing(state_of(request).client, person), "now": datetime.now(UTC), "late": _late}


@AREA.router.get("")
async def page(request: Request, me: Me, session: MySession) -> Response:
    return render(request, "alerts/page.html", session=session, area=AREA, **await _context(request, me))


@AREA.router.get("/list", tags=[FRAGMENT])
async def alert_list(request: Request, me: Me, session: MySession) -> Response:
    """The list alone, which the page fetches again when an alert is raised (and when its live stream opens)."""
    return render(request, "alerts/list.html", session=session, **await _context(request, me))


@AREA.router.post("/{alert_id}/ack")
async def acknowledge(request: Request, me: Me, session: MySession, alert_id: str,
                      note: Annotated[str, Form()] = "") -> Response:
    """Acknowledge in the name of the person logged in; the service that raised the alert records them."""
    client = state_of(request).client
    said = f"No alert {alert_id}: neither risk nor scheduling raised one with that id."
    if len(note) > 2000 or len(alert_id) > 120:
        said = "Not acknowledged: the note may have at most 2000 characters."
    else:
        for service in ACKNOWLEDGE.services:  # the one that raised it answers; the other has never heard of it
            try:
                done = (await client.ask(me, ACKNOWLEDGE, AcknowledgeRequest(alert_id=alert_id, note=note),
                                         service=service)).alert
            except ServiceError as exc:
                if exc.code == ErrorCode.NOT_FOUND:
                    continue
                said = f"Not acknowledged: {exc.message}."
                break
            assert done.acknowledged_at is not None
            late = " (after its deadline)" if done.acknowledged_at > done.deadline else ""
            said = (f"Alert {done.rule_id} on referral {done.referral_id} acknowledged by {done.acknowledged_by} at "
                    f"{local(done.acknowledged_at)}{late}; recorded by {done.service}.")
            break
    session.notices.append(said)
    return RedirectResponse(AREA.href, status_code=303)


ENDED = 'Your log-in has ended, so new alerts no longer appear here: <a href="/login?next=%2Falerts">log in again</a>.'


def _event(name: str, html: str) -> str:
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in html.splitlines() or [""]) + "\n"


@AREA.router.get("/events", tags=[STREAM])
async def events(request: Request, me: Me, session: MySession) -> Response:
    """Server-sent events: `alert` with a sentence for screen readers each time an alert is raised; `ended` when the
    log-in does (the page says so and stops listening)."""
    console = state_of(request)
    announce = console.templates.get_template("alerts/announce.html")

    async def stream() -> AsyncIterator[str]:
        async with console.alerts.listen() as heard:
            yield "retry: 3000\n: live\n\n"
            while console.sessions.alive(session):
                try:
                    alert = await asyncio.wait_for(heard.get(), timeout=KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                yield _event("alert", announce.render(alert=alert, local=local))
            yield _event("ended", ENDED)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
