"""The console's sessions, in this process's memory, and the failed log-ins each client address may make.

A session's key is random (32 bytes) and travels only in an HttpOnly, SameSite=Strict cookie, Secure and `__Host-`
prefixed when people reach the console over TLS (on plain http the browser would drop a Secure cookie; the console
then listens on loopback only, where the traffic never leaves the machine). It ends after `console_idle_minutes`
without a request and after `console_session_hours` in all; a restart ends every session.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.console.client import Person
from apps.console.settings import ConsoleSettings

LOGIN_WINDOW_SECONDS = 300.0


def cookie_name(settings: ConsoleSettings) -> str:
    """`__Host-` makes the browser refuse the cookie unless it is Secure, for this host only, on path /."""
    return "__Host-reroute-console" if settings.tls else "reroute-console"


@dataclass
class Session:
    key: str
    csrf: str
    started: float
    seen: float
    person: Person | None = None
    choosing_password: bool = False
    """Logged in with a one-time password: nothing but choosing their own until they have."""
    enrolling: bool = False
    """Their roles need an authenticator code and they have none in use: nothing but setting one up until they have
    (after choosing their password, if they must)."""
    enrolment: tuple[str, str] | None = None
    """The new authenticator secret and its otpauth URI while they set it up."""
    notices: list[str] = field(default_factory=list)
    """Said once on the next page (what a form did, after its redirect)."""


class Sessions:
    """The sessions of this process, by key; an expired one is gone when next looked up."""

    def __init__(self, *, idle_seconds: float, lifetime_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._by_key: dict[str, Session] = {}
        self.idle_seconds, self.lifetime_seconds, self._clock = idle_seconds, lifetime_seconds, clock

    def new(self, person: Person | None = None, *, notices: list[str] | None = None) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, person,
                          notices=notices or [])
        self._by_key[session.key] = session
        self._sweep(now)
        return session

    def find(self, key: str | None) -> Session | None:
        session = self._by_key.get(key) if key else None
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > self.idle_seconds or now - session.started > self.lifetime_seconds:
            self.end(session)
            return None
        return session

    def touch(self, session: Session) -> None:
        session.seen = self._clock()

    def alive(self, session: Session) -> bool:
        """Still current (a live page asks, without keeping it alive)."""
        return self.find(session.key) is session

    def end(self, session: Session) -> None:
        self._by_key.pop(session.key, None)

    def _sweep(self, now: float) -> None:
        for session in [s for s in self._by_key.values() if now - s.seen > self.idle_seconds
                        or now - s.started > self.lifetime_seconds]:
            self.end(session)


@dataclass(eq=False)
class Attempt:
    """One log-in attempt, holding its place in its address's count until it is known to have logged in."""

    address: str
    at: float


class LoginLimiter:
    """At most `attempts` failed log-ins per client address in a sliding `LOGIN_WINDOW_SECONDS`: what guards against
    guessing passwords from one computer (each person's own lock-out is intake's). A successful log-in is not counted,
    so a team trying the demo, or an office behind one public address, is never refused for logging in.

    An attempt takes its place when it starts (`begin`) and gives it back only once it has logged in (`logged_in`):
    so a burst of guesses sent all at once is held to the same number as guesses sent one after another."""

    def __init__(self, attempts: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self._clock = attempts, clock
        self._counted: dict[str, deque[Attempt]] = {}

    def begin(self, address: str) -> Attempt | None:
        """The attempt, counted from now; None when the address has failed (or has in flight) `attempts` already."""
        now = self._clock()
        counted = self._current(address, now)
        if len(counted) >= self.attempts:
            return None
        attempt = Attempt(address, now)
        counted.append(attempt)
        return attempt

    def logged_in(self, attempt: Attempt) -> None:
        """It logged in: it no longer counts."""
        counted = self._counted.get(attempt.address)
        if counted is not None and attempt in counted:
            counted.remove(attempt)
            if not counted:
                del self._counted[attempt.address]

    def retry_after(self, address: str) -> float:
        """Seconds until the address may try again (0 when it may now)."""
        now = self._clock()
        counted = self._current(address, now)
        if len(counted) < self.attempts:
            return 0.0
        return max(0.0, counted[len(counted) - self.attempts].at + LOGIN_WINDOW_SECONDS - now)

    def _current(self, address: str, now: float) -> deque[Attempt]:
        counted = self._counted.setdefault(address, deque())
        while counted and now - counted[0].at > LOGIN_WINDOW_SECONDS:
            counted.popleft()
        return counted
