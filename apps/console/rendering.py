"""Pages from templates (Jinja2, autoescaped): every page gets the person logged in, the areas they may use, the
session's CSRF token and its one-time notices."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from apps.console.sessions import Session
from apps.console.state import state_of

TEMPLATES = Path(__file__).with_name("templates")
LONDON = ZoneInfo("Europe/London")


def local(moment: datetime) -> str:
    """A moment as people here read it: Europe/London, e.g. `Sun 06 Dec 20:04`."""
    return moment.astimezone(LONDON).strftime("%a %d %b %H:%M")


def templates() -> Jinja2Templates:
    made = Jinja2Templates(directory=TEMPLATES)
    made.env.filters["local"] = local
    return made


def render(request: Request, template: str, *, session: Session | None = None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    from apps.console.pages import AREAS  # the areas import this module

    console = state_of(request)
    person = session.person if session is not None and not (session.choosing_password or session.enrolling) else None
    notices = [*session.notices] if session is not None else []
    if session is not None:
        session.notices.clear()
    return console.templates.TemplateResponse(request, template, {
        "person": person, "csrf": session.csrf if session is not None else "", "notices": notices,
        "areas": [a for a in AREAS if person is not None and person.may(a.roles)], **context,
    }, status_code=status_code)
