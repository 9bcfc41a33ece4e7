"""Operators' pages: a live overview of the services (each service's own `statistics`: readiness, throughput, its
consumers' backlog as JetStream reports it, its outbox and open dead letters), and the dead-letter queue (list, show
with the failure reason, replay once the cause is fixed, discard with a reason). The same requests as `reroute
deadletter`, in the name of the person logged in, whom the services record. A message's body (it may hold a child's
personal data) is shown only when the operator opens it, and the service logs who did."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from apps.console.areas import FRAGMENT, area
from apps.console.auth import Me, MySession
from apps.console.client import Person, ServicesClient
from apps.console.rendering import render
from apps.console.state import state_of
from shared.contracts.deadletters import (
    DeadLetter,
    DeadLetterDetail,
    DeadLetterDiscardRequest,
    DeadLetterListRequest,
    DeadLetterReplayRequest,
    DeadLetterResult,
    DeadLetterResults,
    DeadLetterShowRequest,
)
from shared.contracts.rpc import (
    DEAD_LETTER,
    DEAD_LETTERS,
    DISCARD,
    REPLAY,
    SERVICES,
    STATISTICS,
    Empty,
    ErrorCode,
    Role,
    ServiceError,
    ServiceStatistics,
)
from shared.deadletters import keepers

AREA = area("operations", "Operations", {Role.OPERATOR})
REFRESH_SECONDS = 5
"""How often the overview's figures are fetched again while it is open."""


# --- overview ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """One service's statistics, or why there are none."""

    service: str
    stats: ServiceStatistics | None
    problem: str | None


async def readings(client: ServicesClient, person: Person) -> list[Reading]:
    found = []
    for service in SERVICES:
        try:
            found.append(Reading(service, await client.ask(person, STATISTICS, Empty(), service=service, timeout=3),
                                 None))
        except ServiceError as exc:
            found.append(Reading(service, None, exc.message))
    return found


@AREA.router.get("")
async def overview(request: Request, me: Me, session: MySession) -> Response:
    return render(request, "operations/overview.html", session=session, area=AREA, refresh=REFRESH_SECONDS,
                  readings=await readings(state_of(request).client, me), now=datetime.now(UTC))


@AREA.router.get("/figures", tags=[FRAGMENT])
async def figures(request: Request, me: Me, session: MySession) -> Response:
    """The overview's figures alone, which the page fetches every REFRESH_SECONDS."""
    return render(request, "operations/figures.html", session=session,
                  readings=await readings(state_of(request).client, me), now=datetime.now(UTC))


# --- dead letters --------------------------------------------------------------------------------------------------

DEAD_LETTERS_HREF = f"{AREA.href}/dead-letters"
NOT_AN_ID = "{id} is not a dead letter id (they look like risk-1a2b3c4d5e, or outbox-1a2b3c4d5e for a parked event)"


@AREA.router.get("/dead-letters")
async def dead_letters(request: Request, me: Me, session: MySession, all: bool = False) -> Response:
    """Every service's dead letters, newest first (open ones only unless `all`), and the open ones by reason."""
    client = state_of(request).client
    found: list[DeadLetter] = []
    by_reason: list[tuple[str, str, int]] = []
    missing: list[str] = []
    for service in SERVICES:
        try:
            listed = await client.ask(me, DEAD_LETTERS, DeadLetterListRequest(include_resolved=all), service=service,
                                      timeout=10)
        except ServiceError as exc:
            missing.append(f"{service}: {exc.message}")
            continue
        found += listed.dead_letters
        by_reason += [(service, reason, n) for reason, n in listed.open_by_reason.items()]
    found.sort(key=lambda d: d.failed_at, reverse=True)
    return render(request, "operations/dead_letters.html", session=session, area=AREA, dead_letters=found,
                  by_reason=sorted(by_reason, key=lambda r: -r[2]), missing=missing, everything=all)


def _keepers(dead_letter_id: str) -> list[str]:
    """The services to ask about this id, in turn; a refusal naming the id when it cannot be one."""
    services = keepers(dead_letter_id, SERVICES) if len(dead_letter_id) <= 100 else []
    if not services:
        raise ServiceError(ErrorCode.NOT_FOUND, NOT_AN_ID.format(id=dead_letter_id[:100]))
    return services


async def _first_found(client: ServicesClient, person: Person, dead_letter_id: str,
                       request: DeadLetterShowRequest) -> DeadLetterDetail:
    """The dead letter from the service that keeps it (a parked event's id names none: each is asked in turn)."""
    services = _keepers(dead_letter_id)
    for service in services[:-1]:
        try:
            return await client.ask(person, DEAD_LETTER, request, service=service, timeout=10)
        except ServiceError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
    return await client.ask(person, DEAD_LETTER, request, service=services[-1], timeout=10)


async def _show(request: Request, me: Person, session: MySession, dead_letter_id: str, *, body: bool) -> Response:
    try:
        _keepers(dead_letter_id)
        detail = await _first_found(state_of(request).client, me, dead_letter_id,
                                    DeadLetterShowRequest(id=dead_letter_id, body=body, asked_by=me.person_id))
    except ServiceError as exc:
        status = 404 if exc.code == ErrorCode.NOT_FOUND else 503 if exc.code == ErrorCode.UNAVAILABLE else 400
        return render(request, "operations/dead_letter.html", session=session, area=AREA, detail=None,
                      problem=exc.message, status_code=status, dead_letter_id=dead_letter_id)
    return render(request, "operations/dead_letter.html", session=session, area=AREA, detail=detail,
                  dead_letter_id=dead_letter_id, problem=None)


@AREA.router.get("/dead-letters/{dead_letter_id}")
async def dead_letter(request: Request, me: Me, session: MySession, dead_letter_id: str) -> Response:
    """One dead letter: why it failed, where it came from, its headers; its body (personal data, perhaps) hidden."""
    return await _show(request, me, session, dead_letter_id, body=False)


@AREA.router.post("/dead-letters/{dead_letter_id}/body")
async def open_body(request: Request, me: Me, session: MySession, dead_letter_id: str) -> Response:
    """The same page with the message body, asked for in `me`'s name: the service that keeps it logs who."""
    return await _show(request, me, session, dead_letter_id, body=True)


def _page_of(dead_letter_id: str) -> str:
    return f"{DEAD_LETTERS_HREF}/{quote(dead_letter_id[:100], safe='')}"


def _said(result: DeadLetterResult) -> str:
    return f"{result.id}: {result.outcome}" + (f" ({result.detail})" if result.detail else "") + "."


async def _where_kept(dead_letter_id: str, ask: Callable[[str], Awaitable[DeadLetterResults]]) -> DeadLetterResult:
    """Replay or discard where the dead letter is kept: the first service that knows it (a parked event's id names
    none, so each is asked in turn; the others answer `not found`)."""
    services = _keepers(dead_letter_id)
    result = DeadLetterResult(id=dead_letter_id, outcome="not found")
    for service in services:
        result = (await ask(service)).results[0]
        if result.outcome != "not found":
            break
    return result


@AREA.router.post("/dead-letters/{dead_letter_id}/replay")
async def replay(request: Request, me: Me, session: MySession, dead_letter_id: str) -> Response:
    """Run it through its service once more (its cause fixed); the service records who asked."""
    client, asked = state_of(request).client, DeadLetterReplayRequest(ids=[dead_letter_id], asked_by=me.person_id)
    try:
        result = await _where_kept(dead_letter_id, lambda s: client.ask(me, REPLAY, asked, service=s, timeout=60))
    except ServiceError as exc:
        session.notices.append(f"{dead_letter_id} not replayed: {exc.message}.")
        return RedirectResponse(_page_of(dead_letter_id), status_code=303)
    session.notices.append(_said(result))
    if result.outcome == "failed again":
        return RedirectResponse(_page_of(dead_letter_id), status_code=303)
    return RedirectResponse(DEAD_LETTERS_HREF, status_code=303)


@AREA.router.post("/dead-letters/{dead_letter_id}/discard")
async def discard(request: Request, me: Me, session: MySession, dead_letter_id: str,
                  reason: Annotated[str, Form()] = "") -> Response:
    """Set it aside for good, with the reason and who decided (recorded by the service that keeps it)."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        session.notices.append("Not discarded: say why in 3 to 500 characters (it is recorded with your name).")
        return RedirectResponse(_page_of(dead_letter_id), status_code=303)
    client = state_of(request).client
    try:
        _keepers(dead_letter_id)
        asked = DeadLetterDiscardRequest(id=dead_letter_id, reason=reason, asked_by=me.person_id)
        result = await _where_kept(dead_letter_id, lambda s: client.ask(me, DISCARD, asked, service=s, timeout=10))
    except ServiceError as exc:
        session.notices.append(f"{dead_letter_id} not discarded: {exc.message}.")
        return RedirectResponse(_page_of(dead_letter_id), status_code=303)
    session.notices.append(_said(result))
    return RedirectResponse(DEAD_LETTERS_HREF, status_code=303)
