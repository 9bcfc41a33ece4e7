"""Who may use the console, and how they prove it: sessions, the role guard every route declares, CSRF, log-in.

- **Sessions** live in this process's memory (a random key in an HttpOnly, SameSite=Strict cookie; Secure and
  `__Host-` prefixed when people reach the console over TLS). A log-in ends after `console_idle_minutes` without a
  request and after `console_session_hours` in all; logging in gives a new key (no session fixation). A restart logs
  everyone out; run one console replica (or sticky sessions). Only log-ins are kept: the log-in page gives a visitor a
  pre-log-in entry kept nowhere (its token signed by this process), so requests for it cost no memory.
- **Guards.** Every route names who may use it with exactly one guard: `Needs(roles)` (logged in, with one of
  them, checked against `people.whoami` on every request, so a removed person or a withdrawn role is refused at once)
  or `Open(why)` (the log-in page, logging out). An area's router carries its `Needs` (apps/console/areas.py);
  `routes_of(app)` reads them back, and a test holds that no route is without one.
- **CSRF.** Every request that is not GET/HEAD must carry the session's token (the log-in form, its pre-log-in
  entry's; a log-in form without a current one gets the page again, "expired"), in the form field `csrf_token` or
  the `X-CSRF-Token` header (htmx sends it, from `hx-headers` on <body>), and an Origin, when the browser sends one,
  of this console.
- **Log-in.** intake checks the console password (argon2id; five wrong in a row lock that person's log-in for 15
  minutes: services/intake/console_logins.py); here each client address (an IPv6 one's /64) may fail
  `console_login_attempts` times in 5 minutes, log-ins still being checked holding places too (a log-in that succeeds
  is not counted, so people sharing an address are not refused for logging in: apps/console/sessions.py). A one-time password (an admin's `reroute people console-password`) opens only the page where the person
  chooses their own. Admins and safeguarding leads also give an authenticator code (TOTP) at each log-in; at their
  first log-in they set their app up on /second-factor, which is all they may open until they have.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import iter_route_contexts

from apps.console.client import Person
from apps.console.rendering import render
from apps.console.sessions import Refusal, Session, cookie_name
from apps.console.settings import ConsoleSettings
from apps.console.state import state_of
from shared.contracts.intake_rpc import (
    CONSOLE_LOGIN,
    CONSOLE_PASSWORD,
    CONSOLE_PASSWORD_MIN,
    SECOND_FACTOR_BEGIN,
    SECOND_FACTOR_CONFIRM,
    ConsoleLoginRequest,
    ConsolePasswordChange,
    SecondFactorConfirm,
    SecondFactorRequest,
)
from shared.contracts.rpc import ANY_ROLE, ErrorCode, Role, ServiceError
from shared.proxies import client_address

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECOND_FACTOR = "/second-factor"
FRAGMENT = "fragment"
"""The tag of a route that serves part of a page, which the page fetches by itself (htmx): checked for accessibility
within its page, and it does not keep the log-in alive."""
STREAM = "stream"
"""The tag of a route that serves server-sent events, not HTML: it does not keep the log-in alive either."""
TEXT = "text"
"""The tag of a route that serves plain text (a probe)."""
_BY_ITSELF = frozenset({FRAGMENT, STREAM})


# --- refusals, each turned into a page or a redirect by the handlers in app.py ------------------------------------

class LoginNeeded(Exception):
    """Not logged in (or the log-in ended): to the log-in page, then back."""


class PasswordNeeded(Exception):
    """Logged in with a one-time password: to the page where they choose their own."""


class SecondFactorNeeded(Exception):
    """Their roles need an authenticator code and they have none set up: to the page where they set one up."""


class NotAllowed(Exception):
    """Logged in, but none of their roles may use this."""

    def __init__(self, person: Person, roles: frozenset[Role]) -> None:
        super().__init__(f"{person.person_id} lacks {sorted(roles)}")
        self.person, self.roles = person, roles


class CsrfRefused(Exception):
    """A state-changing request without this session's token, or from another site."""


class LoginPageExpired(CsrfRefused):
    """A log-in form from this console without a current pre-log-in entry (its page was left longer than the idle
    time, or shown before a restart): the log-in page again, with a new one."""

    def __init__(self, *, person_id: str, next: str) -> None:
        super().__init__(person_id)
        self.person_id, self.next = person_id, next


# --- guards --------------------------------------------------------------------------------------------------------

class Guard:
    """Who may use a route. Every route has exactly one (`guard_of`)."""

    roles: frozenset[Role] = frozenset()


class Open(Guard):
    """Anyone may use it, logged in or not (the log-in page itself); `why` says why that is safe."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def __call__(self) -> None:
        return None


class Needs(Guard):
    """Logged in, with one of `roles` as intake has them now (`people.whoami`, asked on every request; a request keeps
    the log-in alive unless its route is a FRAGMENT or a STREAM, which a page asks by itself). `first_steps`: also while the person has only a
    one-time password or has still to set up their authenticator (the pages where they do that)."""

    def __init__(self, roles: frozenset[Role], *, first_steps: bool = False) -> None:
        if not roles:
            raise ValueError("Needs at least one role: use Open(why) for a page anyone may see")
        self.roles, self.first_steps = frozenset(roles), first_steps

    async def __call__(self, request: Request) -> Person:

        console = state_of(request)
        session = console.sessions.find(request.cookies.get(cookie_name(console.settings)))
        if session is None or session.person is None:
            raise LoginNeeded()
        if session.choosing_password and not self.first_steps:
            raise PasswordNeeded()
        if session.enrolling and not self.first_steps:
            raise SecondFactorNeeded()
        person = await console.client.whoami(session.person.person_id)
        if person is None:  # removed since they logged in
            console.sessions.end(session)
            raise LoginNeeded()
        session.person = person
        request.state.session, request.state.person = session, person
        if not _BY_ITSELF & set(getattr(request.scope.get("route"), "tags", None) or ()):
            console.sessions.touch(session)  # a person did something (not a page fetching by itself)
        if not person.may(self.roles):
            raise NotAllowed(person, self.roles)
        return person


class SpansSender(Guard):
    """A service posting its spans (apps/console/receiver.py): the bearer token REROUTE_CONSOLE_SPANS_TOKEN, which a
    browser never sends by itself (so no session and no CSRF token either); without the setting, nobody (404)."""

    async def __call__(self, request: Request) -> None:
        token = state_of(request).settings.console_spans_token
        if token is None:
            raise HTTPException(404, "This console receives no spans (REROUTE_CONSOLE_SPANS_TOKEN is not set).")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise HTTPException(401, "Give the console's spans token: Authorization: Bearer <token>.",
                                headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class RouteInfo:
    """One route of the console as served: its path template, methods, tags and the guard it declared."""

    path: str
    methods: frozenset[str]
    tags: tuple[str, ...]
    guard: Guard | None


def routes_of(app: FastAPI) -> list[RouteInfo]:
    """Every API route of the app, its included routers' too (not the static files' mount), with its guard: the one
    `Guard` among its dependencies, or None when it has none (or several, which is as wrong)."""
    found = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None or route.path is None:
            continue
        guards = [d.call for d in dependant.dependencies if isinstance(d.call, Guard)]
        found.append(RouteInfo(route.path, frozenset(route.methods or ()), tuple(getattr(route, "tags", ())),
                               guards[0] if len(guards) == 1 else None))
    return found


async def visitor(request: Request) -> Session | None:
    """The session of whoever asks for something no route serves, with its person checked against `people.whoami` as
    `Needs` does (so a removed person sees no areas), without keeping the log-in alive. Its person is None when they
    have not logged in, or intake cannot say who they are just now."""
    console = state_of(request)
    session = console.sessions.find(request.cookies.get(cookie_name(console.settings)))
    if session is None or session.person is None:
        return session
    try:
        person = await console.client.whoami(session.person.person_id)
    except ServiceError:
        return None  # a page without the areas, rather than an error on top of an error
    if person is None:
        console.sessions.end(session)
        return None
    session.person = person
    return session


def current_person(request: Request) -> Person:
    """The person the route's guard let in (a route without a `Needs` guard has none: a bug, not a refusal)."""
    person: Person = request.state.person
    return person


def current_session(request: Request) -> Session:
    session: Session = request.state.session
    return session


Me = Annotated[Person, Depends(current_person)]
MySession = Annotated[Session, Depends(current_session)]


async def csrf_protected(request: Request) -> None:
    """App-wide: a request that changes anything carries this session's token and comes from this console."""
    if request.method in SAFE_METHODS:
        return
    route = getattr(request.scope.get("route"), "dependant", None)
    if route is not None and any(isinstance(d.call, SpansSender) for d in route.dependencies):
        return  # a bearer token no browser sends by itself: the guard checks it

    console = state_of(request)
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise CsrfRefused()
    cookie = request.cookies.get(cookie_name(console.settings))
    logging_in = route is not None and any(d.call is _LOGIN_PAGE for d in route.dependencies)
    session = console.sessions.find(cookie) or (console.sessions.pre_log_in(cookie) if logging_in else None)
    token = request.headers.get(CSRF_HEADER)
    form = await request.form() if token is None else None  # parsed once: the route's Form fields read the same
    if form is not None:
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if session is None or token is None or not secrets.compare_digest(token.encode(), session.csrf.encode()):
        if logging_in and request.method == "POST" and form is not None:  # nothing done: a new form costs nothing
            person_id, next = form.get("person_id"), form.get("next")
            raise LoginPageExpired(person_id=person_id if isinstance(person_id, str) else "",
                                   next=next if isinstance(next, str) else "/")
        raise CsrfRefused()


# --- log-in, choosing a password, logging out ----------------------------------------------------------------------

router = APIRouter()
_LOGIN_PAGE = Open("the log-in page: it shows nothing but the form")
_LOGOUT = Open("logging out ends whatever session the cookie names, and nothing else")
_FIRST_STEPS = Needs(ANY_ROLE, first_steps=True)


def local_path(target: str | None) -> str:
    """Where to go after logging in: a path on this console only (never another site: no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return "/"


def first_step(session: Session) -> str | None:
    """Where a person who has just logged in must go first, if anywhere."""
    return "/password" if session.choosing_password else SECOND_FACTOR if session.enrolling else None


def set_session_cookie(response: Response, session: Session, settings: ConsoleSettings) -> None:
    response.set_cookie(cookie_name(settings), session.key, httponly=True, samesite="strict", secure=settings.tls,
                        path="/", max_age=int(settings.console_session_hours * 3600))


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _refused(refusal: Refusal, attempts: int) -> tuple[str, int, dict[str, str]]:
    """The log-in page's problem, status and headers when the address may not try now."""
    wait = max(1, math.ceil(refusal.wait))
    if refusal.reason == "checking":
        said = ("Several log-ins from this computer are being checked" if refusal.checking > 1
                else "A log-in from this computer is being checked")
        return f"{said}: try again in a few seconds.", 429, {"Retry-After": str(wait)}
    if refusal.reason == "crowded":
        return (f"Too many computers have been trying to log in within 5 minutes: try again in {_minutes(wait)}.", 429,
                {"Retry-After": str(wait)})
    return (f"Too many failed log-ins from this computer ({attempts} in 5 minutes): try again in {_minutes(wait)}.",
            429, {"Retry-After": str(wait)})


@router.get("/login", dependencies=[Depends(_LOGIN_PAGE)])
async def login_page(request: Request, next: str = "/") -> Response:
    console = state_of(request)
    session = console.sessions.find(request.cookies.get(cookie_name(console.settings)))
    if session is not None and session.person is not None and not (session.choosing_password or session.enrolling):
        return RedirectResponse(local_path(next), status_code=303)  # logged in already
    return _login_form(request, session, next=next)


def _login_form(request: Request, session: Session | None, *, next: str, problem: str | None = None,
                person_id: str = "", status_code: int = 200) -> Response:
    """The log-in page, for the session the cookie names or else a pre-log-in entry (a new one in the cookie)."""
    console = state_of(request)
    cookie = request.cookies.get(cookie_name(console.settings))
    if session is None:
        session = console.sessions.before_log_in(cookie)
    response = render(request, "login.html", session=session, next=local_path(next), problem=problem,
                      person_id=person_id, status_code=status_code, attempts=console.settings.console_login_attempts)
    if session.key != cookie:
        set_session_cookie(response, session, console.settings)
    return response


def expired_login_page(request: Request, expired: LoginPageExpired) -> Response:
    """A log-in form whose page expired: nothing was checked (not counted); the form again, with a new entry."""
    console = state_of(request)
    session = console.sessions.find(request.cookies.get(cookie_name(console.settings)))  # kept: not logged out
    return _login_form(request, session, next=expired.next, problem="Your log-in page expired; please try again.",
                       person_id=expired.person_id.strip().lower()[:64], status_code=403)


@router.post("/login", dependencies=[Depends(_LOGIN_PAGE)])
async def login(request: Request, person_id: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                code: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    console = state_of(request)
    cookie = request.cookies.get(cookie_name(console.settings))
    before = console.sessions.find(cookie) or console.sessions.pre_log_in(cookie)
    assert before is not None  # csrf_protected refused a request without one

    def again(problem: str, status: int, headers: dict[str, str] | None = None) -> Response:
        """The form again, with a pre-log-in entry renewed once half its time has gone (a retry minutes later works)."""
        session = before if console.sessions.find(cookie) is not None else console.sessions.before_log_in(cookie)
        response = render(request, "login.html", session=session, next=local_path(next), problem=problem,
                          person_id=person_id, status_code=status, attempts=console.settings.console_login_attempts)
        if session.key != cookie:
            set_session_cookie(response, session, console.settings)
        response.headers.update(headers or {})
        return response

    person_id = person_id.strip().lower()
    if not person_id or not password:  # not a guess (nothing is checked): not counted
        return again("Give your person id and your console password.", 400)
    code = "".join(code.split())
    if len(person_id) > 64 or len(password) > 1024 or len(code) > 12:  # no such person or password: not counted either
        return again("Not logged in: wrong person id, password or authenticator code.", 401)
    address = client_address(request, console.settings.console_trusted_proxies) or "-"
    attempt = console.limiter.begin(address)  # holds a place until it logs in: only failures use up the tries
    if isinstance(attempt, Refusal):
        return again(*_refused(attempt, console.settings.console_login_attempts))
    try:
        logged = await console.client.call(CONSOLE_LOGIN, ConsoleLoginRequest(person_id=person_id, password=password,
                                                                              code=code))
    except ServiceError as exc:
        console.limiter.failed(attempt)
        if exc.code == ErrorCode.UNAVAILABLE:
            return again(f"Cannot check your password just now: {exc.message}.", 503)
        if exc.code == ErrorCode.REFUSED:
            return again(f"Not logged in: {exc.message}.", 401)
        return again("Not logged in: wrong person id, password or authenticator code.", 401)
    except BaseException:  # given up (the browser went away) or a bug: intake may have checked it all the same
        console.limiter.failed(attempt)
        raise
    console.limiter.logged_in(attempt)
    console.sessions.end(before)
    session = console.sessions.new(Person(logged.person_id, frozenset(logged.roles)))
    session.choosing_password, session.enrolling = logged.one_time, logged.second_factor == "enrol"
    response = RedirectResponse(first_step(session) or local_path(next), status_code=303)
    set_session_cookie(response, session, console.settings)
    return response


@router.get("/password", dependencies=[Depends(_FIRST_STEPS)])
async def password_page(request: Request, person: Me, session: MySession) -> Response:
    return render(request, "password.html", session=session, minimum=CONSOLE_PASSWORD_MIN, who=person.person_id)


@router.post("/password", dependencies=[Depends(_FIRST_STEPS)])
async def choose_password(request: Request, person: Me, session: MySession,
                          current: Annotated[str, Form()] = "", new: Annotated[str, Form()] = "",
                          repeated: Annotated[str, Form()] = "") -> Response:
    console = state_of(request)

    def again(problem: str, status: int) -> Response:
        return render(request, "password.html", session=session, minimum=CONSOLE_PASSWORD_MIN, problem=problem,
                      who=person.person_id, status_code=status)

    if not CONSOLE_PASSWORD_MIN <= len(new) <= 1024 or len(current) > 1024:
        return again(f"Your new password must have at least {CONSOLE_PASSWORD_MIN} characters (and at most 1024).", 400)
    if new != repeated:
        return again("The new password and its repetition differ: type them again.", 400)
    try:
        await console.client.call(CONSOLE_PASSWORD, ConsolePasswordChange(
            person_id=person.person_id, current_password=current, new_password=new))
    except ServiceError as exc:
        status = 503 if exc.code == ErrorCode.UNAVAILABLE else 400
        return again(f"Your password is not changed: {exc.message}.", status)
    console.sessions.end(session)
    renewed = console.sessions.new(person, notices=["Your password is changed."])
    renewed.enrolling = session.enrolling
    response = RedirectResponse(first_step(renewed) or "/", status_code=303)
    set_session_cookie(response, renewed, console.settings)
    return response


@router.get(SECOND_FACTOR, dependencies=[Depends(_FIRST_STEPS)])
async def second_factor_page(request: Request, person: Me, session: MySession) -> Response:
    """Set up an authenticator app (admins, safeguarding leads and DPOs, at their first log-in)."""
    if not session.enrolling or session.choosing_password:
        return RedirectResponse(first_step(session) or "/", status_code=303)
    return await _enrolment(request, person, session)


async def _enrolment(request: Request, person: Person, session: Session, problem: str | None = None,
                     status: int = 200) -> Response:
    if session.enrolment is None:
        try:
            made = await state_of(request).client.call(SECOND_FACTOR_BEGIN, SecondFactorRequest(
                person_id=person.person_id))
        except ServiceError as exc:
            return render(request, "second_factor.html", session=session, problem=f"Cannot set it up: {exc.message}.",
                          secret=None, status_code=503 if exc.code == ErrorCode.UNAVAILABLE else 409)
        session.enrolment = (made.secret, made.uri)
    secret, uri = session.enrolment
    return render(request, "second_factor.html", session=session, problem=problem, status_code=status,
                  secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)), uri=uri, who=person.person_id)


@router.post(SECOND_FACTOR, dependencies=[Depends(_FIRST_STEPS)])
async def confirm_second_factor(request: Request, person: Me, session: MySession,
                                code: Annotated[str, Form()] = "") -> Response:
    console = state_of(request)
    if not session.enrolling or session.choosing_password:
        return RedirectResponse(first_step(session) or "/", status_code=303)
    code = "".join(code.split())
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return await _enrolment(request, person, session, "Type the 6 digits your app shows now.", 400)
    try:
        await console.client.call(SECOND_FACTOR_CONFIRM, SecondFactorConfirm(person_id=person.person_id, code=code))
    except ServiceError as exc:
        if exc.code != ErrorCode.UNAVAILABLE and "start again" in exc.message:
            session.enrolment = None  # a new secret next: the one shown is no longer kept
        return await _enrolment(request, person, session, f"Not set up: {exc.message}.",
                                503 if exc.code == ErrorCode.UNAVAILABLE else 400)
    console.sessions.end(session)
    renewed = console.sessions.new(person, notices=[
        "Your authenticator is set up: from now on, give its code each time you log in."])
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, renewed, console.settings)
    return response


@router.post("/logout", dependencies=[Depends(_LOGOUT)])
async def logout(request: Request) -> Response:

    console = state_of(request)
    session = console.sessions.find(request.cookies.get(cookie_name(console.settings)))
    if session is not None:
        console.sessions.end(session)
    after = console.sessions.new(notices=["You have logged out."])
    response = RedirectResponse("/login", status_code=303)
    set_session_cookie(response, after, console.settings)
    return response
