"""`reroute up`: a local NATS (unless NATS_URL is set), the three services, and optionally the sample data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from rich.console import Console

from shared.cli.client import CliError
from shared.local_nats import start_nats_server
from shared.processes import SERVICES, ServiceProcesses
from shared.settings import NATS_URL_FILE, ServiceSettings
from shared.subjects import Subjects

PID_FILE = "up.pid"


def _claim_data_dir(data_dir: Path) -> None:
    pid_file = data_dir / PID_FILE
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            pass  # stale: the last `reroute up` did not stop cleanly
        else:
            raise CliError(f"reroute is already running from {data_dir} (pid {pid}); stop it first with Ctrl-C there.")
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))


class LocalStack:
    """The processes `reroute up` owns; stops them in reverse order."""

    def __init__(self, settings: ServiceSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.nats: subprocess.Popen[bytes] | None = None
        self.services: ServiceProcesses | None = None
        self.url = ""

    async def start(self) -> None:
        data_dir = self.settings.data_dir
        _claim_data_dir(data_dir)
        logs = data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if self.settings.nats_url:
            self.url = self.settings.nats_url
            self.console.print(f"Using NATS at {self.url} (NATS_URL)")
        else:
            with self.console.status("Starting NATS with JetStream…"):
                self.nats, self.url = start_nats_server(data_dir / "nats", log_file=logs / "nats.log")
            (data_dir / NATS_URL_FILE).write_text(self.url)
            self.console.print(f"NATS with JetStream on {self.url} (store {data_dir / 'nats'})")
        env = {"REROUTE_DATA_DIR": str(data_dir.resolve()), "NATS_URL": self.url}
        self.services = ServiceProcesses(env, log_dir=logs)
        self.services.start_all()
        with self.console.status("Starting intake, risk and scheduling…"):
            await self.services.wait_ready(self.url, Subjects(self.settings.namespace))
        self.console.print(f"Services ready: {', '.join(SERVICES)} (logs in {logs})")

    async def watch(self) -> None:
        """Until Ctrl-C: restart a service that dies, so one crash does not stop the others."""
        assert self.services is not None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            for name, code in self.services.exited().items():
                self.console.print(f"[red]{name} exited with code {code}; restarting (see logs/{name}.log)[/red]")
                self.services.start(name)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1)
            except TimeoutError:
                pass

    def stop(self) -> None:
        if self.services is not None:
            self.console.print("Stopping services…")
            self.services.stop_all()
        if self.nats is not None:
            self.nats.terminate()
            try:
                self.nats.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nats.kill()
            (self.settings.data_dir / NATS_URL_FILE).unlink(missing_ok=True)
        (self.settings.data_dir / PID_FILE).unlink(missing_ok=True)
        self.console.print("Stopped.")
