"""Throughput of the whole pipeline (intake → risk → scheduling, three processes) against a raw nats-py relay.

    .venv/bin/python -m bench.pipeline --referrals 2000 --mentors 200

Starts its own nats-server and services on a fresh data dir (SQLite unless DATABASE_URL is set), floods
referrals with pipelined publishes and times first publish → last final event (sessions.scheduled or
sessions.waitlisted). The raw baseline relays the same payloads over three JetStream hops in one process
(fetch, publish_async, ack), the figure docs/performance.md compares against. Run on demand, not in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import nats
import nats.aio.msg
import nats.errors
from nats.js.api import StreamConfig

from apps.devstack.local_nats import start_nats_server
from apps.devstack.processes import ServiceProcesses
from shared.migrations import upgrade_all
from shared.settings import ServiceSettings
from shared.streams import provision_at
from shared.subjects import Subjects

BOROUGHS = ["Hackney", "Lambeth", "Southwark", "Newham", "Croydon", "Brent", "Haringey", "Lewisham"]
INDICATORS = ["peers_offending", "unstructured_time", "substance_use", "ete_disengaged", "family_conflict",
              "weapon_carrying", "missing_episodes", "unexplained_money"]


def _letters(i: int) -> str:
    """A distinct run of letters per number (intake matches people on names' letters, so digits would make
    every bench referral the same young person)."""
    word = ""
    while True:
        i, rest = divmod(i, 26)
        word = chr(ord("a") + rest) + word
        if i == 0:
            return word


def referral(i: int, rng: random.Random) -> bytes:
    return json.dumps({
        "agency_referral_id": f"B-{i}",
        "referrer": {"name": "Bench Referrer", "role": "YOT", "email": "bench@example.org"},
        "young_person": {"given_name": "Bench", "family_name": f"Person{_letters(i)}", "date_of_birth": "2010-03-04",
                         "gender": rng.choice(["male", "female"]), "borough": rng.choice(BOROUGHS), "languages": ["en"]},
        "consent": {"given": True, "recorded_at": "2026-11-20T10:00:00+00:00"},
        "reason": "Benchmark referral.",
        "indicators": rng.sample(INDICATORS, 3),
    }).encode()


def mentors(n: int, rng: random.Random) -> list[dict[str, object]]:
    days = ["mon", "tue", "wed", "thu", "fri", "sat"]
    return [{
        "id": f"bm-{i}", "name": f"Bench Mentor {i}", "kind": "staff", "boroughs": rng.sample(BOROUGHS, 3),
        "languages": ["en"], "gender": rng.choice(["male", "female"]), "max_caseload": 15,
        "availability": [{"day": d, "start": "09:00", "end": "18:00"} for d in days],
        "vetting": {"enhanced_check_expires": "2030-12-31"},
    } for i in range(n)]


async def pipeline(url: str, data_dir: Path, n: int, n_mentors: int) -> float:
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
        rng = random.Random(7)
        await nc.request(subjects.rpc("scheduling", "mentors.import"),
                         json.dumps({"mentors": mentors(n_mentors, rng)}).encode(), timeout=30)
        done = asyncio.Event()
        finished = 0
        last: dict[str, float] = {}

        async def on_final(_msg: object) -> None:
            nonlocal finished
            finished += 1
            if finished >= n:
                done.set()

        async def stage(msg: nats.aio.msg.Msg) -> None:
            last[msg.subject.split(".")[0] + "." + msg.subject.split(".")[1]] = time.perf_counter()

        await nc.subscribe(subjects.scheduled(), cb=on_final)
        await nc.subscribe(subjects.waitlisted(), cb=on_final)
        await nc.subscribe(subjects.accepted(), cb=stage)
        await nc.subscribe(subjects.assessed(), cb=stage)
        bodies = [referral(i, rng) for i in range(n)]
        js = nc.jetstream()
        start = time.perf_counter()
        futures = [await js.publish_async(subjects.submitted("bench"), b) for b in bodies]
        await asyncio.gather(*futures)
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - start
        await nc.close()
        for name, at in sorted(last.items(), key=lambda kv: kv[1]):
            print(f"  {name}: all {n} after {at - start:.2f} s ({n / (at - start):,.0f}/s)")
        print(f"  sessions.*: all {n} after {elapsed:.2f} s ({n / elapsed:,.0f}/s)")
        return n / elapsed
    finally:
        procs.stop_all()


async def raw_relay(url: str, n: int) -> float:
    """Three JetStream hops in one process: fetch 256, publish_async to the next hop, ack."""
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
    rng = random.Random(7)
    bodies = [referral(i, rng) for i in range(n)]
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
    parser.add_argument("--mentors", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="reroute-bench-") as tmp:
            server, url = start_nats_server(Path(tmp) / "nats")
            try:
                raw = asyncio.run(raw_relay(url, args.referrals))
                full = asyncio.run(pipeline(url, Path(tmp) / "data", args.referrals, args.mentors))
            finally:
                server.terminate()
                server.wait()
        print(f"round {r + 1}: raw relay {raw:,.0f} msg/s; reroute pipeline {full:,.0f} referrals/s "
              f"({full / raw:.2f}× raw), {args.referrals} referrals, {args.mentors} mentors")


if __name__ == "__main__":
    main()
