"""`reroute up`: a local NATS (unless NATS_URL is set), the three services, and optionally the sample data."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import nats
import nats.aio.client
import nats.errors
from rich.console import Console

from shared.cli.client import CliError
from shared.local_nats import free_port, port_open, start_nats_server
from shared.nats_auth import ADMIN, AgencyCredential, LocalCredentials, NatsAuthFile, inbox_prefix
from shared.processes import SERVICES, ServiceProcesses
from shared.settings import CREDENTIALS_FILE, NATS_URL_FILE, ServiceSettings
from shared.streams import provision_at
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


def _port_or_free(preferred: int) -> int:
    """The usual port when it is free, else any free one (another program may hold it)."""
    return preferred if not port_open("127.0.0.1", preferred) else free_port()


class LocalStack:
    """The processes `reroute up` owns; stops them in reverse order."""

    def __init__(self, settings: ServiceSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.nats: subprocess.Popen[bytes] | None = None
        self.services: ServiceProcesses | None = None
        self.url = ""
        self.admin_url = ""
        self.auth: NatsAuthFile | None = None

    async def start(self) -> None:
        data_dir = self.settings.data_dir
        _claim_data_dir(data_dir)
        logs = data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        per_service: dict[str, dict[str, str]] = {name: {} for name in SERVICES}
        if self.settings.nats_url:
            self.url = admin_url = self.settings.nats_url
            self.console.print(f"Using NATS at {self.url} (NATS_URL)")
        else:
            creds = LocalCredentials.load_or_create(data_dir / CREDENTIALS_FILE)
            port = free_port()
            self.auth = NatsAuthFile(data_dir / "nats-auth.conf", creds)
            self.auth.write(agencies=[])
            with self.console.status("Starting NATS with JetStream…"):
                self.nats, self.url = start_nats_server(data_dir / "nats", port=port, log_file=logs / "nats.log",
                                                        config=self.auth.path)
            (data_dir / NATS_URL_FILE).write_text(self.url)
            admin_url = creds.url(ADMIN, self.url)
            for name in SERVICES:
                per_service[name] = {"NATS_URL": creds.url(name, self.url), "REROUTE_INBOX_PREFIX": inbox_prefix(name)}
            self.console.print(f"NATS with JetStream on {self.url} (store {data_dir / 'nats'}; users and permissions "
                               f"in {self.auth.path})")
        self.admin_url = admin_url
        try:
            await provision_at([admin_url], Subjects(self.settings.namespace), replicas=self.settings.stream_replicas)
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise CliError(f"Cannot provision the streams: {type(exc).__name__}: {exc}") from None
        calendar_port = _port_or_free(8082)
        intake_port = _port_or_free(8081)
        env = {"REROUTE_DATA_DIR": str(data_dir.resolve()), "NATS_URL": self.url,
               "REROUTE_CALENDAR_PORT": str(calendar_port), "REROUTE_INTAKE_HTTP_PORT": str(intake_port)}
        self.services = ServiceProcesses(env, log_dir=logs, per_service=per_service)
        self.services.start_all()
        with self.console.status("Starting intake, risk and scheduling…"):
            await self.services.wait_ready(admin_url, Subjects(self.settings.namespace))
        self.console.print(f"Services ready: {', '.join(SERVICES)} (logs in {logs})")
        self.console.print(f"Agencies' HTTP API: http://127.0.0.1:{intake_port}/docs; calendar feeds on port "
                           f"{calendar_port}")

    async def watch(self) -> None:
        """Until Ctrl-C: restart a service that dies, so one crash does not stop the others, and keep the NATS
        server's agency users in step with the agency registry."""
        assert self.services is not None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        nc = await nats.connect(self.admin_url, max_reconnect_attempts=-1, name="reroute-up")
        try:
            while not stop.is_set():
                for name, code in self.services.exited().items():
                    self.console.print(f"[red]{name} exited with code {code}; restarting (see logs/{name}.log)[/red]")
                    self.services.start(name)
                await self._sync_agencies(nc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=2)
                except TimeoutError:
                    pass
        finally:
            await nc.close()

    async def _sync_agencies(self, nc: nats.aio.client.Client) -> None:
        """Rewrite the server's users when agencies are added, rotated or revoked, and reload it."""
        if self.auth is None or self.nats is None:
            return
        try:
            reply = await nc.request(Subjects(self.settings.namespace).rpc("intake", "agencies.nats"), b"{}", timeout=2)
            agencies = [AgencyCredential(a["agency_id"], a["password_hash"]) for a in json.loads(reply.data)["agencies"]]
        except (nats.errors.Error, TimeoutError, ValueError, KeyError):
            return  # intake is restarting (or answered oddly): try again next time
        if self.auth.write(agencies=agencies):
            self.nats.send_signal(signal.SIGHUP)

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
