"""What every section of `make bench` runs on: a nats-server of its own, reroute's three services on a fresh data
dir with the registry registered, the raw relay, a publisher (a flood, or open-loop at a fixed rate) and a record
of when each referral reached its outcome."""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import nats
import nats.aio.msg
import nats.errors
import nats.js
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from apps.devstack.local_nats import start_nats_server
from apps.devstack.processes import SERVICES, ServiceProcesses
from bench.peak_rss import mebibytes, status
from bench.workload import AGENCY, Registry, index_of, register
from shared.migrations import upgrade_all
from shared.ops import micro_name
from shared.settings import ServiceSettings
from shared.streams import provision_at
from shared.subjects import Subjects

SUBJECTS = Subjects()
SERVER_PIDS: dict[str, int] = {}
"""The process of each running bench nats-server, by URL (for its CPU time)."""


@contextmanager
def nats_server(tmp: Path) -> Iterator[str]:
    """A nats-server -js of the bench's own, storing in `tmp`; yields its URL."""
    server, url = start_nats_server(tmp / "nats")
    SERVER_PIDS[url] = server.pid
    try:
        yield url
    finally:
        del SERVER_PIDS[url]
        server.terminate()
        server.wait()


@dataclass
class Arrivals:
    """When each of `n` messages, by its index in what was sent, first reached its end (perf_counter), and which
    end (placed or waitlisted; `relayed` for the raw relay)."""

    n: int
    at: dict[int, float] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stages: dict[str, dict[int, float]] = field(default_factory=dict)  # when each passed a stage on the way

    def reach(self, stage: str, i: int) -> None:
        self.stages.setdefault(stage, {}).setdefault(i, time.perf_counter())

    def arrive(self, i: int, kind: str, tier: str | None = None) -> None:
        if i in self.at or not 0 <= i < self.n:  # a redelivered outcome, or one of another run
            return
        self.at[i] = time.perf_counter()
        self.kinds[kind] += 1
        if tier is not None:
            self.tiers[tier] += 1
        if len(self.at) >= self.n:
            self.done.set()


async def publish(js: nats.js.JetStreamContext, subject: str, bodies: list[bytes], *, due: list[float],
                  rate: float | None = None) -> None:
    """Publish every body with pipelined acks: all at once (a flood), or open-loop at `rate` a second, each on its
    schedule whatever happens downstream, so a slow pipeline builds a backlog instead of slowing the sender (no
    coordinated omission). Appends to `due` when each was due (sent, in a flood): latency counts from there."""
    start = time.perf_counter()
    acks = []
    for i, body in enumerate(bodies):
        if rate is None:
            due.append(time.perf_counter())
        else:
            due.append(start + i / rate)
            if (wait := due[-1] - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
        acks.append(await js.publish_async(subject, body))
    await asyncio.gather(*acks)


async def watch(arrivals: Arrivals, label: str, *, timeout: float, every: float = 5.0) -> float:
    """Wait until every message has arrived, printing progress every `every` seconds; returns the seconds waited.
    Raises TimeoutError, saying how far it got, after `timeout`."""
    start = time.perf_counter()
    while not arrivals.done.is_set():
        try:
            await asyncio.wait_for(arrivals.done.wait(), timeout=every)
        except TimeoutError:
            waited = time.perf_counter() - start
            if waited > timeout:
                raise TimeoutError(f"{label}: {len(arrivals.at)} of {arrivals.n} arrived in {waited:.0f} s") from None
            print(f"    {label}: {len(arrivals.at):,} of {arrivals.n:,} after {waited:.0f} s")
    return time.perf_counter() - start


@contextmanager
def profiled(pids: dict[str, int], directory: Path | None, label: str) -> Iterator[None]:
    """py-spy samples each process while the block runs (100 Hz, not pausing it), into `directory`/`label`-`name`.txt
    as collapsed stacks, one line per distinct stack with its count (`py-spy record --format raw`); nothing when
    `directory` is None. Only the thread holding the GIL is sampled (`--gil`): py-spy's idle detection counts a
    thread waiting for the GIL (and, not pausing the process, one in epoll) as busy, which inflated the other
    threads' share; what runs with the GIL released (SQLite's or libpq's own C) is left out instead."""
    if directory is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: install the bench extra (pip install -e '.[bench]')")
    directory.mkdir(parents=True, exist_ok=True)
    spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--gil",
                               "--format", "raw", "--output", str(directory / f"{label}-{name}.txt")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in pids.items()]
    try:
        yield
    finally:
        for each in spies:  # py-spy writes what it sampled when interrupted
            each.send_signal(signal.SIGINT)
        for each in spies:
            each.wait(timeout=60)


class Reroute:
    """reroute's three services as processes on a fresh data dir (SQLite, or schemas of their own on DATABASE_URL,
    dropped afterwards), the registry registered, and the bench's own connection watching every outcome."""

    def __init__(self, url: str, data_dir: Path, reg: Registry, replicas: dict[str, int] | None = None) -> None:
        self.url = url
        self.data_dir = data_dir
        self.reg = reg
        self.database_url = os.environ.get("DATABASE_URL")
        env = {"NATS_URL": url, "REROUTE_DATA_DIR": str(data_dir), "REROUTE_LOG_LEVEL": "WARNING",
               "REROUTE_CALENDAR_PORT": "0", "REROUTE_INTAKE_HTTP_PORT": "0"}
        if self.database_url:  # schemas of this run's own; and outside the embedded default intake needs its keys
            from cryptography.fernet import Fernet

            env["REROUTE_DB_SCHEMA_PREFIX"] = f"bench_{secrets.token_hex(4)}"
            env["REROUTE_INTAKE_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
            env["REROUTE_INTAKE_MATCHING_KEY"] = Fernet.generate_key().decode()
        self.settings = ServiceSettings(data_dir=data_dir, DATABASE_URL=self.database_url,  # type: ignore[call-arg]
                                        db_schema_prefix=env.get("REROUTE_DB_SCHEMA_PREFIX"))
        self.replicas = {name: (replicas or {}).get(name, 1) for name in SERVICES}
        # one set of processes per replica number: the first runs every service, the k-th those with k replicas
        self.groups = [ServiceProcesses(env, log_dir=data_dir / "logs" / (f"replica{k}" if k else ""))
                       for k in range(max(self.replicas.values()))]
        self._ids: dict[str, int] = {}  # referral id → index, from referrals.accepted
        self._arrivals = Arrivals(0)
        self._nc: NatsClient | None = None

    @property
    def js(self) -> nats.js.JetStreamContext:
        assert self._nc is not None, "use Reroute as `async with`"
        return self._nc.jetstream()

    subject = SUBJECTS.submitted(AGENCY)

    async def __aenter__(self) -> Self:
        upgrade_all(self.settings)
        await provision_at([self.url], SUBJECTS, replicas=1)
        try:
            await self.start()
            self._nc = nc = await nats.connect(self.url)
            await register(nc, SUBJECTS, self.reg)
            await nc.subscribe(SUBJECTS.accepted(), cb=self._accepted)
            await nc.subscribe(SUBJECTS.assessed(), cb=self._stage)
            await nc.subscribe(SUBJECTS.scheduled(), cb=self._outcome)
            await nc.subscribe(SUBJECTS.waitlisted(), cb=self._outcome)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._nc is not None:
            await self._nc.close()
        self.stop()
        if self.database_url:
            self._drop_schemas()

    async def start(self) -> None:
        """Start every replica of the three services and wait until each answers as ready."""
        for k, group in enumerate(self.groups):
            for name in SERVICES:
                if self.replicas[name] > k:
                    group.start(name)
        for group in self.groups:
            await group.wait_ready(self.url, SUBJECTS, tuple(group.procs), timeout=120)
        if len(self.groups) > 1:
            await self._every_replica_ready(timeout=120)

    def stop(self) -> None:
        """Stop the three services (SIGTERM, as an operator or a node going away would)."""
        for group in self.groups:
            group.stop_all()

    async def _every_replica_ready(self, *, timeout: float) -> None:
        """Wait until every replica (not just one of each service) says it is ready, over the NATS services API."""
        wanted = {proc.pid for group in self.groups for proc in group.procs.values()}
        nc = await nats.connect(self.url)
        try:
            deadline = time.monotonic() + timeout
            while True:
                inbox = nc.new_inbox()
                sub = await nc.subscribe(inbox)
                for name in SERVICES:
                    await nc.publish(f"$SRV.INFO.{micro_name(name, '')}", b"", reply=inbox)
                ready: set[int] = set()
                try:
                    while wanted - ready:
                        metadata = json.loads((await sub.next_msg(timeout=0.5)).data).get("metadata", {})
                        if metadata.get("ready") == "true":
                            ready.add(int(metadata["pid"]))
                except nats.errors.TimeoutError:
                    pass
                await sub.unsubscribe()
                if not wanted - ready:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replicas not ready after {timeout:.0f} s: pids {sorted(wanted - ready)}")
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def expect(self, n: int) -> Arrivals:
        """Record the outcomes of the next `n` referrals, numbered as bench/workload.py numbers them."""
        self._ids.clear()
        self._arrivals = Arrivals(n)
        return self._arrivals

    def pids(self) -> dict[str, int]:
        return {name + (f"-{k + 1}" if k else ""): proc.pid
                for k, group in enumerate(self.groups) for name, proc in group.procs.items()}

    def cpu_seconds(self) -> dict[str, float]:
        """Each service's CPU time so far, all its replicas together."""
        return {name: sum(cpu_seconds(group.procs[name].pid) for group in self.groups if name in group.procs)
                for name in SERVICES}

    def run_delay_seconds(self) -> dict[str, float]:
        """Each service's time so far runnable but waiting for a core (all its threads and replicas)."""
        return {name: sum(run_delay_seconds(group.procs[name].pid) for group in self.groups if name in group.procs)
                for name in SERVICES}

    def peak_rss(self) -> dict[str, float]:
        """Each service's peak resident set since it started (VmHWM), in MiB (the highest of its replicas)."""
        return {name: max(mebibytes(status(group.procs[name].pid)["VmHWM"]) for group in self.groups
                          if name in group.procs)
                for name in SERVICES}

    async def _accepted(self, msg: nats.aio.msg.Msg) -> None:
        event = json.loads(msg.data)
        if (i := index_of(event["agency_referral_id"])) is not None:
            self._ids[event["referral_id"]] = i
            self._arrivals.reach("referrals.accepted", i)

    async def _stage(self, msg: nats.aio.msg.Msg) -> None:
        if (i := self._ids.get(json.loads(msg.data)["referral_id"])) is not None:
            self._arrivals.reach("risk.assessed", i)

    async def _outcome(self, msg: nats.aio.msg.Msg) -> None:
        event = json.loads(msg.data)
        # referrals.accepted reaches the bench before scheduling can have heard of the referral
        if (i := self._ids.get(event["referral_id"])) is not None:
            self._arrivals.arrive(i, "placed" if "mentor_id" in event else "waitlisted", event["tier"])

    def _drop_schemas(self) -> None:
        from sqlalchemy import text

        from shared.db import make_engine

        engine = make_engine(SERVICES[0], self.settings)
        try:
            with engine.begin() as conn:
                for service in SERVICES:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.settings.db_schema_prefix}_{service}" CASCADE'))
        finally:
            engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_delay_seconds(pid: int) -> float:
    """Time a process's live threads have spent runnable but waiting for a core (the kernel's run delay, the second
    field of /proc/<pid>/task/<tid>/schedstat): the machine's other work, or the process's own threads competing.
    A thread that has ended is no longer counted, so a difference of two readings is a floor (clamp it at 0); NaN
    where the kernel keeps no schedstat (or shows only zeros), so that it prints as not measured, never as 0."""
    total, read = 0, False
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
            total += int(fields[1])
            read = read or any(int(f) for f in fields)
        except (OSError, IndexError, ValueError):  # a thread ending meanwhile, or no schedstat here
            continue
    return total / 1e9 if read else math.nan


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy so far, all cores together, from /proc/stat (Linux)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def raw_relay(url: str) -> AsyncIterator[RawRelay]:
    """The physical limit here: three JetStream hops in one process (fetch 256, publish_async to the next hop,
    ack), carrying the same payloads as reroute's referrals."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"], duplicate_window=120))
    relay = RawRelay(js)
    await nc.subscribe(RawRelay.hops[3], cb=relay.arrived)
    tasks = [asyncio.create_task(relay.relay(await js.pull_subscribe(hop, durable=f"raw{i}", stream="RAW"),
                                             RawRelay.hops[i + 1]))
             for i, hop in enumerate(RawRelay.hops[:3])]
    try:
        yield relay
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await js.delete_stream("RAW")
        await nc.close()


class RawRelay:
    hops = ("raw.h0", "raw.h1", "raw.h2", "raw.h3")
    subject = hops[0]

    def __init__(self, js: nats.js.JetStreamContext) -> None:
        self.js = js
        self._index: dict[bytes, int] = {}
        self._arrivals = Arrivals(0)

    def expect(self, bodies: list[bytes]) -> Arrivals:
        """Record when each of `bodies` comes out of the last hop."""
        self._index = {body: i for i, body in enumerate(bodies)}
        self._arrivals = Arrivals(len(bodies))
        return self._arrivals

    async def arrived(self, msg: nats.aio.msg.Msg) -> None:
        if (i := self._index.get(msg.data)) is not None:
            self._arrivals.arrive(i, "relayed")

    async def relay(self, sub: nats.js.JetStreamContext.PullSubscription, to: str) -> None:
        while True:
            try:
                msgs = await sub.fetch(256, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            await asyncio.gather(*[await self.js.publish_async(to, m.data) for m in msgs])
            for m in msgs:
                await m.ack()
