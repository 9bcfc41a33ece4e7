"""The console's sessions, in this process's memory, and the failed log-ins each client address may make.

A session's key is random (32 bytes) and travels only in an HttpOnly, SameSite=Strict cookie, Secure and `__Host-`
prefixed when people reach the console over TLS (on plain http the browser would drop a Secure cookie; the console
then listens on loopback only, where the traffic never leaves the machine). It ends after `console_idle_minutes`
without a request and after `console_session_hours` in all; a restart ends every session.

Only log-ins are kept (and the session a log-out leaves for its notice, in place of the one it ends): a visitor who
has not logged in gets a pre-log-in entry that is kept nowhere (`Sessions.before_log_in`), so no number of requests for
the log-in page grows the table. The table is in order of last use, and the idle ones are swept from its front.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from apps.console.client import Person
from apps.console.settings import ConsoleSettings
from shared.proxies import counted_as

LOGIN_WINDOW_SECONDS = 300.0
CHECKING_RETRY_SECONDS = 5.0
"""How long to wait when the log-ins still being checked fill an address's limit: intake answers a log-in, or the
console gives up on it, within 5 s."""
LOGIN_ADDRESSES_MAX = 100_000
"""At most this many client addresses in the log-in limit's table (about 280 bytes each, and 32 more for each failure
it remembers: under 40 MB with the default of 10 attempts): see `LoginLimiter`."""


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
    """The log-ins of this process, by key, in order of last use (least recent first): an idle one is swept from the
    front when a session is made, one past its lifetime is gone when next looked up (it is not used after that, so it
    reaches the front by its idle time). Each sweep removes only what it finds expired: O(1) per session, amortised.

    A visitor who has not logged in is not kept: `before_log_in` gives the log-in form a pre-log-in entry whose key
    (`<made at>.<random>`, in the same cookie; a session's key has no dot) is signed with this process's own secret
    into the form's CSRF token (a signed double-submit), valid for the idle time."""

    def __init__(self, *, idle_seconds: float, lifetime_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._by_key: OrderedDict[str, Session] = OrderedDict()
        self.idle_seconds, self.lifetime_seconds, self._clock = idle_seconds, lifetime_seconds, clock
        self._secret = secrets.token_bytes(32)  # a restart changes it: a log-in page from before expires, as log-ins do
        self._epoch = clock()  # pre-log-in keys count seconds from here: not the host's uptime, which the clock holds

    def __len__(self) -> int:
        """The sessions kept (expired ones not swept yet included)."""
        return len(self._by_key)

    def new(self, person: Person | None = None, *, notices: list[str] | None = None) -> Session:
        now = self._clock()
        self._sweep(now)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, person,
                          notices=notices or [])
        self._by_key[session.key] = session
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
        if session.key in self._by_key:
            self._by_key.move_to_end(session.key)

    def alive(self, session: Session) -> bool:
        """Still current (a live page asks, without keeping it alive)."""
        return self.find(session.key) is session

    def end(self, session: Session) -> None:
        self._by_key.pop(session.key, None)

    def before_log_in(self, cookie: str | None) -> Session:
        """The log-in form's pre-log-in entry: the one `cookie` holds while it is current, else a new one (its key
        goes in the cookie), so that a form shown has at least half the idle time left. Kept nowhere; logging in makes
        a new session with a new key."""
        now = self._clock()
        found = self.pre_log_in(cookie)
        if found is not None and now - found.started <= self.idle_seconds / 2:
            return found
        made = int(now - self._epoch)
        key = f"{made}.{secrets.token_urlsafe(16)}"
        return Session(key, self._sign(key), self._epoch + made, self._epoch + made)

    def pre_log_in(self, cookie: str | None) -> Session | None:
        """The pre-log-in entry `cookie` holds, if it is one this process made within the idle time (a key with
        another time in it has another token, which only a request for the log-in page with it would show)."""
        made, dot, rest = (cookie or "").partition(".")
        if not dot or not rest or not (made.isascii() and made.isdigit()) or len(cookie or "") > 100:
            return None
        now, started = self._clock(), self._epoch + int(made)
        if not 0 <= now - started <= self.idle_seconds:
            return None
        return Session(cookie or "", self._sign(cookie or ""), started, now)

    def _sign(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def _sweep(self, now: float) -> None:
        while self._by_key:
            session = next(iter(self._by_key.values()))
            if now - session.seen <= self.idle_seconds:
                return
            del self._by_key[session.key]


@dataclass(slots=True, eq=False)
class Attempt:
    """One log-in being checked: it holds a place in its address's count until it is known to have logged in, or
    failed (then it counts as a failure for `LOGIN_WINDOW_SECONDS`)."""

    counted_as: str
    over: bool = False


@dataclass(slots=True, frozen=True)
class Refusal:
    """Why an address may not try now, and for how many seconds: `failures` (it failed `attempts` times in the window),
    `checking` (its failures and the log-ins still being checked fill the limit) or `crowded` (the table of addresses
    is full and this one is not in it)."""

    reason: Literal["failures", "checking", "crowded"]
    wait: float
    checking: int = 0


@dataclass(slots=True)
class _Address:
    failures: list[float]
    """When each failed log-in within the window was known to have failed, oldest first."""
    checking: int = 0
    """Log-ins being checked."""
    last: float = 0.0
    """When its newest log-in began or ended (the table is kept in this order)."""


class LoginLimiter:
    """At most `attempts` failed log-ins per client address (`counted_as`) in a sliding `LOGIN_WINDOW_SECONDS`: what
    guards against guessing passwords from one computer (each person's own lock-out is intake's). A successful log-in
    is not counted, so a team trying the demo, or an office behind one public address, is never refused for logging in.

    A log-in holds a place from when it starts (`begin`) until it has logged in (`logged_in`) or failed (`failed`): so
    a burst of guesses sent all at once is held to the same number as guesses sent one after another. When it is the
    log-ins still being checked that fill the limit, the refusal says so and asks for a few seconds, not the window.

    Memory: an address is in the table only while it has a log-in being checked or a failure within the window (the
    table is kept in order of each address's last log-in, so the ones past the window are swept from its front as
    others arrive); at most `addresses` of them. When that many are in it, the least recently seen address with no
    log-in being checked is forgotten to make room. Refusing newcomers instead would let whoever fills the table (a
    hundred thousand IPv6 /64s, one failure each) keep everyone else from logging in; forgetting lets them wipe the
    count of an address they guess from, which gains them nothing they do not have already (each of their addresses
    has its own count), and intake's lock-out of a person after five wrong passwords stays whole."""

    def __init__(self, attempts: int, clock: Callable[[], float] = time.monotonic, *,
                 addresses: int = LOGIN_ADDRESSES_MAX) -> None:
        self.attempts, self.addresses, self._clock = attempts, addresses, clock
        self._table: OrderedDict[str, _Address] = OrderedDict()

    def __len__(self) -> int:
        """The addresses in the table."""
        return len(self._table)

    def begin(self, address: str) -> Attempt | Refusal:
        """The attempt, holding its place from now; a `Refusal` when the address may not try now."""
        now = self._clock()
        self._sweep(now)
        key = counted_as(address)
        entry = self._table.get(key)
        if entry is None:
            if len(self._table) >= self.addresses and not self._make_room():
                oldest = next(iter(self._table.values()))
                return Refusal("crowded", max(1.0, oldest.last + LOGIN_WINDOW_SECONDS - now))
            entry = self._table[key] = _Address([])
        _forget_old(entry.failures, now)
        if len(entry.failures) >= self.attempts:
            return Refusal("failures", entry.failures[0] + LOGIN_WINDOW_SECONDS - now)
        if len(entry.failures) + entry.checking >= self.attempts:
            return Refusal("checking", CHECKING_RETRY_SECONDS, entry.checking)
        entry.checking += 1
        self._used(key, entry, now)
        return Attempt(key)

    def logged_in(self, attempt: Attempt) -> None:
        """It logged in: it no longer counts."""
        self._end(attempt, failed=False)

    def failed(self, attempt: Attempt) -> None:
        """It did not log in (a wrong password, a refusal, intake not answering, the request given up): it counts as a
        failure from now."""
        self._end(attempt, failed=True)

    def _end(self, attempt: Attempt, *, failed: bool) -> None:
        if attempt.over:
            return
        attempt.over = True
        now = self._clock()
        entry = self._table.get(attempt.counted_as)
        if entry is None:  # swept as past the window while being checked (not seen to happen: checks time out in 5 s)
            if not failed:
                return
            entry = self._table[attempt.counted_as] = _Address([])
        else:
            entry.checking = max(0, entry.checking - 1)
        if failed:
            entry.failures.append(now)
            del entry.failures[:-self.attempts]  # only the newest `attempts` can matter
        self._used(attempt.counted_as, entry, now)

    def _used(self, key: str, entry: _Address, now: float) -> None:
        _forget_old(entry.failures, now)
        entry.last = now
        self._table.move_to_end(key)
        if not entry.checking and not entry.failures:
            del self._table[key]

    def _make_room(self) -> bool:
        """Forget the least recently seen address with no log-in being checked, if any (False: every one is)."""
        idle = next((key for key, entry in self._table.items() if not entry.checking), None)
        if idle is None:
            return False
        del self._table[idle]
        return True

    def _sweep(self, now: float) -> None:
        """Forget the addresses whose last log-in began or ended before the window: nothing of theirs counts any more
        (a log-in still being checked after that long is taken as given up)."""
        while self._table:
            key, entry = next(iter(self._table.items()))
            if now - entry.last <= LOGIN_WINDOW_SECONDS:
                return
            del self._table[key]


def _forget_old(failures: list[float], now: float) -> None:
    kept = next((n for n, at in enumerate(failures) if now - at <= LOGIN_WINDOW_SECONDS), len(failures))
    del failures[:kept]
