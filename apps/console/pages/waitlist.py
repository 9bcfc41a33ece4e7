"""The waitlist, for schedulers: each waiting referral (ids only), its tier, how long it has waited, why (scheduling's
own reasons) and what capacity would place it, each linked to its referral page. The same answer as `reroute
waitlist` (scheduling's `waitlist`)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from apps.console.areas import area
from apps.console.auth import Me, MySession
from apps.console.rendering import render
from apps.console.state import state_of
from shared.contracts.rpc import Empty, Role, ServiceError
from shared.contracts.scheduling_rpc import WAITLIST

AREA = area("waitlist", "Waitlist", {Role.SCHEDULER})


@AREA.router.get("")
async def page(request: Request, me: Me, session: MySession) -> Response:
    try:
        waiting, problem = (await state_of(request).client.ask(me, WAITLIST, Empty())).waiting, None
    except ServiceError as exc:
        waiting, problem = [], f"The waitlist cannot be read just now: {exc.message}."
    longest_first = sorted(waiting, key=lambda w: w.waiting_since)
    return render(request, "waitlist/page.html", session=session, area=AREA, waiting=longest_first, problem=problem)
