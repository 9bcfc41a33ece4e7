"""One referral's traces after a year of traffic: the console's indexed span store against the scan of every span
file that `reroute trace` did before it (and still does where no store exists).

    .venv/bin/python -m bench.span_store [--referrals 50000] [--spans 20] [--lookups 200] [--scans 3]

A year's spans, made up as the services make them: `--referrals` referrals, each one trace of `--spans` spans across
intake, risk and scheduling (the ids and outcomes they carry, `referral.id` on each), started over 365 days; one in
ten with an agency's request in a trace of its own linked to it, one in fifty with a span that failed. They are
written as span files (three services, a few processes each: what the services write without a console) and imported
into a span store (as the console does), both in a temporary directory. Then, for referrals picked at random, their
traces (own and linked) are found by the store (`--lookups` of them: p50, p99) and by the file scan (`--scans`), and
the Traces page's three lists are read from the store. Wall-clock times on this machine: run it on a quiet one.
Prints a markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from shared.span_store import SpanStore
from shared.telemetry import TRACES_DIR, StoredSpan, spans_of_referral

YEAR_NS = 365 * 86_400 * 10**9
MS = 1_000_000
STEPS = [("intake", "POST /v1/referrals"), ("intake", "intake store referral"), ("intake", "referrals.accepted publish"),
         ("risk", "intake.recorded process"), ("risk", "risk assess"), ("risk", "risk.assessed publish"),
         ("scheduling", "intake.recorded process"), ("scheduling", "risk.assessed process"),
         ("scheduling", "scheduling match"), ("scheduling", "sessions.scheduled publish")]


def year_of_spans(directory: Path, referrals: int, per_trace: int, seed: int = 1) -> list[str]:
    """Span files in `directory` holding a year of traffic; returns the referral ids."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    files = {f"{service}-{pid}": (directory / f"{service}-{pid}.jsonl").open("w", encoding="utf-8")
             for service in ("intake", "risk", "scheduling") for pid in range(1000, 1004)}
    ids = []
    try:
        for number in range(referrals):
            referral_id = f"ref_{rng.getrandbits(64):016x}"
            ids.append(referral_id)
            trace_id, start = f"{rng.getrandbits(128):032x}", rng.randrange(YEAR_NS)
            pid = 1000 + number % 4
            parent, begin = None, start
            caller = f"{rng.getrandbits(128):032x}" if number % 10 == 0 else None
            for i in range(per_trace):
                service, name = STEPS[i % len(STEPS)]
                span_id = f"{rng.getrandbits(64):016x}"
                begin += rng.randrange(1, 40) * MS
                record = {"trace_id": trace_id, "span_id": span_id, "parent_id": parent, "name": name,
                          "service": service, "start_ns": begin, "end_ns": begin + rng.randrange(1, 30) * MS,
                          "status": "ERROR" if number % 50 == 0 and i == per_trace - 1 else "UNSET",
                          "attributes": {"referral.id": referral_id, "agency.id": f"yot-{number % 40}",
                                         "messaging.system": "nats", "reroute.outcome": "ok"},
                          "links": [{"trace_id": caller, "span_id": "00f067aa0ba902b7"}] if caller and i == 0 else []}
                files[f"{service}-{pid}"].write(json.dumps(record, separators=(",", ":")) + "\n")
                parent = span_id
            if caller:
                files[f"intake-{pid}"].write(json.dumps({
                    "trace_id": caller, "span_id": "00f067aa0ba902b7", "parent_id": None, "name": "GET /v1/referrals",
                    "service": "intake", "start_ns": start + 5 * MS, "end_ns": start + 9 * MS, "status": "UNSET",
                    "attributes": {"referral.id": referral_id}, "links": [{"trace_id": trace_id, "span_id": "0" * 16}],
                }, separators=(",", ":")) + "\n")
    finally:
        for fh in files.values():
            fh.close()
    return ids


def _key(span: StoredSpan) -> tuple[int, str, str]:
    return span.start_ns, span.trace_id, span.span_id


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=50_000)
    parser.add_argument("--spans", type=int, default=20, help="spans in each referral's trace")
    parser.add_argument("--lookups", type=int, default=200, help="referrals looked up in the store")
    parser.add_argument("--scans", type=int, default=3, help="referrals looked up by scanning the files")
    args = parser.parse_args()
    rng = random.Random(2)
    with tempfile.TemporaryDirectory(prefix="bench-spans-") as temporary:
        data_dir = Path(temporary)
        began = time.perf_counter()
        ids = year_of_spans(data_dir / TRACES_DIR, args.referrals, args.spans)
        made = time.perf_counter() - began
        files_size = sum(p.stat().st_size for p in (data_dir / TRACES_DIR).glob("*.jsonl"))
        store = SpanStore.of(data_dir)
        began = time.perf_counter()
        stored = store.import_files()
        imported = time.perf_counter() - began
        store_size = sum(p.stat().st_size for p in store.path.parent.glob(store.path.name + "*"))

        picked = rng.sample(ids, min(args.lookups, len(ids)))
        times, found = [], 0
        for referral_id in picked:
            began = time.perf_counter()
            found += len(store.spans_of_referral(referral_id))
            times.append(time.perf_counter() - began)
        times.sort()
        p50, p99 = statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]
        began = time.perf_counter()
        lists = [store.recent(20), store.slowest(20), store.failed(20)]
        store.spans_of_traces({t for ids_ in lists for t in ids_})
        page = time.perf_counter() - began

        scans = []
        for referral_id in picked[:args.scans]:
            began = time.perf_counter()
            scanned = spans_of_referral(data_dir, referral_id)
            scans.append(time.perf_counter() - began)
            assert sorted(scanned, key=_key) == sorted(store.spans_of_referral(referral_id), key=_key), "they disagree"
        store.close()

    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.referrals:,} referrals × {args.spans} spans "
          f"= {stored:,} spans stored (files {files_size / 2**20:,.0f} MiB written in {made:.0f} s; store "
          f"{store_size / 2**20:,.0f} MiB, imported in {imported:.0f} s, {stored / imported:,.0f} spans/s); "
          f"{found / len(picked):.1f} spans per referral found")
    print("| one referral's traces | p50 | p99 | lookups |\n|---|---|---|---|")
    print(f"| span store (index) | {ms(p50)} | {ms(p99)} | {len(times)} |")
    print(f"| scan of every span file | {ms(statistics.median(scans))} | {ms(max(scans))} (slowest) | {len(scans)} |")
    print(f"| Traces page's three lists of 20, with their spans (store) | {ms(page)} | | 1 |")


if __name__ == "__main__":
    main()
