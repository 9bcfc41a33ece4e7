"""The fault rig: a whole reroute stack under load, a fault injected while every stage has a backlog, and an
exact count afterwards of what each referral became.

Everything is real: its own nats-server (so the broker can be killed and restarted on the same store), the
three services as processes, SQLite files or a PostgreSQL database of its own. Every wait is bounded and
awaits a condition; the load stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError

from apps.devstack.local_nats import free_port, nats_server_binary, start_nats_server
from apps.devstack.processes import SERVICES, ServiceProcesses
from shared.migrations import upgrade_all
from shared.settings import ServiceSettings
from shared.streams import provision_at
from shared.subjects import Subjects
from tests.support.waiting import wait_until

BOROUGHS = ["Hackney", "Lambeth", "Southwark", "Newham", "Croydon", "Brent", "Haringey", "Lewisham"]
INDICATORS = ["peers_offending", "unstructured_time", "substance_use", "ete_disengaged", "family_conflict",
              "weapon_carrying", "missing_episodes", "unexplained_money"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat"]


def _letters(i: int) -> str:
    """Letters only: intake matches people on the letters of their names, so digits would merge them."""
    word = ""
    while True:
        i, rest = divmod(i, 26)
        word = chr(ord("a") + rest) + word
        if i == 0:
            return word


def referral_body(arid: str, i: int, rng: random.Random) -> bytes:
    return json.dumps({
        "agency_referral_id": arid,
        "referrer": {"name": "Fault Referrer", "role": "YOT case manager", "email": "faults@example.org"},
        "young_person": {"given_name": "Fault", "family_name": f"Person{_letters(i)}", "date_of_birth": "2010-03-04",
                         "gender": rng.choice(["male", "female"]), "borough": rng.choice(BOROUGHS),
                         "languages": ["en"]},
        "consent": {"given": True, "recorded_at": "2026-11-20T10:00:00+00:00"},
        "reason": "Fault-injection referral.",
        "indicators": rng.sample(INDICATORS, 3),
    }).encode()


def mentor_records(n: int, rng: random.Random) -> list[dict[str, Any]]:
    return [{
        "id": f"fm-{i}", "name": f"Fault Mentor {i}", "kind": "staff", "boroughs": rng.sample(BOROUGHS, 3),
        "languages": ["en"], "gender": rng.choice(["male", "female"]), "max_caseload": 15,
        "vetting": {"enhanced_check_expires": "2029-01-01"},
        "availability": [{"day": d, "start": "09:00", "end": "18:00"} for d in DAYS],
    } for i in range(n)]


@dataclass
class Figures:
    """What the streams hold after a fault: every referral should have reached exactly one outcome."""

    scenario: str
    submitted: int
    accepted: int = 0
    assessed: int = 0
    outcomes: int = 0
    lost: int = 0
    duplicated: int = 0
    double_booked: int = 0
    backlog_at_fault: dict[str, int] = field(default_factory=dict)
    drain_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.scenario}: submitted {self.submitted}, accepted {self.accepted}, assessed {self.assessed}, "
                f"outcomes {self.outcomes}, lost {self.lost}, duplicated {self.duplicated}, double-booked "
                f"{self.double_booked}, drained {self.drain_seconds:.1f} s after the fault cleared; backlog at "
                f"the fault: {self.backlog_at_fault}")


@dataclass
class Node:
    """One nats-server of the rig (one of three in a cluster), with its own store. A lone node's port is 0 until
    its first start, where nats-server binds a free one itself; a restart takes the same port again."""

    name: str
    port: int
    cluster_port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class Rig:
    """A stack of its own: nats-server (one, or a three-node JetStream cluster with routes on loopback), the
    three services, and a connection that watches like an operator."""

    def __init__(self, root: Path, *, database_url: str | None, nodes: int = 1, replicas: int = 1,
                 services_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.database_url = database_url
        if nodes == 1:
            self.nodes = [Node("n0", 0, 0, root / "nats-store-0")]
        else:  # each node's routes name the others' cluster ports before any of them listens, so they are chosen here
            self.nodes = [Node(f"n{i}", free_port(), free_port(), root / f"nats-store-{i}") for i in range(nodes)]
        self.replicas = 3 if nodes >= 3 else 1
        self.subjects = Subjects()
        self.agency = f"fault-{uuid.uuid4().hex[:6]}"
        env = {
            "REROUTE_DATA_DIR": str(root / "data"),
            "REROUTE_LOG_LEVEL": "INFO",
            "REROUTE_CALENDAR_PORT": "0",
            "REROUTE_INTAKE_HTTP_PORT": "0",
            "REROUTE_PLAN_EVERY_MINUTES": "0",
            **(services_env or {}),
        }
        if database_url:
            from cryptography.fernet import Fernet

            env["DATABASE_URL"] = database_url
            env["REROUTE_DB_SCHEMA_PREFIX"] = "fault"
            env["REROUTE_INTAKE_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
            env["REROUTE_INTAKE_MATCHING_KEY"] = Fernet.generate_key().decode()
        self.services = ServiceProcesses(env, log_dir=root / "logs")
        self.services.env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        if not database_url:
            self.services.env.pop("DATABASE_URL", None)
        self.others = [ServiceProcesses(self.services.env, log_dir=root / f"logs-replica-{i}") for i in range(1, replicas)]
        """Further replicas of every service, on the same database and NATS (they share the durable consumers)."""
        self.nc: Client | None = None
        self.arids: list[str] = []

    # --- the broker -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def servers(self) -> list[str]:
        """Every node: a service fails over to another."""
        return [n.url for n in self.nodes]

    def start_nats(self) -> None:
        for node in self.nodes:
            if node.proc is None:
                self.start_node(node)

    def start_node(self, node: Node) -> None:
        if len(self.nodes) == 1:
            node.proc, url = start_nats_server(node.store, port=node.port or None, log_file=self.root / "nats.log")
            node.port = int(url.rsplit(":", 1)[1])
            return
        routes = ",".join(f"nats://127.0.0.1:{n.cluster_port}" for n in self.nodes if n is not node)
        node.store.mkdir(parents=True, exist_ok=True)
        node.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(node.port), "-js", "-sd", str(node.store),
             "-n", node.name, "--cluster_name", "reroute-faults", "--cluster", f"nats://127.0.0.1:{node.cluster_port}",
             "--routes", routes, "-l", str(self.root / f"nats-{node.name}.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def kill_node(self, node: Node) -> None:
        """SIGKILL, as a crash or a pulled plug would: the store stays."""
        assert node.proc is not None
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait()
        node.proc = None

    def kill_nats(self) -> None:
        for node in self.nodes:
            self.kill_node(node)

    async def stream_leader(self, stream: str) -> Node:
        assert self.nc is not None
        info = await self.nc.jetstream().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader, info
        return next(n for n in self.nodes if n.name == info.cluster.leader)

    # --- lifecycle --------------------------------------------------------------------------------------
    async def start(self, *, mentors: int) -> None:
        self.start_nats()
        servers = self.servers
        for replicas in (self.services, *self.others):
            replicas.env["NATS_URL"] = ",".join(servers)

        async def provisioned() -> bool:  # a cluster needs a moment to elect its meta leader
            try:
                await provision_at(servers, self.subjects, replicas=self.replicas)
            except (nats.errors.Error, OSError, TimeoutError):
                return False
            return True

        await wait_until(provisioned, timeout=30, what="the streams being provisioned")
        settings = ServiceSettings(data_dir=self.root / "data", db_schema_prefix="fault",
                                   DATABASE_URL=self.database_url)  # type: ignore[call-arg]
        # as `reroute up` does; in a thread, since a scenario's proxy to the database runs on this event loop
        await asyncio.to_thread(upgrade_all, settings)
        for replicas in (self.services, *self.others):
            replicas.start_all()  # together: replicas starting at once must not trip over each other
        for replicas in (self.services, *self.others):
            await replicas.wait_ready(self.url, self.subjects, timeout=90)
            assert not replicas.exited(), f"a replica exited at start-up: {replicas.exited()}"
        self.nc = await nats.connect(servers, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                     error_cb=_quiet, disconnected_cb=_quiet_cb, reconnected_cb=_quiet_cb)
        reply = await self.nc.request(self.subjects.rpc("scheduling", "mentors.import"),
                                      json.dumps({"mentors": mentor_records(mentors, random.Random(3))}).encode(),
                                      timeout=60)
        imported = json.loads(reply.data)
        assert imported.get("imported") == mentors and not imported.get("errors"), imported

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()
        for replicas in (self.services, *self.others):
            replicas.stop_all()
        for node in self.nodes:
            if node.proc is not None:
                node.proc.terminate()
                node.proc.wait(timeout=10)

    # --- load -------------------------------------------------------------------------------------------
    async def submit_all(self, n: int, *, rate: float) -> None:
        """Submit `n` referrals at `rate` per second as an agency would: each one retried until JetStream
        confirms it (with the same Nats-Msg-Id, so a retry after a lost PubAck is not a second referral)."""
        assert self.nc is not None
        js = self.nc.jetstream()
        rng = random.Random(11)
        start = time.monotonic()
        for i in range(n):
            arid = f"F-{i}-{uuid.uuid4().hex[:6]}"
            self.arids.append(arid)
            body = referral_body(arid, i, rng)
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for attempt in range(600):  # bounded: two minutes of a broker that does not come back
                try:
                    await js.publish(self.subjects.submitted(self.agency), body, timeout=2,
                                     headers={"Nats-Msg-Id": f"{self.agency}:{arid}"})
                    break
                except (nats.errors.Error, TimeoutError):
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"could not submit {arid} for two minutes")

    async def backlog(self) -> dict[str, int]:
        """Messages waiting or in flight, per durable consumer of the services."""
        assert self.nc is not None
        js = self.nc.jetstream()
        found: dict[str, int] = {}
        for stream in (self.subjects.submissions_stream, self.subjects.intake_stream, self.subjects.risk_stream):
            for info in await js.consumers_info(stream):
                name = info.config.durable_name
                if name and name.split("-")[0] in SERVICES:
                    found[name] = (info.num_pending or 0) + (info.num_ack_pending or 0)
        return found

    async def until_every_stage_backlogged(self, *, timeout: float) -> dict[str, int]:
        """Wait for the moment every service's consumer has work waiting (an idle pipeline hides faults)."""
        seen: dict[str, int] = {}

        async def backlogged() -> bool:
            nonlocal seen
            try:
                seen = await self.backlog()
            except (nats.errors.Error, TimeoutError):
                return False
            return len(seen) >= 4 and all(v > 0 for v in seen.values())

        await wait_until(backlogged, timeout=timeout, every=0.05, what=f"a backlog at every stage (last: {seen})")
        return seen

    # --- what happened ----------------------------------------------------------------------------------
    async def stored(self, subject: str) -> list[dict[str, Any]]:
        """Every event the streams hold on `subject`, as an ephemeral consumer reads them (the poison that a
        scenario published there is left out: it is not an event)."""
        return [body for data, _ in await self.stored_raw(subject) if "event_id" in (body := _object(data))]

    async def stored_raw(self, subject: str) -> list[tuple[bytes, dict[str, str]]]:
        """Every message the streams hold on `subject`: body and headers. A stream electing a leader (a node of the
        cluster killed a moment ago) answers `ServiceUnavailableError`: read again, a bounded number of times."""
        for _ in range(20):
            try:
                return await self._read_all(subject)
            except ServiceUnavailableError:
                await asyncio.sleep(0.5)
        return await self._read_all(subject)

    async def _read_all(self, subject: str) -> list[tuple[bytes, dict[str, str]]]:
        assert self.nc is not None
        js = self.nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=None,
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30))
        found: list[tuple[bytes, dict[str, str]]] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(1000, timeout=1)
                except (nats.errors.TimeoutError, TimeoutError):
                    msgs = []
                for m in msgs:
                    found.append((m.data, dict(m.headers or {})))
                    await m.ack()
                if not msgs and (await sub.consumer_info()).num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    async def dead_letters(self) -> list[dict[str, str]]:
        """The headers of every dead letter (who failed it, on which subject, and why)."""
        return [headers for _, headers in await self.stored_raw(self.subjects.dead_letter("*"))]

    async def pings(self) -> dict[str, dict[str, Any]]:
        assert self.nc is not None
        replies = {}
        for name in SERVICES:
            reply = await self.nc.request(self.subjects.rpc(name, "ping"), b"{}", timeout=5)
            replies[name] = json.loads(reply.data)
        return replies

    async def until_not_ready(self, *, timeout: float) -> float:
        """Wait until some service says it is not ready (while staying live); returns the seconds it took."""
        async def some_not_ready() -> bool:
            pings = await self.pings()
            assert all(p["live"] for p in pings.values()), f"a dependency outage must not make a service not live: {pings}"
            return not all(p["ready"] for p in pings.values())

        return await wait_until(some_not_ready, timeout=timeout, what="a service reporting itself not ready")

    async def outcomes(self) -> list[dict[str, Any]]:
        return [*await self.stored(self.subjects.scheduled(self.agency)),
                *await self.stored(self.subjects.waitlisted(self.agency))]

    async def all_have_outcomes(self) -> bool:
        try:
            accepted = await self.stored(self.subjects.accepted(self.agency))
            ids = {e["referral_id"] for e in accepted}
            return len(ids) >= len(self.arids) and ids <= {e["referral_id"] for e in await self.outcomes()}
        except (nats.errors.Error, TimeoutError):
            return False

    async def count(self, scenario: str) -> Figures:
        """Count everything once the pipeline has drained: lost, duplicated, double-booked."""
        accepted = await self.stored(self.subjects.accepted(self.agency))
        assessed = await self.stored(self.subjects.assessed(self.agency))
        outcomes = await self.outcomes()
        by_arid: dict[str, set[str]] = defaultdict(set)
        for e in accepted:
            by_arid[e["agency_referral_id"]].add(e["referral_id"])
        first_accepts = Counter(e["referral_id"] for e in accepted if not e["duplicate"])
        per_referral = Counter(e["referral_id"] for e in outcomes)
        assessments = Counter(e["referral_id"] for e in assessed)
        ids = {r for rs in by_arid.values() for r in rs}
        figures = Figures(scenario, submitted=len(self.arids), accepted=len(by_arid), assessed=len(assessments),
                          outcomes=len(per_referral))
        figures.lost = len([a for a in self.arids if a not in by_arid]) + len(ids - set(per_referral))
        figures.duplicated = (sum(c - 1 for c in per_referral.values()) + sum(c - 1 for c in assessments.values())
                              + sum(c - 1 for c in first_accepts.values()) + sum(len(r) - 1 for r in by_arid.values()))
        figures.double_booked = _double_bookings(outcomes)
        return figures


def _object(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # poison: not JSON, or nested deeper than Python's parser goes
        return {}
    return body if isinstance(body, dict) else {}


def _double_bookings(outcomes: list[dict[str, Any]]) -> int:
    """Sessions of one mentor that overlap another of theirs."""
    by_mentor: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for e in outcomes:
        for s in e.get("sessions", []):
            by_mentor[e["mentor_id"]].append((datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])))
    clashes = 0
    for slots in by_mentor.values():
        slots.sort()
        clashes += sum(1 for a, b in pairwise(slots) if b[0] < a[1])
    return clashes


async def _quiet(_exc: Exception) -> None:
    """The watcher's own connection errors during a broker fault are expected."""


async def _quiet_cb() -> None:
    pass


@asynccontextmanager
async def rig(root: Path, *, mentors: int = 150, database_url: str | None = None, nodes: int = 1, replicas: int = 1,
              services_env: dict[str, str] | None = None) -> AsyncIterator[Rig]:
    r = Rig(root, database_url=database_url, nodes=nodes, replicas=replicas, services_env=services_env)
    try:
        await r.start(mentors=mentors)
        yield r
    except BaseException:
        for log in sorted(root.glob("logs*/*.log")):
            print(f"--- {log.name} (last lines)\n{log.read_text()[-4000:]}")
        raise
    finally:
        await r.close()


class PostgresOfOwn:
    """A database made for one scenario with CREATE DATABASE on the server DATABASE_URL names, so its outage
    touches nothing else; dropped afterwards."""

    def __init__(self, server_url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        parsed = make_url(server_url)
        if parsed.drivername in {"postgresql", "postgres"}:
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.name = f"fault_{uuid.uuid4().hex[:10]}"
        self._admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
        self.url = parsed.set(database=self.name).render_as_string(hide_password=False)
        self._execute(f'CREATE DATABASE "{self.name}"')

    def _execute(self, sql: str) -> None:
        from sqlalchemy import text

        with self._admin.connect() as conn:
            conn.execute(text(sql))

    def refuse_connections(self) -> None:
        """The outage: new connections refused, and every open one (pooled ones too) cut."""
        self._execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self._execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'")

    def allow_connections(self) -> None:
        self._execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        self.allow_connections()
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.dispose()


class StallingProxy:
    """A loopback TCP proxy that can stop forwarding while keeping every connection open: a hung link, where
    neither side sees an error and only a client-side bound notices."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        server_r, server_w = await asyncio.open_connection(*self._target)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
