"""`reroute up`: a local NATS (unless NATS_URL is set), the three services, and optionally the sample data; then
it keeps them running until Ctrl-C (restarts with back-off, liveness pings) and holds the data dir alone."""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats
import nats.aio.client
import nats.errors
from pydantic import Field, ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from apps.cli.client import (
    LOCAL_ADMIN_FILE,
    CliError,
    person_url,
    read_credentials,
    write_credentials,
    write_private,
)
from apps.console.settings import URL_FILE as CONSOLE_URL_FILE
from apps.console.settings import is_loopback
from apps.devstack.local_nats import (
    NatsServerError,
    free_port,
    port_free,
    port_open,
    spawn_nats_server,
    start_nats_server,
)
from apps.devstack.processes import CONSOLE, NOTIFIER, SERVICES, Backoff, ServiceProcesses, describe_exit
from apps.notifier.settings import NotifierSettings
from shared.contracts.intake_rpc import AGENCY_NATS_HASHES, BOOTSTRAP_ADMIN, PEOPLE_NATS_HASHES, StaffRequest
from shared.contracts.rpc import PING, Health, Role, ServiceError, decode_reply
from shared.migrations import upgrade_all
from shared.nats_auth import (
    ADMIN,
    AGENCY_JS_API,
    PROVISIONER,
    SERVICES_ACCOUNT,
    AgencyCredential,
    LocalCredentials,
    NatsAuthFile,
    PersonCredential,
    StoreConflict,
    inbox_prefix,
    move_streams_into_account,
)
from shared.nats_auth import CONSOLE as CONSOLE_USER
from shared.nats_auth import NOTIFIER as NOTIFIER_USER
from shared.settings import (
    CREDENTIALS_FILE,
    NATS_URL_FILE,
    ConfigurationError,
    HttpPort,
    ServiceSettings,
    keep_files_private,
)
from shared.streams import provision_at
from shared.subjects import Subjects
from shared.telemetry import otlp_traces_endpoint

LOCK_FILE = "up.lock"
NATS_PORT_FILE = "nats.port"
"""The port of the data dir's own NATS, chosen on its first start and kept, so a NATS_URL written down keeps working."""
START_GRACE_SECONDS = 60.0
"""A service that has not answered since it started gets this long (at least the hung bound) before it is hung."""
RECONNECT_GRACE_SECONDS = 10.0
"""After NATS answers again, the services get the hung bound, but at least this long, to reconnect and answer."""
STOP_SECONDS = 10.0
"""SIGTERM, then SIGKILL after this long (or after the hung bound, when shorter)."""
HEALTHY_AFTER_SECONDS = 60.0
"""A process that ran this long before failing starts its back-off from 1 s again."""
PING_TIMEOUT_SECONDS = 2.0
AGENCY_SYNC_SECONDS = 2.0


class UpSettings(BaseSettings):
    """How `reroute up` watches what it runs (REROUTE_UP_*)."""

    model_config = SettingsConfigDict(env_prefix="REROUTE_UP_", extra="ignore", hide_input_in_errors=True)

    ping_seconds: float = Field(default=5, gt=0, le=300, description="How often each service is pinged.")
    hung_after_seconds: float = Field(default=30, gt=0, description="A service unanswered this long is restarted.")

    @model_validator(mode="after")
    def _at_least_one_ping(self) -> UpSettings:
        if self.hung_after_seconds < self.ping_seconds:
            raise ValueError("REROUTE_UP_HUNG_AFTER_SECONDS must be at least REROUTE_UP_PING_SECONDS")
        return self

    @classmethod
    def load(cls) -> UpSettings:
        return _load(cls, "REROUTE_UP_")


S = TypeVar("S", bound=BaseSettings)


def _load(settings: type[S], prefix: str) -> S:
    """Settings from the environment, or a ConfigurationError naming each variable that is wrong."""
    try:
        return settings()
    except ValidationError as exc:
        def named(e: ErrorDetails) -> str:
            variable = f"{prefix}{'_'.join(map(str, e['loc'])).upper()}"
            return e["msg"] if not e["loc"] or e["msg"].startswith(variable) else f"{variable}: {e['msg']}"

        problems = "; ".join(named(e) for e in exc.errors())
        raise ConfigurationError(problems) from None


# --- the data dir's one owner -------------------------------------------------------------------------------


class DataDirLock:
    """`reroute up`'s claim on its data dir: an exclusive flock on <data dir>/up.lock, held for its whole life and
    inherited by every process it starts, so the kernel lets go only when the last of them has gone, however they
    went (no stale pid to guess about). A refused claim writes nothing; the file is never deleted (a deleted lock
    file lets two claimants lock two different files)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def claim(cls, data_dir: Path, *, recorded_nats: Path | None) -> DataDirLock:
        """Lock `data_dir` or say who holds it; `recorded_nats` (nats.url) must not name a live server either."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # opening an existing file changes nothing in it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CliError(_held_message(data_dir, path)) from None
        url = recorded_nats.read_text().strip() if recorded_nats is not None and recorded_nats.exists() else ""
        if url and _nats_answers(url):
            os.close(fd)
            raise CliError(
                f"A NATS server still answers at {url}, recorded in {recorded_nats}, though no `reroute up` holds "
                f"{data_dir}: probably one an earlier reroute left running on this store. Stop it (or delete "
                f"{recorded_nats} if that server is not this store's), then start again. Nothing was started or changed.")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)


def _held_message(data_dir: Path, path: Path) -> str:
    try:
        pid: int | None = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None  # claimed this very moment, before its owner wrote its pid
    holders = _lock_holders(path)
    running = pid is not None and (pid in {p for p, _ in holders} if holders else _alive(pid))
    if running:
        return (f"reroute is already running from {data_dir} (pid {pid}). Stop it with Ctrl-C in its terminal or "
                f"`kill {pid}`, then start again. Nothing was started or changed.")
    who = ", ".join(f"{what} (pid {p})" for p, what in holders) or "a process this user cannot see"
    owner = f"the `reroute up` that started them (pid {pid}) is gone" if pid else "its owner is not known yet"
    stop = f" (`kill {' '.join(str(p) for p, _ in holders)}`)" if holders else ""
    return (f"{data_dir} is in use by {who}; {owner}. Stop them{stop}, then start again. "
            "Nothing was started or changed.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie holds nothing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _lock_holders(path: Path) -> list[tuple[int, str]]:
    """Processes that have `path` open, with what they run (Linux /proc; none found elsewhere)."""
    target = str(path.resolve())
    found: list[tuple[int, str]] = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                args = (proc / "cmdline").read_bytes().split(b"\0")
                what = " ".join(" ".join(Path(a.decode()).name for a in args[:3] if a).split())
                found.append((int(proc.name), what[:60]))
        except (OSError, ValueError):
            continue  # gone meanwhile, or another user's
    return sorted(found)


def _nats_answers(url: str) -> bool:
    """Whether a NATS server listens at `url` (a server greets every new client with INFO)."""
    try:
        host, port = url.split("://", 1)[-1].rsplit("@", 1)[-1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(4) == b"INFO"
    except (OSError, ValueError):
        return False


class Faces(BaseSettings):
    """The ports of the services' HTTP faces, read from the variables the services themselves read; `reroute up`
    keeps them across restarts, so saved API and feed links keep working."""

    model_config = SettingsConfigDict(env_prefix="REROUTE_", extra="ignore", hide_input_in_errors=True)

    intake_http_port: HttpPort = 8081
    calendar_port: HttpPort = 8082
    console_port: HttpPort = 8083

    def refuse_taken(self) -> None:
        """A fixed port another program holds is said before anything starts, with what to do."""
        for port, setting, what in ((self.intake_http_port, "REROUTE_INTAKE_HTTP_PORT", "the agencies' HTTP API"),
                                    (self.calendar_port, "REROUTE_CALENDAR_PORT", "the calendar feeds"),
                                    (self.console_port, "REROUTE_CONSOLE_PORT", "the web console")):
            if isinstance(port, int) and port and port_open("127.0.0.1", port):
                raise CliError(f"Port {port} for {what} is taken by another program: stop it, or set {setting} to "
                               "another port, to auto (any free port, a new one on each start) or to 0 (off).")


# --- supervision ----------------------------------------------------------------------------------------------


@dataclass
class Watched:
    """What `reroute up` knows of one process it keeps running."""

    name: str
    log: Path
    backoff: Backoff = field(default_factory=lambda: Backoff(healthy_after=HEALTHY_AFTER_SECONDS))
    started_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None  # last live answer since started_at
    ready: bool | None = None  # None until it answers after a start
    restarted: bool = False
    kill_at: float | None = None  # SIGTERM sent, SIGKILL due at this time (inf: sent)
    restart_at: float | None = None  # down; start again at this time
    delay: float = 0.0  # the restart delay announced while it stops

    def started(self, now: float) -> None:
        self.started_at, self.answered_at, self.ready = now, None, None
        self.kill_at = self.restart_at = None

    @property
    def steady(self) -> bool:
        """Running, and neither being stopped nor waiting to start."""
        return self.kill_at is None and self.restart_at is None


async def _quiet_error(_: Exception) -> None:
    """nats-py's callbacks: the supervisor reports NATS in its own words."""


async def _quiet_event() -> None:
    pass


class LocalStack:
    """The processes `reroute up` owns: starts them, keeps them running, stops them in reverse order."""

    def __init__(self, settings: ServiceSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.up = UpSettings.load()
        self.faces = _load(Faces, "REROUTE_")
        self.subjects = Subjects(settings.namespace)
        self.lock: DataDirLock | None = None
        self.nats: subprocess.Popen[bytes] | None = None
        self.nats_port = 0
        self.services: ServiceProcesses | None = None
        self.url = ""
        self.admin_url = ""
        self.auth: NatsAuthFile | None = None
        self.watched: dict[str, Watched] = {}
        self.console_url: str | None = None
        self._reachable = True  # NATS answered the supervisor's last flush
        self._resumed_at = 0.0  # when it answered again after not answering
        self._nc: nats.aio.client.Client | None = None

    async def _supervisor(self) -> nats.aio.client.Client:
        """The one connection `reroute up` asks and syncs users on, as the operator, from the first sync to Ctrl-C: a
        connection closing while the server reloads its users (SIGHUP) is logged as the operator's authentication
        error (`Problem registering with account "$G": connection closed`), so none closes around a reload."""
        if self._nc is None:
            self._nc = await nats.connect(self.admin_url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                          name="reroute-up", error_cb=_quiet_error, disconnected_cb=_quiet_event,
                                          reconnected_cb=_quiet_event)
        return self._nc

    @property
    def _hung_after(self) -> float:
        return self.up.hung_after_seconds

    @property
    def _stop_seconds(self) -> float:
        return min(STOP_SECONDS, self.up.hung_after_seconds)

    async def start(self) -> None:
        data_dir = self.settings.data_dir
        self.lock = DataDirLock.claim(data_dir, recorded_nats=None if self.settings.nats_url else data_dir / NATS_URL_FILE)
        keep_files_private(data_dir)  # ours now: closed to other users, even if an earlier version made it 0755
        self.faces.refuse_taken()
        logs = data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        per_service: dict[str, dict[str, str]] = {name: {} for name in (*SERVICES, CONSOLE, NOTIFIER)}
        if self.settings.nats_url:
            self.url = admin_url = provisioner_url = self.settings.nats_url
            self.console.print(f"Using NATS at {self.url} (NATS_URL)")
        else:
            creds = LocalCredentials.load_or_create(data_dir / CREDENTIALS_FILE)
            self.nats_port = self._nats_port()
            self.auth = NatsAuthFile(data_dir / "nats-auth.conf", creds)
            agencies, people = self.auth.known.load()  # as last let in: no one waits for the first sync
            self.auth.write(agencies=agencies, people=people)
            try:
                moved = move_streams_into_account(data_dir / "nats")
            except StoreConflict as exc:
                raise CliError(str(exc)) from None
            if moved:
                self.console.print(f"Streams moved into the services' NATS account ({SERVICES_ACCOUNT}): each agency "
                                   "now has an account of its own, and agencies that read their durable consumers "
                                   f"must bind them with the JetStream API prefix {AGENCY_JS_API}: tell them "
                                   "(docs/agency-changelog.md; deploy/nats-auth.md).")
            with self.console.status("Starting NATS with JetStream…"):
                self.nats, self.url = start_nats_server(
                    data_dir / "nats", port=self.nats_port, log_file=logs / "nats.log", config=self.auth.path,
                    die_with_parent=True, pass_fds=(self.lock.fd,))
            self.watched["nats-server"] = Watched("nats-server", logs / "nats.log")
            (data_dir / NATS_URL_FILE).write_text(self.url)
            admin_url, provisioner_url = creds.url(ADMIN, self.url), creds.url(PROVISIONER, self.url)
            for name in SERVICES:
                per_service[name] = {"NATS_URL": creds.url(name, self.url), "REROUTE_INBOX_PREFIX": inbox_prefix(name)}
            per_service[CONSOLE] = {"NATS_URL": creds.url(CONSOLE_USER, self.url),
                                    "REROUTE_INBOX_PREFIX": inbox_prefix(CONSOLE_USER)}
            per_service[NOTIFIER] = {"NATS_URL": creds.url(NOTIFIER_USER, self.url),
                                     "REROUTE_INBOX_PREFIX": inbox_prefix(NOTIFIER_USER)}
            self.console.print(f"NATS with JetStream on {self.url} (also in {data_dir / NATS_URL_FILE} while it runs; "
                               f"the same port on every start; pid {self.nats.pid}; store {data_dir / 'nats'}; "
                               f"users and permissions in {self.auth.path})")
        self.admin_url = admin_url
        for done in upgrade_all(self.settings):  # the schema first: services refuse to start behind head
            if done.before != done.after:
                self.console.print(f"Database of {done.service}: upgraded from {done.before or 'nothing'} to "
                                   f"{done.after}" + (" (adopted from before migrations)" if done.adopted else ""))
        try:
            await provision_at([provisioner_url], self.subjects, replicas=self.settings.stream_replicas)
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise CliError(f"Cannot provision the streams: {type(exc).__name__}: {exc}") from None
        spans = self._spans_to_console(per_service)
        env = {"REROUTE_DATA_DIR": str(data_dir.resolve()), "NATS_URL": self.url,
               "REROUTE_CALENDAR_PORT": str(self.faces.calendar_port),
               "REROUTE_INTAKE_HTTP_PORT": str(self.faces.intake_http_port),
               "REROUTE_CONSOLE_PORT": str(self.faces.console_port)}
        self.services = ServiceProcesses(env, log_dir=logs, per_service=per_service, die_with_parent=True,
                                         pass_fds=(self.lock.fd,))
        self.services.start_all()
        for name in SERVICES:
            self.watched[name] = Watched(name, self.services.log_file(name))
        with self.console.status("Starting intake, risk and scheduling…"):
            ready = await self.services.wait_ready(admin_url, self.subjects)
        await self._let_people_in()
        console_url = await self._start_console()
        pids = ", ".join(f"{name} (pid {proc.pid})" for name, proc in self.services.procs.items())
        self.console.print(f"Services ready: {pids}; logs in {logs}")
        api, feeds = ready["intake"].http_url, ready["scheduling"].http_url
        shown = f"{api} (try-it page {api}/docs)" if api else "off (REROUTE_INTAKE_HTTP_PORT=0)"
        self.console.print(f"Agencies' HTTP API: {shown}; calendar feeds: {feeds or 'off (REROUTE_CALENDAR_PORT=0)'}")
        if console_url:
            self.console.print(f"Web console: {console_url} (log in with your person id and a console password: "
                               "`reroute people console-password NAME` issues a one-time one)")
            if spans:
                self.console.print(f"Spans: to the console's span store ({spans}), read by its Traces pages and "
                                   "`reroute trace REFERRAL_ID`")
        self.console_url = console_url
        self._start_notifier(console_url)
        await self._until_admin_let_in()
        self.console.print(f"Watching them: a ping every {self.up.ping_seconds:g} s; a service that stops, or does not "
                           f"answer for {self._hung_after:g} s, is restarted.")

    def _nats_port(self) -> int:
        """The port this data dir's NATS listened on before (nats.port), while it is free; else a free one below the
        ephemeral range, kept for the next starts (and said, when it replaces one another program has taken since)."""
        kept = self.settings.data_dir / NATS_PORT_FILE
        before = kept_port(kept)
        if before is None and kept.exists():
            self.console.print(f"[yellow]{kept} does not hold a port from 1024 to 65535: choosing a new one.[/yellow]")
        if before is not None and port_free(before):
            return before
        port = stable_port()
        write_private(kept, f"{port}\n", replace=True)
        if before is not None:
            self.console.print(f"[yellow]Port {before}, where this data dir's NATS listened before, is taken by another "
                               f"program: NATS listens on {port} from now on (kept in {kept}). Clients you pointed "
                               f"at port {before} (the README's submit.py, an agency's test client) now need "
                               f"nats://127.0.0.1:{port}; {self.settings.data_dir / NATS_URL_FILE} holds it while reroute "
                               "runs.[/yellow]")
        return port

    def _spans_to_console(self, per_service: dict[str, dict[str, str]]) -> str | None:
        """When the console runs here on plain http (loopback) and no tracing backend is set (OTEL_EXPORTER_OTLP_*):
        the services send their spans to its OTLP receiver (REROUTE_CONSOLE_SPANS_URL, as compose and Kubernetes do)
        with a token made for this run (REROUTE_CONSOLE_SPANS_TOKEN; the console's port fixed now, a free one for
        `auto`, so the services know it before it starts); returns the receiver's URL, or None when spans go where
        the OTEL_* variables say, or to the span files."""
        host = os.environ.get("REROUTE_CONSOLE_HOST", "127.0.0.1").strip() or "127.0.0.1"
        if (not self.faces.console_port or otlp_traces_endpoint() is not None or not is_loopback(host)
                or os.environ.get("REROUTE_CONSOLE_TLS_CERT")):
            return None
        if self.faces.console_port == "auto":
            self.faces.console_port = free_port()
        token = secrets.token_urlsafe(32)
        url = f"http://{f'[{host}]' if ':' in host else host}:{self.faces.console_port}/v1/traces"
        per_service[CONSOLE]["REROUTE_CONSOLE_SPANS_TOKEN"] = token
        for name in SERVICES:  # as compose and Kubernetes point them at the console (shared/telemetry.py)
            per_service[name] |= {"REROUTE_CONSOLE_SPANS_URL": url, "REROUTE_CONSOLE_SPANS_TOKEN": token}
        return url

    def _start_notifier(self, console_url: str | None) -> None:
        """Start the safeguarding notifier and say whether alerts are emailed (loudly when they are not); its emails
        link to this console unless REROUTE_CONSOLE_URL says otherwise."""
        assert self.services is not None
        if console_url and not os.environ.get("REROUTE_CONSOLE_URL"):
            self.services.per_service.setdefault(NOTIFIER, {})["REROUTE_CONSOLE_URL"] = console_url
        try:
            mail = NotifierSettings()
        except ValidationError as exc:
            raise CliError(f"The safeguarding notifier's configuration is wrong: "
                           f"{'; '.join(e['msg'] for e in exc.errors())}") from None
        self.services.start(NOTIFIER)
        self.watched[NOTIFIER] = Watched(NOTIFIER, self.services.log_file(NOTIFIER))
        if (off := mail.mail_off) is not None:
            self.console.print(f"[bold red]Safeguarding alert emails are OFF: {off}.[/bold red]")
        else:
            self.console.print(f"Safeguarding alerts are emailed to {', '.join(mail.leads)} through {mail.smtp_host}; "
                               f"overdue ones to {', '.join(mail.deputies) or 'NOBODY (REROUTE_ALERT_DEPUTY_EMAILS)'}")

    async def _start_console(self) -> str | None:
        """Start the web console (unless REROUTE_CONSOLE_PORT=0) and wait for the address it writes."""
        assert self.services is not None
        if not self.faces.console_port:
            return None
        written = self.settings.data_dir / CONSOLE_URL_FILE
        written.unlink(missing_ok=True)
        self.services.start(CONSOLE)
        self.watched[CONSOLE] = Watched(CONSOLE, self.services.log_file(CONSOLE))
        deadline = time.monotonic() + START_GRACE_SECONDS
        while not (written.exists() and written.read_text().strip()):
            if (code := self.services.procs[CONSOLE].poll()) is not None:
                raise CliError(f"The web console exited with code {describe_exit(code)} as it started; see "
                               f"{self.services.log_file(CONSOLE)} (REROUTE_CONSOLE_PORT=0 runs without it)")
            if time.monotonic() > deadline:
                raise CliError(f"The web console did not start within {START_GRACE_SECONDS:g} s; see "
                               f"{self.services.log_file(CONSOLE)}")
            await asyncio.sleep(0.1)
        return written.read_text().strip()

    async def watch(self) -> None:
        """Until Ctrl-C (or SIGTERM, SIGHUP): restart nats-server and services that exit, and services that are
        hung or say they are not live, each with its own back-off; report services that are not ready; keep the
        NATS server's agency users in step with the agency registry."""
        assert self.services is not None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        nc = await self._supervisor()
        tick = min(0.5, self.up.ping_seconds / 2)
        next_ping = next_sync = 0.0
        pinging: asyncio.Task[None] | None = None
        syncing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                now = time.monotonic()
                self._tend_nats(now)
                for name in (*SERVICES, *(app for app in (CONSOLE, NOTIFIER) if app in self.watched)):
                    self._tend_service(name, now)
                for task in (pinging, syncing):
                    if task is not None and task.done():
                        task.result()  # a bug in a round stops `reroute up` (and so everything) loudly
                if (pinging is None or pinging.done()) and now >= next_ping:
                    next_ping = now + self.up.ping_seconds
                    pinging = asyncio.create_task(self._ping_round(nc))
                if (syncing is None or syncing.done()) and now >= next_sync:
                    next_sync = now + AGENCY_SYNC_SECONDS
                    syncing = asyncio.create_task(self._sync_agencies(nc))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=tick)
                except TimeoutError:
                    pass
        finally:
            for task in (pinging, syncing):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (pinging, syncing) if t is not None), return_exceptions=True)
            await self.disconnect()

    async def disconnect(self) -> None:
        """Close the supervisor's connection, if open: before NATS is stopped, so that it does not reconnect for
        ever to a server that is gone (a start that failed half-way included)."""
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), timeout=5)
            except (TimeoutError, OSError, nats.errors.Error):  # gone already: nothing left to close
                pass

    # A process's round: running -> (exited | hung | not live) -> stopping -> waiting out its back-off -> running.

    def _tend_service(self, name: str, now: float) -> None:
        assert self.services is not None
        w = self.watched[name]
        if w.restart_at is not None:
            if now >= w.restart_at:
                try:
                    self.services.start(name)
                except OSError as exc:
                    self._retry_later(w, f"{name} could not be started ({exc})", now)
                    return
                w.started(now)
                w.restarted = True
            return
        proc = self.services.procs.get(name)
        if proc is not None:
            self._tend_process(w, proc, now)

    def _tend_nats(self, now: float) -> None:
        w = self.watched.get("nats-server")
        if w is None or self.nats is None or self.lock is None or self.auth is None:
            return  # NATS_URL: someone else's server
        if w.restart_at is not None:
            if now >= w.restart_at:
                try:
                    self.nats = spawn_nats_server(
                        self.settings.data_dir / "nats", port=self.nats_port, log_file=w.log, config=self.auth.path,
                        die_with_parent=True, pass_fds=(self.lock.fd,))
                except (OSError, NatsServerError) as exc:
                    self._retry_later(w, f"nats-server could not be started ({exc})", now)
                    return
                w.started(now)
                w.restarted = True
            return
        self._tend_process(w, self.nats, now)

    def _tend_process(self, w: Watched, proc: subprocess.Popen[bytes], now: float) -> None:
        code = proc.poll()
        if code is None:
            if w.kill_at is not None and now >= w.kill_at:
                proc.kill()  # SIGTERM was not enough
                w.kill_at = math.inf
            return
        if w.kill_at is not None:  # stopped on purpose: why, and when it starts again, were said already
            w.kill_at, w.restart_at = None, now + w.delay
            return
        delay = w.backoff.next(now - w.started_at)
        where = f" (same port {self.nats_port}, store and configuration)" if w.name == "nats-server" else ""
        self.console.print(f"[red]{w.name} exited with code {describe_exit(code)}; restarting it in {delay:g} s"
                           f"{where} (log {w.log})[/red]")
        w.restart_at = now + delay

    def _stop_to_restart(self, w: Watched, proc: subprocess.Popen[bytes], why: str, now: float) -> None:
        w.delay = w.backoff.next(now - w.started_at)
        self.console.print(f"[red]{why}; stopping it (SIGTERM, SIGKILL after {self._stop_seconds:g} s), then "
                           f"restarting it in {w.delay:g} s (log {w.log})[/red]")
        proc.send_signal(signal.SIGTERM)
        w.kill_at = now + self._stop_seconds

    def _retry_later(self, w: Watched, why: str, now: float) -> None:
        delay = w.backoff.next(0)
        self.console.print(f"[red]{why}; trying again in {delay:g} s (log {w.log})[/red]")
        w.restart_at = now + delay

    # Liveness and readiness.

    async def _ping_round(self, nc: nats.aio.client.Client) -> None:
        """Is NATS answering? Then ping every steady service at once (a hung one delays no other)."""
        reachable = nc.is_connected
        if reachable:
            try:
                await nc.flush(timeout=math.ceil(PING_TIMEOUT_SECONDS))
            except (nats.errors.Error, TimeoutError):
                reachable = False
        now = time.monotonic()
        self._judge_nats(reachable, now)
        if not reachable:
            self._reachable = False  # unanswered pings would say nothing about the services
            return
        if not self._reachable:
            self._reachable, self._resumed_at = True, now  # services reconnect too: a fresh grace
        assert self.services is not None
        asked = {name: proc.pid for name, proc in self.services.procs.items()
                 if name in SERVICES and self.watched[name].steady and proc.poll() is None}  # the console: no ping
        replies = await asyncio.gather(*(self._ping(nc, name) for name in asked))
        now = time.monotonic()
        for (name, pid), reply in zip(asked.items(), replies, strict=True):
            self._judge_service(name, pid, reply, now)

    async def _ping(self, nc: nats.aio.client.Client, name: str) -> Health | None:
        try:
            reply = await nc.request(self.subjects.rpc(name, PING.verb), b"{}", timeout=PING_TIMEOUT_SECONDS)
            return decode_reply(PING, reply.data)
        except (nats.errors.Error, TimeoutError, ServiceError):
            return None

    def _judge_nats(self, reachable: bool, now: float) -> None:
        """Our nats-server is hung when it answered since it started and then stopped answering for the bound
        (never before its first answer: recovering a large store takes as long as it takes)."""
        w = self.watched.get("nats-server")
        if w is None or self.nats is None or not w.steady or self.nats.poll() is not None:
            return
        if reachable:
            w.answered_at = now
        elif w.answered_at is not None and now - w.answered_at > self._hung_after:
            self._stop_to_restart(w, self.nats, f"nats-server (pid {self.nats.pid}) has not answered for "
                                                f"{now - w.answered_at:.0f} s", now)

    def _judge_service(self, name: str, pid: int, reply: Health | None, now: float) -> None:
        assert self.services is not None
        w, proc = self.watched[name], self.services.procs.get(name)
        if proc is None or proc.pid != pid or not w.steady or proc.poll() is not None:
            return  # it changed while we asked
        if reply is not None and reply.pid == pid:
            problems = "; ".join(reply.problems) or "no reason given"
            if not reply.live:
                self._stop_to_restart(w, proc, f"{name} (pid {pid}) says it is not live: {problems}", now)
                return
            w.answered_at = now
            self._report_readiness(w, pid, ready=reply.ready, problems=problems, now=now)
            return
        if reply is not None:
            return  # another replica of it answered: that says nothing about ours
        since = max(w.started_at, self._resumed_at)
        if w.answered_at is None or w.answered_at < since:
            after_start = since == w.started_at
            grace = max(START_GRACE_SECONDS if after_start else RECONNECT_GRACE_SECONDS, self._hung_after)
            if now - since > grace:
                what = "it started" if after_start else "NATS answered again"
                self._stop_to_restart(w, proc, f"{name} (pid {pid}) has not answered its ping in {now - since:.0f} s "
                                               f"since {what}", now)
        elif now - w.answered_at > self._hung_after:
            self._stop_to_restart(w, proc, f"{name} (pid {pid}) has not answered its ping for "
                                           f"{now - w.answered_at:.0f} s", now)

    def _report_readiness(self, w: Watched, pid: int, *, ready: bool, problems: str, now: float) -> None:
        """Once when a service turns not ready, once when it is ready again; never a restart for it."""
        if ready:
            if w.ready is False:
                self.console.print(f"[green]{w.name} is ready again[/green]")
            elif w.ready is None and w.restarted:
                self.console.print(f"[green]{w.name} is back (pid {pid})[/green]")
            w.ready = True
        elif w.ready is True or (w.ready is None and now - w.started_at > START_GRACE_SECONDS):
            self.console.print(f"[yellow]{w.name} is not ready: {problems}; not restarting it (it waits for what it "
                               "depends on)[/yellow]")
            w.ready = False

    async def _sync_agencies(self, nc: nats.aio.client.Client) -> None:
        """Rewrite the server's users when agencies are added, rotated or revoked, or people added or removed, and
        reload it: the server then lets the new in and drops the connections of the removed."""
        if self.auth is None or self.nats is None or not nc.is_connected:
            return
        try:
            reply = await nc.request(self.subjects.rpc("intake", AGENCY_NATS_HASHES.verb), b"{}", timeout=2)
            hashes = decode_reply(AGENCY_NATS_HASHES, reply.data).agencies
            agencies = [AgencyCredential(a.agency_id, a.password_hash) for a in hashes]
            reply = await nc.request(self.subjects.rpc("intake", PEOPLE_NATS_HASHES.verb), b"{}", timeout=2)
            people = [PersonCredential(p.person_id, tuple(p.roles), p.password_hash)
                      for p in decode_reply(PEOPLE_NATS_HASHES, reply.data).people]
        except (nats.errors.Error, TimeoutError, ServiceError):
            return  # intake is restarting (or answered oddly): try again next time
        added = {a.agency_id for a in agencies} - self.auth.agency_ids
        if self.auth.write(agencies=agencies, people=people) and not await self._reload(times=2 if added else 1):
            self.auth.forget()  # not known to be in force: written and reloaded again at the next sync

    async def _reload(self, *, times: int) -> bool:
        """Have the server reload its users `times` times, each once it has said it finished the one before (it says
        so only in its log, read on from where it ended before each was asked for): a reply to a request made while
        it reloads is refused (a publish violation), and a user it has not loaded yet is logged as an authentication
        error. An agency's account added by a reload reaches the services' account only after a second one
        (nats-server 2.15: until then its submissions get no answer), so adding an agency takes two. False when one
        failed or was not seen to finish."""
        for _ in range(times):
            if self.nats is None or self.nats.poll() is not None:
                return False
            log = ReloadLog(self.settings.data_dir / "logs" / "nats.log")
            self.nats.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while (said := log.said()) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if said is None:
                self.console.print("[yellow]NATS has not said within 10 s that it reloaded its users (logs/nats.log): "
                                   "it is asked again at the next sync.[/yellow]")
                return False
            if not said:
                self.console.print("[red]NATS could not reload its users: see logs/nats.log (the users it had before "
                                   "still apply; it is asked again at the next sync).[/red]")
                return False
        return True

    async def _let_people_in(self) -> None:
        """On its own server only: its users as the registry has them now (not seconds later), and, on a first start,
        the first admin (every role, for one person trying reroute on their own machine), with credentials in the
        data dir, which the CLI uses when REROUTE_CREDENTIALS is not set."""
        if self.auth is None:
            return
        path = self.settings.data_dir / LOCAL_ADMIN_FILE
        nc = await self._supervisor()
        if not path.exists():
            reply = await nc.request(self.subjects.rpc("intake", BOOTSTRAP_ADMIN.verb), StaffRequest(
                person_id="admin", roles=list(Role)).model_dump_json().encode(), timeout=10)
            try:
                write_credentials(path, decode_reply(BOOTSTRAP_ADMIN, reply.data).credentials)
                self.console.print(f"First admin made for local use: `admin`, with every role (credentials in "
                                   f"{path}; the CLI acts as admin unless REROUTE_CREDENTIALS names another "
                                   "person's file). Add people with `reroute people add NAME --role ROLE`.")
            except ServiceError as exc:
                self.console.print(f"[yellow]No local admin made ({exc.message}); {path} is gone, so use your "
                                   "own credentials (REROUTE_CREDENTIALS).[/yellow]")
        await self.sync_users()

    async def _until_admin_let_in(self) -> None:
        """Asked last in `start`, so that the server has reloaded its users meanwhile (each refused try is logged as
        an authentication error)."""
        path = self.settings.data_dir / LOCAL_ADMIN_FILE
        if self.auth is not None and path.exists():
            await self._until_let_in(person_url(self.settings, read_credentials(path)))

    async def sync_users(self) -> None:
        """On its own server: its users as the registry has them now, not at the next sync, once the server has
        finished reloading them (`_reload`)."""
        if self.auth is not None:
            await self._sync_agencies(await self._supervisor())

    async def _until_let_in(self, url: str, *, who: str = "the first admin") -> None:
        """The server reloads its users after SIGHUP in its own time: wait until it lets the person in."""
        deadline = time.monotonic() + 10
        while True:
            try:
                await (await nats.connect(url, allow_reconnect=False, connect_timeout=2, error_cb=_quiet_error)).close()
                return
            except (OSError, TimeoutError, nats.errors.Error):
                if time.monotonic() > deadline:
                    raise CliError(f"The local NATS server did not let {who} in after reloading its users; "
                                   f"see {self.settings.data_dir / 'logs' / 'nats.log'}") from None
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.lock is None:
            return  # refused: nothing here is ours to stop or clean
        if self.services is not None:
            self.console.print("Stopping services…")
            self.services.stop(CONSOLE)  # the services' clients first
            self.services.stop(NOTIFIER)
            self.services.stop_all()
        if self.nats is not None:
            self.nats.terminate()
            try:
                self.nats.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nats.kill()
                self.nats.wait()
            (self.settings.data_dir / NATS_URL_FILE).unlink(missing_ok=True)
        self.lock.release()
        self.lock = None
        self.console.print("Stopped.")


def kept_port(path: Path) -> int | None:
    """The port in `path` (nats.port), if it holds one a server here could listen on."""
    try:
        port = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 1024 <= port <= 65535 else None


def stable_port() -> int:
    """A free port from 20000 to 32767, below Linux's ephemeral range, so that no outgoing connection or another
    data dir's first pick is likely to take it between starts (an ephemeral one if none of 200 tries is free)."""
    for _ in range(200):
        port = random.randint(20000, 32767)  # a port number, not a secret
        if port_free(port):
            return port
    return free_port()


class ReloadLog:
    """What nats-server's log says after this was made: whether it reloaded its configuration or failed to."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._at = self._size()

    def _size(self) -> int:
        try:
            return self._path.stat().st_size
        except OSError:
            return 0

    def said(self) -> bool | None:
        """True once it says it reloaded, False if it says it failed to, None while it says neither."""
        if self._size() < self._at:  # truncated or replaced meanwhile: read it from the start
            self._at = 0
        try:
            with self._path.open("rb") as f:
                f.seek(self._at)
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        if "Failed to reload" in text:
            return False
        return True if "Reloaded server configuration" in text else None

