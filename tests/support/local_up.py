"""`reroute up` run as a person runs it, for tests that need the whole local stack: its own NATS server with users
and permissions, the three services, the first admin."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from apps.devstack.processes import die_with_parent
from tests.support.waiting import wait_until

REROUTE = Path(sys.executable).with_name("reroute")
_runs = itertools.count()


def up_env(**extra: str) -> dict[str, str]:
    """The user's environment without anything that would point `reroute` at another NATS or database."""
    dropped = {"NATS_URL", "REROUTE_NATS_URL", "DATABASE_URL", "REROUTE_DATABASE_URL", "REROUTE_DATA_DIR",
               "REROUTE_NAMESPACE", "OTEL_EXPORTER_OTLP_ENDPOINT", "REROUTE_CREDENTIALS"}
    return {k: v for k, v in os.environ.items() if k not in dropped} | {
        "COLUMNS": "250", "PYTHONUNBUFFERED": "1", "REROUTE_INTAKE_HTTP_PORT": "auto", "REROUTE_CALENDAR_PORT": "auto",
        **extra}


@dataclass
class LocalUp:
    data_dir: Path
    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def launch(cls, data_dir: Path, **env: str) -> LocalUp:
        out = data_dir.parent / f"{data_dir.name}-up-{next(_runs)}.out"
        with out.open("wb") as fh:
            proc = subprocess.Popen([str(REROUTE), "up", "--data-dir", str(data_dir)], env=up_env(**env), stdout=fh,
                                    stderr=subprocess.STDOUT, preexec_fn=die_with_parent())  # noqa: PLW1509
        return cls(data_dir, proc, out)

    def output(self) -> str:
        return " ".join(self.out.read_text(errors="replace").split())

    async def until_running(self) -> None:
        def running() -> bool:
            assert self.proc.poll() is None, f"reroute up exited with {self.proc.returncode}:\n{self.output()}"
            return "reroute is running" in self.output()

        await wait_until(running, timeout=120, every=0.1, what=lambda: f"reroute up running (it said: {self.output()})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
