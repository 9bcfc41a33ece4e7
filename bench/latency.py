"""Latency at a fixed offered rate: an open-loop publisher sends at the rate whatever the pipeline does, and each
message's latency runs from when it was due to its outcome; the in-flight count, sampled each second, shows
whether a backlog grows."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import nats.js

from bench.stack import Arrivals, publish, watch

WARM_UP = 1.0  # seconds at the start left out of the percentiles (connections, first batches, caches)
GROWING = 0.05  # in flight growing faster than this share of the offered rate over the second half: "growing"


@dataclass(frozen=True)
class Paced:
    """One run at a fixed offered rate."""

    rate: float
    sent: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    settled: tuple[float, float]  # p50 and p99 of those due in the second half of the sending, ms (start-up over)
    in_flight: tuple[int, ...]  # sent but without an outcome, at each quarter of the sending
    growth: float  # how fast the in-flight count grew over the second half of the sending, per second
    tail_s: float  # from the last send to the last outcome
    stages: dict[str, tuple[float, float]]  # p50 and p99 from submission to each stage on the way, ms

    @property
    def backlog_grows(self) -> bool:
        return self.growth > GROWING * self.rate

    def summary(self) -> str:
        backlog = (f"backlog GROWS {self.growth:,.1f}/s" if self.backlog_grows
                   else f"no growing backlog ({self.growth:+.1f}/s)")
        return (f"p50 {self.p50_ms:,.0f} ms, p99 {self.p99_ms:,.0f} ms, max {self.max_ms:,.0f} ms (second half: p50 "
                f"{self.settled[0]:,.0f} ms, p99 {self.settled[1]:,.0f} ms); in flight at each "
                f"quarter of the sending {', '.join(f'{n:,}' for n in self.in_flight)}: {backlog}; last outcome "
                f"{self.tail_s:.1f} s after the last send"
                + "".join(f"; to {stage} p50 {p50:,.0f} ms, p99 {p99:,.0f} ms"
                          for stage, (p50, p99) in self.stages.items()))


async def paced(js: nats.js.JetStreamContext, subject: str, bodies: list[bytes], arrivals: Arrivals, *,
                rate: float, label: str, every: float = 5.0) -> Paced:
    """Send `bodies` at `rate` a second and wait for every outcome (printing progress every `every` seconds)."""
    due: list[float] = []
    sending = asyncio.create_task(publish(js, subject, bodies, due=due, rate=rate))
    samples: list[tuple[float, int]] = []  # (seconds since start, in flight)
    start = time.perf_counter()
    while not sending.done():
        await asyncio.wait({sending}, timeout=1.0)
        elapsed = time.perf_counter() - start
        samples.append((elapsed, len(due) - len(arrivals.at)))
        if len(samples) % every == 0 and not sending.done():
            print(f"    {label}: {elapsed:.0f} s, {len(due):,} sent, {len(arrivals.at):,} outcomes, "
                  f"{samples[-1][1]:,} in flight")
    await sending  # raises what the publisher raised
    samples.append((time.perf_counter() - start, len(due) - len(arrivals.at)))
    await watch(arrivals, f"{label}, the rest", timeout=600, every=every)
    counted = [i for i in range(len(bodies)) if due[i] - due[0] >= WARM_UP]
    late = [arrivals.at[i] - due[i] for i in counted]
    cuts = percentiles(late)
    halfway = due[0] + (due[-1] - due[0]) / 2
    settled = percentiles([arrivals.at[i] - due[i] for i in counted if due[i] >= halfway])
    stages = {stage: (cut[49] * 1000, cut[98] * 1000)
              for stage, ats in arrivals.stages.items()
              if (cut := percentiles([ats[i] - due[i] for i in counted if i in ats]))}
    end = samples[-1][0]
    half = [(t, n) for t, n in samples if t >= end / 2]
    growth = statistics.linear_regression([t for t, _ in half], [n for _, n in half]).slope if len(half) > 1 else 0.0
    quarters = tuple(next(n for t, n in samples if t >= end * k / 4) for k in (1, 2, 3, 4))
    return Paced(rate, len(bodies), cuts[49] * 1000, cuts[98] * 1000, max(late) * 1000,
                 (settled[49] * 1000, settled[98] * 1000) if settled else (0.0, 0.0), quarters, growth,
                 max(arrivals.at.values()) - due[-1], stages)


def percentiles(values: list[float]) -> list[float]:
    """The 99 cut points of `values` (the 50th is index 49); empty when there are fewer than two."""
    return statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else []
