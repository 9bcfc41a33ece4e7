"""The web console: FastAPI serving server-rendered pages (Jinja2), htmx for interaction and server-sent events for
live views, every asset from apps/console/static (no CDN, no build step). A client of the services over NATS only
(apps/console/client.py): it never reads a service's database.

`create_app` wires it (nothing at import time): the log-in routes (apps/console/auth.py), the home page, every area
in `apps.console.pages.AREAS`, the refusal pages, a page for an address it does not serve, and the headers every
response carries (a strict Content Security Policy: scripts and styles from this console only, no inline script)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.console import auth, receiver
from apps.console.areas import NOT_PAGES, TEXT
from apps.console.auth import (
    CsrfRefused,
    LoginNeeded,
    LoginPageExpired,
    MySession,
    Needs,
    NotAllowed,
    Open,
    PasswordNeeded,
    SecondFactorNeeded,
    routes_of,
    visitor,
)
from apps.console.client import ServicesClient
from apps.console.live import AlertFeed
from apps.console.pages import AREAS
from apps.console.rendering import render, templates
from apps.console.sessions import LoginLimiter, Sessions
from apps.console.settings import ConsoleSettings
from apps.console.state import ConsoleState
from shared.contracts.rpc import ANY_ROLE
from shared.span_store import SpanStore

STATIC = Path(__file__).with_name("static")
NEVER_PAGES = (receiver.PREFIX, "/static/", "/favicon.ico")
"""Paths answered in their own terms, never with a page: the OTLP receiver's protocol, the static files, and the icon
a browser asks for by itself when a page links none (every page links /static/favicon.png; a page, with its check of
who is logged in, would cost more than the icon)."""
NO_PAGE_TITLES = {400: "This address cannot be read", 404: "Page not found", 405: "This address is not a page"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class SecurityHeaders:
    """On every response: the CSP, no sniffing, no referrer to other sites (with none at all, a browser sends
    `Origin: null` on its own forms, which the CSRF check refuses), no framing, nothing cached (pages hold children's
    data), and HSTS when served over TLS."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.headers = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"),
                        (b"cross-origin-opener-policy", b"same-origin"),
                        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control" or static]
                headers += self.headers
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _refusals(app: FastAPI) -> None:
    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, _: LoginNeeded) -> Response:
        target = "/login"
        if request.method == "GET" and not _htmx(request):
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target += f"?next={quote(path, safe='')}"
        if _htmx(request):  # a fragment must not become the log-in page inside the page: htmx goes there instead
            return PlainTextResponse("Log in again.", status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(PasswordNeeded)
    async def password_needed(request: Request, _: PasswordNeeded) -> Response:
        return RedirectResponse("/password", status_code=303)

    @app.exception_handler(SecondFactorNeeded)
    async def second_factor_needed(request: Request, _: SecondFactorNeeded) -> Response:
        return RedirectResponse(auth.SECOND_FACTOR, status_code=303)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        return render(request, "refused.html", session=request.state.session, status_code=403,
                      needed=sorted(exc.roles), who=exc.person)

    @app.exception_handler(LoginPageExpired)
    async def login_page_expired(request: Request, exc: LoginPageExpired) -> Response:
        return auth.expired_login_page(request, exc)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: CsrfRefused) -> Response:
        return render(request, "stale_form.html", status_code=403)


def wants_page(request: Request) -> bool:
    """Whether an error is answered with a page (in the console's layout): for anything but `NEVER_PAGES`, unless the
    client asks for JSON and not HTML."""
    if request.url.path.startswith(NEVER_PAGES):
        return False
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept or "json" not in accept


def _no_pages(app: FastAPI) -> None:
    """A page, not FastAPI's bare JSON, for an address the console does not serve (404), one only its forms post to
    (405), or one whose query a page cannot read (400); with the areas for a person logged in, else a link to log in."""

    @app.exception_handler(HTTPException)
    async def no_page(request: Request, exc: HTTPException) -> Response:
        if exc.status_code not in (404, 405) or not wants_page(request):
            return await http_exception_handler(request, exc)
        response = render(request, "no_page.html", session=await visitor(request), status_code=exc.status_code,
                          title=NO_PAGE_TITLES[exc.status_code], status=exc.status_code, path=request.url.path[:200])
        response.headers.update(exc.headers or {})  # Allow, on a 405
        return response

    @app.exception_handler(RequestValidationError)
    async def unreadable(request: Request, exc: RequestValidationError) -> Response:
        if not wants_page(request):
            return await request_validation_exception_handler(request, exc)
        said = "; ".join(f"{'.'.join(str(part) for part in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                         for e in exc.errors())
        session = getattr(request.state, "session", None) or await visitor(request)  # the guard's, when it ran
        return render(request, "no_page.html", session=session, status_code=400, status=400,
                      title=NO_PAGE_TITLES[400], path=request.url.path[:200], unreadable=said)


def create_app(settings: ConsoleSettings, client: ServicesClient, alerts: AlertFeed, *,
               clock: Callable[[], float] = time.monotonic) -> FastAPI:
    app = FastAPI(title="reroute console", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(auth.csrf_protected)])
    app.state.console = ConsoleState(
        settings=settings, client=client, alerts=alerts, templates=templates(),
        spans=SpanStore.of(settings.data_dir),
        sessions=Sessions(idle_seconds=settings.console_idle_minutes * 60,
                          lifetime_seconds=settings.console_session_hours * 3600, clock=clock),
        limiter=LoginLimiter(settings.console_login_attempts, clock=clock))
    _refusals(app)
    _no_pages(app)
    app.include_router(auth.router)
    app.include_router(receiver.router)

    @app.get("/", dependencies=[Depends(Needs(ANY_ROLE))])
    async def home(request: Request, session: MySession) -> Response:
        """The areas the person may use."""
        return render(request, "home.html", session=session)

    @app.get("/healthz", dependencies=[Depends(Open("says only that the console answers"))], tags=[TEXT])
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    for area in AREAS:
        app.include_router(area.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders, tls=settings.tls)
    return app


def pages(app: FastAPI) -> set[str]:
    """The paths of the routes that serve a whole page (GET, not a fragment, a stream or plain text): each one is
    checked with axe-core in a real browser (tests/browser)."""
    return {r.path for r in routes_of(app) if "GET" in r.methods and not NOT_PAGES & set(r.tags)}
