"""The batch round's plan against an earlier revision's, on the same instance, in the same run.

    .venv/bin/python -m bench.round_speed --against REV [--size 500] [--ratio 10] [--repeats 3]

Takes `REV`'s tree out with `git archive` into a temporary directory, generates one instance with this tree's
generator (bench/instances.py) and writes it to a file, then times the round's plan (`optimiser.optimise` with
the service's time limit) in REV's tree and in this one by turns (old then new, then new then old, ...), each
time in a fresh process (bench/round_worker.py, with the tree first on the path), so both see the same
instance, the same interpreter and the same load. Prints each run's wall-clock and CPU time, their medians and
new ÷ old; then scores one plan of each with this tree's evaluator after holding rooms as the service does
(placements and the gap to the bound, cadence kept, deadlines met, very high seen within 24 h) and says whether
every run of a revision gave the same plan (the repair re-solves stop at the time limit, so load can change it).
With `--loop`, one more plan of each runs as that revision's service makes it (on a worker thread before
issue 15's last change, in a process of its own after: bench/round_worker.py) beside an event loop that wakes
every millisecond, and it prints that plan's wall-clock and how long the loop waited: a plan on a thread holds the
GIL while OR-Tools solves.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

from bench import evaluator
from bench.evaluator import Booking, Report
from bench.instances import Instance, generate
from bench.scheduling_quality import hold_rooms, placement_bound, very_high_on_time_bound
from shared.contracts.codes import Tier

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("round_worker.py")
SERVICE_TIME_LIMIT_S = 30.0  # reoptimisation.TIME_LIMIT_S


@dataclass(frozen=True)
class Run:
    """One timed plan."""

    label: str
    wall_s: float
    cpu_s: float
    plan: dict[str, Booking]
    loop_gaps_s: list[float]  # with --loop: the event loop's gaps between wake-ups while the plan ran
    online_placed: int | None  # how many the online schedule the round made too placed; None: not made (or no such
    # step); -1: given up part way
    online_taken: bool | None  # whether the plan is that online schedule


def checkout(rev: str, into: Path) -> str:
    """`rev`'s tree written into `into`; its short commit id."""
    commit = subprocess.run(["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def write_instance(inst: Instance, path: Path) -> None:
    """The instance as plain records; states rebuilt from their fields so no cached work goes with them."""
    mentors = [replace(state) for state in inst.mentors]
    cases = [replace(case) for case in inst.cases]
    path.write_bytes(pickle.dumps((inst.now, cases, mentors)))


def time_plan(label: str, tree: Path, instance: Path, work: Path, time_limit_s: float, *, loop: bool = False) -> Run:
    out = work / f"plan-{label}.pickle"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, str(WORKER), str(instance), str(out), str(time_limit_s), *(["loop"] if loop else [])],
                   cwd=tree, env=env, check=True)
    result = pickle.loads(out.read_bytes())
    if not Path(result["optimiser"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{label} ran {result['optimiser']}, not the optimiser in {tree}")
    return Run(label, result["wall_s"], result["cpu_s"], result["plan"], result["loop_gaps_s"],
               result.get("online_placed"), result.get("online_taken"))


def plan_digest(plan: dict[str, Booking]) -> str:
    text = repr(sorted((rid, mentor, [(s.timestamp(), e.timestamp()) for s, e in sessions])
                       for rid, (mentor, sessions) in plan.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def score(inst: Instance, plan: dict[str, Booking]) -> Report:
    schedule = hold_rooms(inst.cases, inst.mentors, plan)
    return evaluator.evaluate(inst.cases, inst.mentors, schedule.bookings, now=inst.now, visits=schedule.visits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the revision to compare with (a commit, tag or branch)")
    parser.add_argument("--size", type=int, default=500, help="mentors")
    parser.add_argument("--ratio", type=int, default=10, help="referrals per mentor")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed plans per revision")
    parser.add_argument("--time-limit", type=float, default=SERVICE_TIME_LIMIT_S, help="optimise's time_limit_s")
    parser.add_argument("--loop", action="store_true",
                        help="then one more plan each on a worker thread beside an event loop: its longest waits")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    inst = generate(args.size, args.size * args.ratio, seed=args.seed)
    runs: dict[str, list[Run]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="round-speed-") as tmp:
        work = Path(tmp)
        commit = checkout(args.against, work / "old")
        instance = work / "instance.pickle"
        write_instance(inst, instance)
        trees = {"old": work / "old", "new": ROOT}
        print(f"{inst.name} seed {args.seed}: {commit} (old) against this tree (new), {args.repeats} runs each, "
              f"{os.cpu_count()} CPUs, load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", flush=True)
        for repeat in range(args.repeats):
            for label in ("old", "new") if repeat % 2 == 0 else ("new", "old"):
                run = time_plan(label, trees[label], instance, work, args.time_limit)
                runs[label].append(run)
                online = ("" if run.online_placed is None else
                          ", online schedule made too: given up part way" if run.online_placed == -1 else
                          f", online schedule made too: {run.online_placed:,} placed, taken: {run.online_taken}")
                print(f"  {label}: {run.wall_s:.1f} s wall, {run.cpu_s:.1f} s CPU, {len(run.plan):,} placed "
                      f"(plan {plan_digest(run.plan)}){online}", flush=True)
        for label in ("old", "new") if args.loop else ():
            beside = time_plan(label, trees[label], instance, work, args.time_limit, loop=True)
            gaps = sorted(beside.loop_gaps_s)
            print(f"  {label} as its service plans ({beside.wall_s:.1f} s wall, plan {plan_digest(beside.plan)}): "
                  f"the event loop woke every {statistics.median(gaps) * 1000:.0f} ms "
                  f"(median), waited longest {gaps[-1] * 1000:,.0f} ms, {sum(g > 0.1 for g in gaps)} waits over "
                  f"100 ms", flush=True)
    end_load = os.getloadavg()
    print(f"load at the end {end_load[0]:.1f} / {end_load[1]:.1f} / {end_load[2]:.1f}")
    median = {label: (statistics.median(r.wall_s for r in rs), statistics.median(r.cpu_s for r in rs))
              for label, rs in runs.items()}
    print(f"median wall: old {median['old'][0]:.1f} s, new {median['new'][0]:.1f} s, "
          f"new ÷ old {median['new'][0] / median['old'][0]:.2f}")
    print(f"median CPU:  old {median['old'][1]:.1f} s, new {median['new'][1]:.1f} s, "
          f"new ÷ old {median['new'][1] / median['old'][1]:.2f}")
    bound, _ = placement_bound(inst)
    very_high = sum(1 for case in inst.cases if case.tier == Tier.VERY_HIGH)
    vh_bound = very_high_on_time_bound(inst)
    print(f"\nbound {bound:,} placed; very high {very_high:,}, of whom at most {vh_bound:,} can be seen within 24 h")
    print("| revision | placed | gap to bound | sessions | cadence kept | deadline met | very high within 24 h "
          "| hard violations | same plan every run |\n|---|---|---|---|---|---|---|---|---|")
    failed = False
    for label, name in (("old", commit), ("new", "this tree")):
        report = score(inst, runs[label][0].plan)
        same = len({plan_digest(r.plan) for r in runs[label]}) == 1
        failed |= bool(report.violations)
        vh = report.met_by_tier.get("very_high", 0)
        print(f"| {name} | {report.placed:,} | {bound - report.placed:,} ({(bound - report.placed) / bound:.1%}) "
              f"| {report.sessions:,} | {report.cadence_kept:.1%} | {report.deadline_met:,} "
              f"| {vh:,} of {very_high:,} (bound {vh_bound:,}) | {len(report.violations)} | {'yes' if same else 'no'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
