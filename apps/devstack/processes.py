"""Run the three services as separate OS processes (for `reroute up` and the end-to-end tests)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import nats
import nats.errors

from shared.contracts.rpc import PING, Health, ServiceError, decode_reply
from shared.subjects import Subjects

SERVICES = ("intake", "risk", "scheduling")
CONSOLE = "console"
"""The web console (`python -m apps.console`), which `reroute up` runs beside the services."""
NOTIFIER = "notifier"
"""The safeguarding notifier (`python -m apps.notifier`), which `reroute up` runs beside the services."""


def module_of(name: str) -> str:
    """What `python -m` runs for a process name: a service's package, or an application's (console, notifier)."""
    return f"apps.{name}" if name in (CONSOLE, NOTIFIER) else f"services.{name}"

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once here: a child between fork and exec should do as little as it can."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    fn: Callable[..., int] = prctl
    return fn


_prctl = _load_prctl()


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGKILL the child when this process dies, however it dies (SIGKILL
    included); None where there is no PR_SET_PDEATHSIG (not Linux), so nothing is done there.

    The kernel ties the signal to the *thread* that forked, so this refuses to be used off the main thread (a
    worker thread's exit would kill the child)."""
    prctl = _prctl
    if prctl is None:
        return None
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("start processes that die with their parent from the main thread only")
    parent, sigkill = os.getpid(), int(signal.SIGKILL)

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the line above took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def describe_exit(code: int) -> str:
    """An exit code as a person reads it: `1`, or `-9 (SIGKILL)` for a signal."""
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


class Backoff:
    """Delays before restarting something that keeps failing: 1, 2, 4 … `cap` seconds, from 1 again once it
    has run for `healthy_after` seconds before failing."""

    def __init__(self, *, first: float = 1, cap: float = 30, healthy_after: float = 60) -> None:
        self.first = first
        self.cap = cap
        self.healthy_after = healthy_after
        self.failures = 0

    def next(self, ran_for: float) -> float:
        """The delay before the next start, after a run of `ran_for` seconds that just ended."""
        if ran_for >= self.healthy_after:
            self.failures = 0
        delay = min(self.cap, self.first * (1 << min(self.failures, 30)))
        self.failures += 1
        return delay


class ServiceProcesses:
    """Starts, stops and restarts `python -m services.<name>` processes with a shared environment.

    `die_with_parent`: the kernel kills each service when this process dies (Linux; see `die_with_parent()`);
    `pass_fds`: descriptors each service inherits (`reroute up` passes its data-dir lock)."""

    def __init__(self, env: Mapping[str, str], *, log_dir: Path,
                 per_service: Mapping[str, Mapping[str, str]] | None = None, die_with_parent: bool = False,
                 pass_fds: Sequence[int] = ()) -> None:
        self.env = {**os.environ, **env}
        self.per_service: dict[str, dict[str, str]] = {k: dict(v) for k, v in (per_service or {}).items()}
        self.log_dir = log_dir
        self.die_with_parent = die_with_parent
        self.pass_fds = tuple(pass_fds)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(name).open("ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", module_of(name)], env={**self.env, **self.per_service.get(name, {})},
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches `reroute up`, which stops services in order
                # a minimal preexec (one pre-resolved libc call), safe enough beside the threads asyncio keeps
                preexec_fn=die_with_parent() if self.die_with_parent else None,  # noqa: PLW1509
                pass_fds=self.pass_fds,
            )

    def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)

    def stop(self, name: str, *, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self, name: str) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def exited(self) -> dict[str, int]:
        """Services whose process has ended, with exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    async def wait_ready(self, nats_url: str, subjects: Subjects, names: tuple[str, ...] = SERVICES,
                         timeout: float = 30) -> dict[str, Health]:
        """Wait until each named service answers its ping as ready; returns those ping replies (the service's
        `http_url` among them)."""
        nc = await nats.connect(nats_url, max_reconnect_attempts=1, connect_timeout=5)
        try:
            deadline = time.monotonic() + timeout
            replies: dict[str, Health] = {}
            while True:
                for name in (n for n in names if n not in replies):
                    if name in self.exited():
                        raise RuntimeError(f"{name} exited with code {self.exited()[name]}; see {self.log_file(name)}")
                    try:
                        reply = decode_reply(PING, (await nc.request(subjects.rpc(name, PING.verb), b"{}",
                                                                     timeout=0.5)).data)
                    except (nats.errors.Error, TimeoutError, ServiceError):
                        continue  # not answering (sensibly) yet: ask again
                    if reply.ready:
                        replies[name] = reply
                if not (pending := [n for n in names if n not in replies]):
                    return replies
                if time.monotonic() > deadline:
                    raise TimeoutError(f"services not ready after {timeout:.0f} s: {', '.join(sorted(pending))}")
                await asyncio.sleep(0.2)
        finally:
            await nc.close()
