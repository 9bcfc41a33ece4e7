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

from sqlalchemy import Engine, text

from apps.devstack.processes import die_with_parent
from shared.db import make_engine
from shared.settings import ServiceSettings
from tests.support.waiting import wait_until

REROUTE = Path(sys.executable).with_name("reroute")
_runs = itertools.count()


def up_env(**extra: str) -> dict[str, str]:
    """The user's environment without anything that would point `reroute` at another NATS or database."""
    dropped = {"NATS_URL", "REROUTE_NATS_URL", "DATABASE_URL", "REROUTE_DATABASE_URL", "REROUTE_DATA_DIR",
               "REROUTE_NAMESPACE", "OTEL_EXPORTER_OTLP_ENDPOINT", "REROUTE_CREDENTIALS"}
    return {k: v for k, v in os.environ.items() if k not in dropped} | {
        "COLUMNS": "250", "PYTHONUNBUFFERED": "1", "REROUTE_INTAKE_HTTP_PORT": "auto", "REROUTE_CALENDAR_PORT": "auto",
        "REROUTE_CONSOLE_PORT": "auto",
        **extra}


@dataclass
class LocalUp:
    data_dir: Path
    proc: subprocess.Popen[bytes]
    out: Path
    schema_prefix: str | None = None
    """Its PostgreSQL schemas' prefix, when the run has DATABASE_URL (else SQLite files in the data dir)."""

    @classmethod
    def launch(cls, data_dir: Path, *args: str, **env: str) -> LocalUp:
        """`reroute up ARGS` on `data_dir`; on DATABASE_URL's PostgreSQL when the run has one (schemas of its own, and
        intake's keys given, as a deployment off the embedded SQLite must)."""
        run = next(_runs)
        out = data_dir.parent / f"{data_dir.name}-up-{run}.out"
        prefix = None
        if os.environ.get("DATABASE_URL"):
            from cryptography.fernet import Fernet

            from tests.support.suite import RUN_ID

            prefix = f"t{RUN_ID}up{run}{data_dir.parent.name[-6:].replace('-', '')}"
            env = {"DATABASE_URL": os.environ["DATABASE_URL"], "REROUTE_DB_SCHEMA_PREFIX": prefix,
                   "REROUTE_INTAKE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                   "REROUTE_INTAKE_MATCHING_KEY": Fernet.generate_key().decode(), **env}
        with out.open("wb") as fh:
            proc = subprocess.Popen([str(REROUTE), "up", "--data-dir", str(data_dir), *args], env=up_env(**env), stdout=fh,
                                    stderr=subprocess.STDOUT, preexec_fn=die_with_parent())  # noqa: PLW1509
        return cls(data_dir, proc, out, prefix)

    def engine(self, service: str) -> Engine:
        """The service's own database, as the service opens it."""
        return make_engine(service, ServiceSettings(  # type: ignore[call-arg]
            data_dir=self.data_dir, db_schema_prefix=self.schema_prefix,
            DATABASE_URL=os.environ.get("DATABASE_URL") if self.schema_prefix else None))

    def drop_schemas(self) -> None:
        if self.schema_prefix is None:
            return
        engine = self.engine("intake")
        with engine.begin() as conn:
            for service in ("intake", "risk", "scheduling"):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema_prefix}_{service}" CASCADE'))
        engine.dispose()

    def output(self) -> str:
        return " ".join(self.out.read_text(errors="replace").split())

    async def until_running(self) -> None:
        def running() -> bool:
            assert self.proc.poll() is None, f"reroute up exited with {self.proc.returncode}:\n{self.output()}"
            return "reroute is running" in self.output()

        await wait_until(running, timeout=120, every=0.1, what=lambda: f"reroute up running (it said: {self.output()})")

    def register_agency(self, agency_id: str = "demo") -> None:
        """`reroute agencies add`, as the first admin: `reroute submit` sends only for a registered agency."""
        done = subprocess.run([str(REROUTE), "agencies", "add", agency_id, "--name", f"Test agency {agency_id}",
                               "--data-dir", str(self.data_dir)], env=up_env(), capture_output=True, text=True,
                              timeout=90, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
