"""Throughput of the whole pipeline (intake → risk → scheduling, three processes) against a raw nats-py relay.

    .venv/bin/python -m bench.pipeline --referrals 2000 --mentors 500 --rounds 3

Each round starts its own nats-server and services on a fresh data dir (SQLite unless DATABASE_URL is set),
registers a realistic registry (bench/instances.py's mentors of all three kinds across the 33 boroughs, the
boroughs' venues with rooms, rotl licences, a tenth of the mentors on leave), floods referrals drawn from the
same sample distribution with pipelined publishes and times first publish → last outcome (sessions.scheduled
or sessions.waitlisted), counting how many were placed. In the same round, just before, the raw baseline relays
the same payloads over three JetStream hops in one process (fetch, publish_async, ack); the ratio is taken
within each round and the median over rounds printed, the figure docs/performance.md compares. Run on
demand, not in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.aio.msg
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from apps.devstack.local_nats import start_nats_server
from apps.devstack.processes import ServiceProcesses
from bench.instances import NOW, draw_case, generate, london_venues
from services.scheduling.slots import LONDON
from shared.contracts.codes import LONDON_BOROUGHS, Tier
from shared.migrations import upgrade_all
from shared.settings import ServiceSettings
from shared.streams import provision_at
from shared.subjects import Subjects

MILD = ["peers_offending", "unstructured_time", "family_conflict", "substance_use", "ete_disengaged"]
LIKELY = ["peers_offending", "ete_disengaged", "substance_use", "family_conflict", "attitudes_supporting_violence",
          "impulsivity_or_anger"]
# Indicators that make risk's rules give about the tier the sample drew (bench/instances.py: 30 % low, 35 % medium,
# 25 % high, 10 % very high); risk decides the tier, and the bench reports what it decided.
INDICATORS_FOR: dict[Tier, Callable[[random.Random], list[str]]] = {
    Tier.LOW: lambda rng: rng.sample(MILD[:3], rng.randint(1, 2)),
    Tier.MEDIUM: lambda rng: ["unstructured_time", *rng.sample(LIKELY, 5)],
    Tier.HIGH: lambda rng: ["weapon_carrying", *rng.sample(MILD, 2)],
    Tier.VERY_HIGH: lambda rng: ["threat_to_life_warning", *rng.sample(MILD, 2)],
}


def _letters(i: int) -> str:
    """A distinct run of letters per number (intake matches people on names' letters, so digits would make
    every bench referral the same young person)."""
    word = ""
    while True:
        i, rest = divmod(i, 26)
        word = chr(ord("a") + rest) + word
        if i == 0:
            return word


def referral(i: int, rng: random.Random, weights: list[float]) -> bytes:
    """A referral drawn from the sample distribution of bench/instances.py: borough (uneven demand), languages,
    gender request, availability, unsafe areas, and indicators for a tier."""
    case = draw_case(rng, i, NOW, weights)
    preferences: dict[str, object] = {"mentor_gender": case.mentor_gender}
    if case.preferred_language:
        preferences["language"] = case.preferred_language
    return json.dumps({
        "agency_referral_id": f"B-{i}",
        "referrer": {"name": "Bench Referrer", "role": "YOT", "email": "bench@example.org"},
        "young_person": {"given_name": "Bench", "family_name": f"Person{_letters(i)}", "date_of_birth": "2010-03-04",
                         "gender": rng.choice(["male", "female"]), "borough": case.borough,
                         "languages": case.languages},
        "consent": {"given": True, "recorded_at": "2026-11-20T10:00:00+00:00"},
        "reason": "Benchmark referral.",
        "indicators": INDICATORS_FOR[case.tier](rng),
        "unsafe_areas": case.unsafe_areas,
        "preferences": preferences,
        "availability": [w.model_dump(mode="json") for w in case.availability],
    }).encode()


def referrals(n: int, seed: int) -> list[bytes]:
    rng = random.Random(f"referrals:{seed}")
    weights = [rng.choice([1.0, 1.0, 1.5, 3.0]) for _ in LONDON_BOROUGHS]  # a few boroughs carry several times more
    return [referral(i, rng, weights) for i in range(n)]


@dataclass(frozen=True)
class Registry:
    """Mentors of all three kinds across the 33 boroughs, the boroughs' venues with their rooms, and leave."""

    mentors: list[dict[str, Any]]
    venues: list[dict[str, Any]]
    leave: list[dict[str, str]]


def registry(n_mentors: int, seed: int) -> Registry:
    """bench/instances.py's London registry (staff, volunteers, rotl mentors with licences; the risk-weighted
    points caps left at the records' default), with a tenth of the mentors on leave for a few days."""
    inst = generate(n_mentors, 0, seed=seed, loose_points=False)
    rng = random.Random(f"registry:{seed}")
    today = datetime.now(LONDON).date()
    leave = []
    for state in rng.sample(inst.mentors, n_mentors // 10):
        first = today + timedelta(days=rng.randint(0, 20))
        leave.append({"mentor_id": state.record.id, "first_day": first.isoformat(),
                      "last_day": (first + timedelta(days=rng.randint(1, 7))).isoformat()})
    return Registry([s.record.model_dump(mode="json", exclude_none=True) for s in inst.mentors],
                    [v.model_dump(mode="json", exclude_none=True) for v in london_venues(random.Random(seed))], leave)


async def register(nc: NatsClient, subjects: Subjects, reg: Registry) -> None:
    for verb, body in (("venues.import", {"venues": reg.venues}), ("mentors.import", {"mentors": reg.mentors})):
        reply = json.loads((await nc.request(subjects.rpc("scheduling", verb), json.dumps(body).encode(),
                                             timeout=120)).data)
        if reply.get("errors") or reply.get("error"):
            raise RuntimeError(f"{verb}: {reply}")
    for leave in reg.leave:
        await nc.request(subjects.rpc("scheduling", "mentors.leave"), json.dumps(leave).encode(), timeout=30)


@dataclass
class Run:
    """One flood through the pipeline."""

    rate: float  # referrals per second, first publish to last outcome
    placed: int
    waitlisted: int
    tiers: Counter[str]


async def pipeline(url: str, data_dir: Path, bodies: list[bytes], reg: Registry) -> Run:
    n = len(bodies)
    subjects = Subjects()
    procs = ServiceProcesses({"NATS_URL": url, "REROUTE_DATA_DIR": str(data_dir), "REROUTE_LOG_LEVEL": "WARNING",
                              "REROUTE_CALENDAR_PORT": "0", "REROUTE_INTAKE_HTTP_PORT": "0"},
                             log_dir=data_dir / "logs")
    upgrade_all(ServiceSettings(data_dir=data_dir, DATABASE_URL=os.environ.get("DATABASE_URL")))  # type: ignore[call-arg]
    await provision_at([url], subjects, replicas=1)
    procs.start_all()
    try:
        await procs.wait_ready(url, subjects, timeout=60)
        nc = await nats.connect(url)
        await register(nc, subjects, reg)
        done = asyncio.Event()
        outcome: Counter[str] = Counter()
        tiers: Counter[str] = Counter()
        last: dict[str, float] = {}

        def final(kind: str) -> Callable[[nats.aio.msg.Msg], Awaitable[None]]:
            async def on_final(msg: nats.aio.msg.Msg) -> None:
                outcome[kind] += 1
                tiers[json.loads(msg.data)["tier"]] += 1
                if outcome.total() >= n:
                    done.set()
            return on_final

        async def stage(msg: nats.aio.msg.Msg) -> None:
            last[msg.subject.split(".")[0] + "." + msg.subject.split(".")[1]] = time.perf_counter()

        await nc.subscribe(subjects.scheduled(), cb=final("placed"))
        await nc.subscribe(subjects.waitlisted(), cb=final("waitlisted"))
        await nc.subscribe(subjects.accepted(), cb=stage)
        await nc.subscribe(subjects.assessed(), cb=stage)
        js = nc.jetstream()
        cpu_before = {name: _cpu_seconds(proc.pid) for name, proc in procs.procs.items()}
        start = time.perf_counter()
        futures = [await js.publish_async(subjects.submitted("bench"), b) for b in bodies]
        await asyncio.gather(*futures)
        await asyncio.wait_for(done.wait(), timeout=900)
        elapsed = time.perf_counter() - start
        cpu = {name: _cpu_seconds(proc.pid) - cpu_before[name] for name, proc in procs.procs.items()}
        await nc.close()
        for name, at in sorted(last.items(), key=lambda kv: kv[1]):
            print(f"  {name}: all {n} after {at - start:.2f} s ({n / (at - start):,.0f}/s)")
        print(f"  sessions.*: all {n} after {elapsed:.2f} s ({n / elapsed:,.0f}/s)")
        print("  CPU per referral in the flood (robust to other work on the machine): "
              + ", ".join(f"{name} {seconds * 1000 / n:.2f} ms" for name, seconds in cpu.items()))
        return Run(n / elapsed, outcome["placed"], outcome["waitlisted"], tiers)
    finally:
        procs.stop_all()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def raw_relay(url: str, bodies: list[bytes]) -> float:
    """Three JetStream hops in one process: fetch 256, publish_async to the next hop, ack."""
    n = len(bodies)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"], duplicate_window=120))
    hops = ["raw.h0", "raw.h1", "raw.h2", "raw.h3"]
    subs = [await js.pull_subscribe(h, durable=f"raw{i}", stream="RAW") for i, h in enumerate(hops[:3])]
    got = 0
    done = asyncio.Event()

    async def last(_m: object) -> None:
        nonlocal got
        got += 1
        if got >= n:
            done.set()

    await nc.subscribe(hops[3], cb=last)

    async def relay(sub: nats.js.JetStreamContext.PullSubscription, to: str) -> None:
        while not done.is_set():
            try:
                msgs = await sub.fetch(256, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            futures = [await js.publish_async(to, m.data) for m in msgs]
            await asyncio.gather(*futures)
            for m in msgs:
                await m.ack()

    tasks = [asyncio.create_task(relay(s, hops[i + 1])) for i, s in enumerate(subs)]
    start = time.perf_counter()
    await asyncio.gather(*[await js.publish_async(hops[0], b) for b in bodies])
    await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.perf_counter() - start
    for t in tasks:
        t.cancel()
    await js.delete_stream("RAW")
    await nc.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--mentors", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="each round runs the raw relay, then the pipeline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    reg = registry(args.mentors, args.seed)
    bodies = referrals(args.referrals, args.seed)
    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
    kinds = Counter(str(m["kind"]) for m in reg.mentors)
    print(f"{args.mentors} mentors ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}) in "
          f"{len({b for m in reg.mentors for b in m['boroughs']})} boroughs, {len(reg.venues)} venues, "
          f"{len(reg.leave)} on leave; {args.referrals} referrals; {database}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    ratios = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="reroute-bench-") as tmp:
            server, url = start_nats_server(Path(tmp) / "nats")
            try:
                raw = asyncio.run(raw_relay(url, bodies))
                run = asyncio.run(pipeline(url, Path(tmp) / "data", bodies, reg))
            finally:
                server.terminate()
                server.wait()
        ratios.append(run.rate / raw)
        print(f"round {r + 1}: raw relay {raw:,.0f} msg/s; reroute pipeline {run.rate:,.0f} referrals/s "
              f"({ratios[-1]:.3f}× raw); placed {run.placed} ({run.placed / args.referrals:.0%}), waitlisted "
              f"{run.waitlisted}; tiers {dict(sorted(run.tiers.items()))}", flush=True)
    print(f"median over {args.rounds} rounds: {statistics.median(ratios):.3f}× raw "
          f"[{min(ratios):.3f}–{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
