"""The online match's cost per referral as the registry grows: what scheduling's consumer spends per booking.

    .venv/bin/python -m bench.match_cost [--sizes 50,500,2000] [--referrals 500]

For each size, bench/instances.py's London registry (seed 1, the records' default points caps) and `--referrals`
referrals from its sample distribution, matched one after another as the service books them (`matching.match`
with the venues' rooms in view, each booking applied with `with_booking` where it is held, the rooms held, so the
travel time between venues is kept as the service keeps it), timed per referral in
the process's own CPU time (so that other work on a shared machine counts less).
Pure: no database, no NATS. Prints a markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.instances import generate
from services.scheduling.constraints import venues_for
from services.scheduling.matching import Match, MentorIndex, match, with_booking
from services.scheduling.rooms import Rooms


def cost(n_mentors: int, n_referrals: int, warm: int = 0) -> tuple[float, float]:
    """(CPU ms per referral, share placed), after the first `warm` referrals."""
    inst = generate(n_mentors, n_referrals + warm, seed=1, loose_points=False)
    n_referrals += warm
    index = MentorIndex(inst.mentors)
    rooms = Rooms()
    placed = 0
    started = time.process_time()
    for number, case in enumerate(inst.cases):
        if number == warm:  # the first `warm` work out each mentor's days once; the rest is the steady state
            started, placed = time.process_time(), 0
        result = match(case, index, now=inst.now, rooms=rooms)
        if isinstance(result, Match):
            mentor = index[result.mentor_id]
            kept = rooms.place(venues_for(case, mentor), result.sessions, mentor.itinerary)
            if kept:
                placed += 1
                index[result.mentor_id] = with_booking(mentor, [interval for interval, _ in kept], case.tier,
                                                       venues=[venue for _, venue in kept])
    return (time.process_time() - started) * 1000 / (n_referrals - warm), placed / (n_referrals - warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,500,2000")
    parser.add_argument("--referrals", type=int, default=500)
    parser.add_argument("--warm", type=int, default=0, help="referrals matched first, untimed")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.referrals} referrals per size timed, "
          f"after {args.warm} untimed")
    print("| mentors | CPU ms per referral | placed |\n|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        ms, share = cost(size, args.referrals, args.warm)
        print(f"| {size:,} | {ms:.2f} | {share:.0%} |", flush=True)


if __name__ == "__main__":
    main()
