"""Garbage-collection passes during the three services' batch work, with and without the start-up heap frozen.

    .venv/bin/python -m bench.gc_pauses                      # 3 pairs, 2,000 referrals each, alternately
    .venv/bin/python -m bench.gc_pauses --pairs 1 --referrals 500

Each run is a fresh process running `bench.service_cost` once (intake's, risk's and scheduling's batch transactions
in-process, SQLite, 500 mentors), timed by the services' own `shared.heap.GcPauses`; "frozen" runs
`shared.heap.settle()` once the modules are imported, as a service does once started. Runs alternate so that both
see the same load. It prints each run's passes per generation, their CPU time in all and the longest, and the
three services' CPU per referral (docs/performance.md, "Garbage collection").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def one(referrals: int, freeze: bool) -> dict[str, object]:
    """This process: the bench once, its collections timed (and the heap settled first, if `freeze`)."""
    import contextlib
    import io

    from bench import service_cost
    from shared.heap import GcPauses, settle

    frozen = settle() if freeze else 0
    pauses = GcPauses()
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        service_cost.main(["--referrals", str(referrals), "--repeats", "1"])
    pauses.close()
    return {"frozen": frozen, "count": pauses.count, "seconds": pauses.seconds, "longest": pauses.longest,
            "cost": said.getvalue().strip().rsplit("]:", 1)[-1].strip()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--one", choices=["plain", "frozen"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.referrals, args.one == "frozen")))
        return
    print(f"{args.referrals:,} referrals a run, {args.pairs} pair(s), alternately; CPU ms of each generation's passes")
    print("| run | load | frozen objects | passes (gen 0/1/2) | gen 2 in all | longest gen 2 | gen 1 in all | "
          "CPU per referral |")
    print("|---|---|---|---|---|---|---|---|")
    for _ in range(args.pairs):
        for kind in ("plain", "frozen"):
            load = os.getloadavg()[0]
            done = subprocess.run([sys.executable, "-m", "bench.gc_pauses", "--one", kind,
                                   "--referrals", str(args.referrals)], capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            count, seconds, longest = r["count"], r["seconds"], r["longest"]
            print(f"| {kind} | {load:.1f} | {r['frozen']:,} | {'/'.join(str(n) for n in count)} | "
                  f"{seconds[2] * 1000:,.0f} | {longest[2] * 1000:,.0f} | {seconds[1] * 1000:,.0f} | {r['cost']} |",
                  flush=True)


if __name__ == "__main__":
    main()
