"""`make bench`: reroute's whole pipeline (intake → risk → scheduling, three processes) against a raw nats-py
relay on the same server, with an organisation's registry.

    .venv/bin/python -m bench.pipeline                        # every section (about 6 minutes on 2 idle cores)
    .venv/bin/python -m bench.pipeline --sections flood --rounds 5

Every run starts its own nats-server and services on a fresh data dir (SQLite, or schemas of their own when
DATABASE_URL is set), registers bench/workload.py's registry (mentors of all three kinds across the 33 boroughs,
venues with rooms, licences, leave) and sends referrals drawn from the same sample distribution. Sections:

flood    Rounds of: the raw relay (three JetStream hops in one process) floods the payloads, then reroute does;
         the throughput ratio is taken within each round and the median over rounds printed, with each service's
         CPU time per referral (robust to other work on the machine) and peak RSS (VmHWM) at the end of the flood;
         and where the cores went meanwhile (the services, nats-server, the bench, other work on the machine, which
         includes py-spy under --profile) with each service's run delay per referral (runnable, waiting for a core).
latency  At each fixed offered rate, an open-loop publisher sends for --duration seconds, first through the raw
         relay, then through reroute: p50/p99 from submission to outcome (sessions.scheduled or
         sessions.waitlisted), and whether a backlog grows.
drain    An outage: the services are stopped, --backlog referrals are submitted, the services are started; the time
         from their start to the last outcome.

Run on demand, not in tests; docs/performance.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from apps.devstack.processes import SERVICES
from bench.latency import Paced, paced
from bench.stack import (
    SERVER_PIDS,
    Reroute,
    cpu_seconds,
    machine_busy_seconds,
    nats_server,
    profiled,
    publish,
    raw_relay,
    watch,
)
from bench.workload import Registry, referrals, registry

SECTIONS = ("flood", "latency", "drain")


@dataclass(frozen=True)
class Flood:
    """One flood through reroute."""

    rate: float  # referrals per second, first publish to last outcome
    placed: int
    waitlisted: int
    tiers: dict[str, int]
    cpu_ms: dict[str, float]  # each service's CPU time per referral
    run_delay_ms: dict[str, float]  # each service's time per referral runnable but waiting for a core
    others_cores: float  # cores busy with other work on the machine meanwhile (not the services, nats-server or bench)
    peak_rss: dict[str, float]  # each service's peak resident set at the end, MiB


async def flood_raw(url: str, bodies: list[bytes]) -> float:
    """The raw relay's throughput in messages a second, first publish to last message out."""
    async with raw_relay(url) as relay:
        arrivals = relay.expect(bodies)
        start = time.perf_counter()
        await publish(relay.js, relay.subject, bodies, due=[])
        await watch(arrivals, "raw relay", timeout=300)
        return len(bodies) / (time.perf_counter() - start)


OTHER_WORK = ("other work on the machine (PostgreSQL, the pipeline's database, included)" if os.environ.get("DATABASE_URL")
              else "other work on the machine")


def _floor(seconds: float) -> float:
    """A run delay's difference at 0 or more (a thread that ended took its delay with it); NaN stays NaN."""
    return seconds if math.isnan(seconds) else max(0.0, seconds)


def _ms(ms: float) -> str:
    return "n/a (no schedstat here)" if math.isnan(ms) else f"{ms:.2f} ms"


async def flood_reroute(url: str, data_dir: Path, bodies: list[bytes], reg: Registry, *, replicas: dict[str, int],
                        profile: Path | None = None, label: str = "flood") -> Flood:
    n = len(bodies)
    async with Reroute(url, data_dir, reg, replicas) as reroute:
        arrivals = reroute.expect(n)
        server = SERVER_PIDS[url]
        with profiled(reroute.pids(), profile, label):
            cpu_before, delay_before = reroute.cpu_seconds(), reroute.run_delay_seconds()
            machine_before, server_before, own_before = machine_busy_seconds(), cpu_seconds(server), time.process_time()
            start = time.perf_counter()
            await publish(reroute.js, reroute.subject, bodies, due=[])
            await watch(arrivals, "reroute", timeout=900)
            elapsed = time.perf_counter() - start
            machine = machine_busy_seconds() - machine_before  # every reading after, together, before any
            server_cpu, own = cpu_seconds(server) - server_before, time.process_time() - own_before  # profiler stops
            cpu_after, delay_after = reroute.cpu_seconds(), reroute.run_delay_seconds()
        cpu = {name: (seconds - cpu_before[name]) * 1000 / n for name, seconds in cpu_after.items()}
        delay = {name: _floor(seconds - delay_before[name]) * 1000 / n for name, seconds in delay_after.items()}
        others = (machine - sum(cpu.values()) * n / 1000 - server_cpu - own) / elapsed
        rss = reroute.peak_rss()
        for stage, ats in arrivals.stages.items():
            at = max(ats.values())
            print(f"  {stage}: all {n} after {at - start:.2f} s ({n / (at - start):,.0f}/s)")
        print(f"  sessions.*: all {n} after {elapsed:.2f} s ({n / elapsed:,.0f}/s)")
        print("  CPU per referral in the flood (robust to other work on the machine): "
              + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items()) + f"; all {sum(cpu.values()):.2f} ms")
        print(f"  the {len(os.sched_getaffinity(0))} cores meanwhile: the services "
              f"{sum(cpu.values()) * n / 1000 / elapsed:.2f}, nats-server {server_cpu / elapsed:.2f}, the bench "
              f"{own / elapsed:.2f}, {OTHER_WORK} {others:.2f}; waiting for a core (run delay of live threads) per "
              "referral: " + ", ".join(f"{name} {_ms(ms)}" for name, ms in delay.items()))
        print("  peak RSS (VmHWM) at the end of the flood: " + ", ".join(f"{name} {mib:.0f} MiB"
                                                                        for name, mib in rss.items()))
        return Flood(n / elapsed, arrivals.kinds["placed"], arrivals.kinds["waitlisted"], dict(arrivals.tiers), cpu,
                     delay, others, rss)


def flood(args: argparse.Namespace, reg: Registry) -> list[str]:
    """Rounds of raw relay then reroute, each on a fresh server; the median ratio."""
    bodies = referrals(args.referrals, args.seed)
    ratios, floods = [], []
    for r in range(args.rounds):
        print(f"flood, round {r + 1} of {args.rounds}: the raw relay, then reroute, {args.referrals:,} each")
        with tempfile.TemporaryDirectory(prefix="reroute-bench-") as tmp, nats_server(Path(tmp)) as url:
            raw = asyncio.run(flood_raw(url, bodies))
            run = asyncio.run(flood_reroute(url, Path(tmp) / "data", bodies, reg, replicas=args.replicas,
                                            profile=args.profile,
                                            label=f"flood{r + 1}"))
        ratios.append(run.rate / raw)
        floods.append(run)
        print(f"round {r + 1}: raw relay {raw:,.0f} msg/s; reroute pipeline {run.rate:,.0f} referrals/s "
              f"({ratios[-1]:.3f}× raw); placed {run.placed} ({run.placed / args.referrals:.0%}), waitlisted "
              f"{run.waitlisted}; tiers {dict(sorted(run.tiers.items()))}")
    cpu = {name: statistics.median(f.cpu_ms[name] for f in floods) for name in floods[0].cpu_ms}
    delay = {name: statistics.median(f.run_delay_ms[name] for f in floods) for name in floods[0].run_delay_ms}
    rss = {name: max(f.peak_rss[name] for f in floods) for name in floods[0].peak_rss}
    return [(f"flood: median over {args.rounds} rounds {statistics.median(ratios):.3f}× raw "
             f"[{min(ratios):.3f}–{max(ratios):.3f}]; placed {min(f.placed for f in floods) / args.referrals:.0%} or "
             f"more in every round"),
            "flood: median CPU per referral " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items())
            + f"; all {sum(cpu.values()):.2f} ms",
            "flood: median wait for a core per referral " + ", ".join(f"{name} {_ms(ms)}" for name, ms in delay.items())
            + f"; {OTHER_WORK} took {statistics.median(f.others_cores for f in floods):.2f} cores (median)",
            "flood: peak RSS (highest of the rounds) " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in rss.items())]


async def latency_at(url: str, data_dir: Path, rate: float, bodies: list[bytes], reg: Registry, *,
                     replicas: dict[str, int], profile: Path | None) -> tuple[Paced, Paced, dict[str, float]]:
    """The raw relay, then reroute, at `rate`; and reroute's services' CPU per referral meanwhile (ms)."""
    async with raw_relay(url) as relay:
        raw = await paced(relay.js, relay.subject, bodies, relay.expect(bodies), rate=rate, label=f"raw @{rate:g}/s")
    print(f"  raw relay @{rate:g}/s: {raw.summary()}")
    async with Reroute(url, data_dir, reg, replicas) as reroute:
        with profiled(reroute.pids(), profile, f"rate{rate:g}"):
            cpu_before, start = reroute.cpu_seconds(), time.perf_counter()
            ours = await paced(reroute.js, reroute.subject, bodies, reroute.expect(len(bodies)), rate=rate,
                               label=f"reroute @{rate:g}/s")
            cpu = {name: seconds - cpu_before[name] for name, seconds in reroute.cpu_seconds().items()}
            elapsed = time.perf_counter() - start
    print(f"  reroute   @{rate:g}/s: {ours.summary()}; services busy " + ", ".join(
        f"{name} {seconds / elapsed:.0%}" for name, seconds in cpu.items()) + " of a core; CPU per referral "
        + ", ".join(f"{name} {seconds * 1000 / len(bodies):.2f} ms" for name, seconds in cpu.items()))
    return raw, ours, {name: seconds * 1000 / len(bodies) for name, seconds in cpu.items()}


def latency(args: argparse.Namespace, reg: Registry) -> list[str]:
    """At each rate, on a fresh server and registry: the raw relay, then reroute, open-loop."""
    lines = []
    for rate in args.rates:
        bodies = referrals(round(rate * args.duration), args.seed)
        print(f"latency @{rate:g} referrals/s for {args.duration:g} s: the raw relay, then reroute")
        with tempfile.TemporaryDirectory(prefix="reroute-bench-") as tmp, nats_server(Path(tmp)) as url:
            raw, ours, cpu = asyncio.run(latency_at(url, Path(tmp) / "data", rate, bodies, reg, replicas=args.replicas,
                                                    profile=args.profile))
        lines.append(f"latency @{rate:g}/s: reroute p50 {ours.p50_ms:,.0f} ms, p99 {ours.p99_ms:,.0f} ms (second half "
                     f"{ours.settled[0]:,.0f} / {ours.settled[1]:,.0f} ms); raw relay "
                     f"p50 {raw.p50_ms:,.0f} ms, p99 {raw.p99_ms:,.0f} ms; p99 {ours.p99_ms / raw.p99_ms:,.1f}× raw's; "
                     + ("backlog GROWS" if ours.backlog_grows else "no growing backlog")
                     + f" ({ours.growth:+.1f}/s over the second half; in flight by quarter "
                     + ", ".join(f"{n:,}" for n in ours.in_flight) + "); CPU per referral "
                     + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items()))
    return lines


async def drain_after_outage(url: str, data_dir: Path, bodies: list[bytes], reg: Registry, *,
                             replicas: dict[str, int]) -> list[str]:
    n = len(bodies)
    async with Reroute(url, data_dir, reg, replicas) as reroute:
        reroute.stop()
        print(f"  services stopped; submitting {n:,} referrals")
        arrivals = reroute.expect(n)
        await publish(reroute.js, reroute.subject, bodies, due=[])
        print("  all submitted (stored by JetStream); starting the services")
        start = time.perf_counter()
        await reroute.start()
        ready = time.perf_counter() - start
        await watch(arrivals, "drain", timeout=900)
        total = time.perf_counter() - start
    return [(f"drain: a backlog of {n:,} referrals drained {total:.1f} s after the services were started "
             f"({n / total:,.0f} referrals/s; all three ready after {ready:.1f} s); placed {arrivals.kinds['placed']:,}")]


def drain(args: argparse.Namespace, reg: Registry) -> list[str]:
    print(f"drain: {args.backlog:,} referrals submitted while the services are down")
    with tempfile.TemporaryDirectory(prefix="reroute-bench-") as tmp, nats_server(Path(tmp)) as url:
        return asyncio.run(drain_after_outage(url, Path(tmp) / "data", referrals(args.backlog, args.seed), reg,
                                              replicas=args.replicas))


def _sections(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    if unknown := [s for s in chosen if s not in SECTIONS]:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    return chosen


def _replicas(text: str) -> dict[str, int]:
    replicas = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, count = part.partition("=")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"replicas are service=count, comma-separated (intake=2,risk=2), with services among "
                f"{', '.join(SERVICES)} and counts of 1 or more, not {part!r}")
        replicas[name] = int(count)
    return replicas


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates are numbers a second, comma-separated (10,50,100), not {text!r}")
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be above 0")
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", type=_sections, default=list(SECTIONS),
                        help=f"which to run, comma-separated (default: {','.join(SECTIONS)})")
    parser.add_argument("--mentors", type=int, default=500)
    parser.add_argument("--referrals", type=int, default=2000, help="referrals per flood")
    parser.add_argument("--rounds", type=int, default=3, help="flood rounds: each runs the raw relay, then reroute")
    parser.add_argument("--rates", type=_rates, default=[10.0, 50.0, 100.0],
                        help="offered rates for the latency section, referrals a second (default: 10,50,100)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of sending at each rate")
    parser.add_argument("--backlog", type=int, default=2000, help="referrals submitted during the outage")
    parser.add_argument("--replicas", type=_replicas, default={},
                        help="processes of a service, e.g. intake=2,risk=2 (default: one of each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample each service with py-spy during every flood and paced run, into DIR (the bench "
                             "extra installs py-spy)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it happens
    reg = registry(args.mentors, args.seed)
    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
    kinds = Counter(str(m["kind"]) for m in reg.mentors)
    print(f"{args.mentors} mentors ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}) in "
          f"{len({b for m in reg.mentors for b in m['boroughs']})} boroughs, {len(reg.venues)} venues, "
          f"{len(reg.leave)} on leave; {database}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"sections {', '.join(args.sections)}"
          + "".join(f"; {name} ×{n}" for name, n in args.replicas.items() if n > 1))
    started = time.perf_counter()
    run = {"flood": flood, "latency": latency, "drain": drain}
    summary = [line for section in args.sections for line in run[section](args, reg)]
    print(f"\nsummary ({database}, {args.mentors} mentors, {(time.perf_counter() - started) / 60:.1f} min, "
          f"load {os.getloadavg()[0]:.1f} at the end):")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
