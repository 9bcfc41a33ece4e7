"""The personal-data access log, for the data protection officer: who looked at which young person's personal data
(a first name, an identity, a look-up by name), when and why, newest first, searchable by who looked, by referral and
by young person. Read from intake (`personal_data.access_log`), which appends a row for every such request; the log
names referrals by id only."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from apps.console.areas import area
from apps.console.auth import Me, MySession
from apps.console.rendering import render
from apps.console.state import state_of
from shared.contracts.intake_rpc import ACCESS_LOG, AccessLogRequest
from shared.contracts.rpc import Role, ServiceError, readable

AREA = area("access", "Personal-data access log", {Role.DPO})
SHOWN = 200


@AREA.router.get("")
async def page(request: Request, me: Me, session: MySession, asked_by: str = "", referral_id: str = "",
               person_id: str = "") -> Response:
    search = {"asked_by": asked_by.strip(), "referral_id": referral_id.strip(), "person_id": person_id.strip()}
    log, problem, status = None, None, 200
    try:
        log = await state_of(request).client.ask(me, ACCESS_LOG, AccessLogRequest(**search, limit=SHOWN))
    except ValidationError as exc:
        problem, status = f"Not searched: {readable(exc)}.", 400
    except ServiceError as exc:
        problem, status = f"The access log cannot be read just now: {exc.message}.", 503
    return render(request, "access/page.html", session=session, area=AREA, search=search, log=log, problem=problem,
                  shown=SHOWN, status_code=status)
