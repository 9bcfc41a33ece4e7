"""Run the three services as separate OS processes (for `reroute up` and the end-to-end tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nats
import nats.errors

from shared.subjects import Subjects

SERVICES = ("intake", "risk", "scheduling")


class ServiceProcesses:
    """Starts, stops and restarts `python -m services.<name>` processes with a shared environment."""

    def __init__(self, env: Mapping[str, str], *, log_dir: Path,
                 per_service: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.env = {**os.environ, **env}
        self.per_service = per_service or {}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], env={**self.env, **self.per_service.get(name, {})},
            stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `reroute up`, which stops services in order
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

    async def wait_ready(self, nats_url: str, subjects: Subjects, names: tuple[str, ...] = SERVICES, timeout: float = 30) -> None:
        """Wait until each named service answers its ping as ready."""
        nc = await nats.connect(nats_url, max_reconnect_attempts=1, connect_timeout=5)
        try:
            deadline = time.monotonic() + timeout
            pending = set(names)
            while pending:
                for name in list(pending):
                    if name in self.exited():
                        raise RuntimeError(f"{name} exited with code {self.exited()[name]}; see {self.log_dir / (name + '.log')}")
                    try:
                        reply = await nc.request(subjects.rpc(name, "ping"), b"{}", timeout=0.5)
                        if b'"ready":true' in reply.data.replace(b" ", b""):
                            pending.discard(name)
                    except (nats.errors.Error, TimeoutError):
                        continue  # not answering yet: ask again
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"services not ready after {timeout:.0f} s: {', '.join(sorted(pending))}")
                if pending:
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()
