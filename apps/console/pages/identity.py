"""A young person's identity and the referrer's contact details, for a safeguarding lead who states why (to call the
police, to tell the referrer): fetched from intake (`identity`), which logs who asked, when and why, found or not;
shown on this one response only (never in a list, never kept by the console). Reached from a safeguarding alert, or
by a referral's id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from apps.console.areas import area
from apps.console.auth import Me, MySession
from apps.console.rendering import render
from apps.console.state import state_of
from shared.contracts.intake_rpc import IDENTITY, IdentityRequest
from shared.contracts.rpc import ErrorCode, Role, ServiceError

AREA = area("identity", "Identify a young person", {Role.DSL})
PURPOSE_MAX = 350
"""Of the 500 characters intake keeps, the rest names the alert it was opened from."""


@AREA.router.get("")
async def page(request: Request, session: MySession, referral_id: str = "", alert_id: str = "") -> Response:
    """The form: which referral, and why. Nothing personal is on it."""
    return render(request, "identity/page.html", session=session, area=AREA, referral_id=referral_id[:100],
                  alert_id=alert_id[:120], purpose="", problem=None, found=None)


@AREA.router.post("")
async def identify(request: Request, me: Me, session: MySession, referral_id: Annotated[str, Form()] = "",
                   purpose: Annotated[str, Form()] = "", alert_id: Annotated[str, Form()] = "") -> Response:
    """Ask intake in the person's name, with their purpose (and the alert it came from): the answer, or why not."""
    referral_id, purpose, alert_id = referral_id.strip(), " ".join(purpose.split()), alert_id.strip()
    found, problem, status = None, None, 200
    if not referral_id or len(referral_id) > 100:
        problem, status = "Give the referral's id (it starts ref_; at most 100 characters).", 400
    elif not purpose:
        problem, status = "Say why you need to know who this is: it is logged with your name.", 400
    elif len(purpose) > PURPOSE_MAX or len(alert_id) > 120:
        problem, status = f"The purpose may have at most {PURPOSE_MAX} characters.", 400
    else:
        logged = f"{purpose} (safeguarding alert {alert_id})" if alert_id else purpose
        try:
            found = await state_of(request).client.ask(me, IDENTITY, IdentityRequest(referral_id=referral_id,
                                                                                     purpose=logged))
        except ServiceError as exc:
            missing = exc.code == ErrorCode.NOT_FOUND
            problem = (f"No referral {referral_id} at intake (your look-up is logged)." if missing
                       else f"Not shown: {exc.message}.")
            status = 404 if missing else 503
    return render(request, "identity/page.html", session=session, area=AREA, referral_id=referral_id,
                  alert_id=alert_id, purpose="" if found else purpose, problem=problem, found=found,
                  status_code=status)
