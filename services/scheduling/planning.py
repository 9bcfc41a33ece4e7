"""The batch round's plan in a process of its own (`python -m services.scheduling.planning`, started per round).

The plan is pure and CPU-bound, and OR-Tools' min-cost-flow solve holds Python's GIL for a second or more at an
organisation's size: on a thread it held up the service's event loop (health, requests, consumers) that long. In a
process of its own it holds nothing of the service's, and its memory (the flow's arcs) goes back to the system when
the round ends. A round is rare, so a fresh process per round (about half a second to start) is simpler than a
pool kept alive beside the service. The job goes in on stdin and the plan comes back on stdout, both pickled plain
data (dataclasses of the domain: `Case`, `MentorState`, `Allocation`); the child writes nothing else there.

The child is ours, started from this interpreter, and reads only what its parent wrote: pickle is safe here. It
gets none of the service's secrets (an allow-listed environment), dies with its parent, is the one the kernel's
out-of-memory killer picks first, and is stopped once it has run for `timeout_s` (REROUTE_PLAN_TIMEOUT_MINUTES), so
one stuck plan cannot hold every later round on the replica.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import pickle
import resource
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.scheduling.constraints import Case, MentorState
from services.scheduling.optimiser import Allocation, optimise
from shared.logs import LogFormat, configure_logging

log = logging.getLogger(__name__)

MODULE = "services.scheduling.planning"


class PlanFailed(Exception):
    """The planning process gave no plan: the optimiser raised there (a fault: its words stay in the log)."""


class PlannerDied(PlanFailed):
    """The planning process ended without a plan: killed (out of memory, say) or crashed."""


class PlanTooBig(PlannerDied):
    """The plan needed more memory than its cap (REROUTE_PLAN_MEMORY_MIB): the round fails, and says why."""


@dataclass(frozen=True)
class PlanJob:
    """Everything `optimise` plans from, as plain picklable data."""

    now: datetime
    cases: list[Case]
    mentors: list[MentorState]
    current: dict[str, str]
    time_limit_s: float

    @classmethod
    def of(cls, cases: Sequence[Case], mentors: Sequence[MentorState], *, now: datetime, current: dict[str, str],
           time_limit_s: float) -> PlanJob:
        """The job, its states rebuilt from their fields: the work they cached (days, venues) stays behind."""
        return cls(now, [replace(c) for c in cases], [replace(m) for m in mentors], current, time_limit_s)

    def plan(self) -> Allocation:
        return optimise(self.cases, self.mentors, now=self.now, current=self.current, time_limit_s=self.time_limit_s)


PLAN_TIMEOUT_S = 30 * 60.0
"""The longest a plan may take by default (a plan at 500 mentors x 5,000 referrals takes under a minute here)."""

KEPT_ENVIRONMENT = ("PATH", "LANG", "TZ", "REROUTE_LOG_FORMAT")
"""What the child keeps of the service's environment (and `LC_*`, `PYTHON*`): none of its passwords, URLs or tokens."""

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal this process gets when its parent ends."""

PARENT = "REROUTE_PLANNING_PARENT"
"""The parent's pid, which the child checks after asking to die with it (a parent gone before that, and the child
stops at once)."""


class Planner:
    """Runs each round's plan in a fresh child process, one at a time; `pid` is the child's while it runs."""

    def __init__(self, timeout_s: float = PLAN_TIMEOUT_S, memory_mib: int | None = None) -> None:
        self.timeout_s = timeout_s
        self.memory_mib = memory_mib
        """The most memory the plan may take (its data, RLIMIT_DATA), past which it fails; None: no cap of its own."""
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def plan(self, job: PlanJob) -> Allocation:
        """The plan, made in a child process; `PlanFailed` saying why when there is none. Cancelled, it kills
        the child."""
        if self._process is not None:
            raise RuntimeError("a plan is already being made")
        data = await asyncio.to_thread(pickle.dumps, job, pickle.HIGHEST_PROTOCOL)
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", MODULE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=_child_environment(self.memory_mib))
        try:
            try:
                out, _ = await asyncio.wait_for(process.communicate(data), self.timeout_s)
            except TimeoutError:
                raise PlannerDied(f"the planning process had not finished after {self.timeout_s / 60:g} minutes "
                                  "(REROUTE_PLAN_TIMEOUT_MINUTES) and was stopped") from None
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        finally:
            self._process = None
        if process.returncode != 0 or not out:
            capped = f" (its memory is capped at {self.memory_mib} MiB: REROUTE_PLAN_MEMORY_MIB)" if self.memory_mib else ""
            raise PlannerDied(f"the planning process ended without a plan: {_ending(process.returncode)}{capped}")
        try:
            outcome = pickle.loads(out)  # our own child's output: safe to unpickle
        except Exception as exc:  # noqa: BLE001 - not a whole answer: said as the round's failure
            raise PlanFailed(f"the planning process's answer could not be read ({type(exc).__name__})") from None
        if isinstance(outcome, tuple) and outcome[:1] == (TOO_BIG,):
            raise PlanTooBig(outcome[1])
        if isinstance(outcome, str):
            raise PlanFailed(f"the optimiser failed: {outcome}")
        if not isinstance(outcome, Allocation):
            raise PlanFailed(f"the planning process answered {type(outcome).__name__}, not a plan")
        return outcome


@dataclass
class Rounds:
    """This replica's batch rounds: one at a time, each planned by `planner`."""

    planner: Planner = field(default_factory=Planner)
    since: datetime | None = None
    """When the round in progress started (its read, plan and booking); None: none is."""

    @property
    def in_progress(self) -> bool:
        return self.since is not None


def _ending(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = " (killed: out of memory, or by an operator)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{why}"
    return f"exit code {code}"


def _child_environment(memory_mib: int | None) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT or k.startswith(("LC_", "PYTHON"))}
    return {**kept, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # the modules we run
            "OPENBLAS_NUM_THREADS": "1",  # numpy's arrays only: not a thread (and its buffers) per CPU of the node
            PARENT: str(os.getpid()), **({MEMORY: str(memory_mib)} if memory_mib else {})}


MEMORY = "REROUTE_PLANNING_MEMORY_MIB"
TOO_BIG = "too big"


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent ends (a service killed mid-round leaves no plan
    running on; the signal comes when the thread that started it ends: the service's event loop, its main thread),
    and its out-of-memory killer takes this process before the service."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            log.warning("planning: could not ask to end with the service (errno %d)", ctypes.get_errno())
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except (OSError, AttributeError):  # not Linux: the parent still kills it when the round is cancelled
        pass
    if os.environ.get(PARENT) not in (None, str(os.getppid())):
        sys.exit("the service that started this plan has gone")


def _cap_memory() -> None:
    """The parent's cap on this process's data (RLIMIT_DATA), set once the job is read and numpy and OR-Tools are
    imported (about 65 MiB), so that a cap too low for them fails the plan the one way: a MemoryError, said as
    PlanTooBig."""
    if (cap := os.environ.get(MEMORY)) is not None:
        import numpy  # noqa: F401
        import ortools.graph.python.min_cost_flow  # type: ignore[import-untyped]  # noqa: F401

        limit = int(cap) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # past it an allocation fails: the plan with it


def main() -> None:
    """The child: a job on stdin, its plan on stdout; the optimiser's error, as words, in its place. Anything else
    written to stdout (a library's print) goes to stderr, so the answer stays whole."""
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    fmt: LogFormat = "json" if os.environ.get("REROUTE_LOG_FORMAT", "").strip().lower() == "json" else "text"
    configure_logging("scheduling-planning", "WARNING", fmt)
    _die_with_parent()
    job: PlanJob = pickle.load(sys.stdin.buffer)  # written by our parent: safe to unpickle
    try:
        _cap_memory()
        outcome: Allocation | str | tuple[str, str] = job.plan()
    except MemoryError:  # plain data: this module runs as __main__ here, so its own classes would not unpickle
        if (cap := os.environ.get(MEMORY)) is None:
            outcome = "MemoryError: out of memory, with no cap of its own (the host's or the container's limit)"
        else:
            why = (f"the plan needed more than the {cap} MiB REROUTE_PLAN_MEMORY_MIB allows it (a round over fewer "
                   "referrals, or more memory for scheduling and a higher cap)")
            outcome = (TOO_BIG, why)
    except Exception as exc:  # the parent reports it, and the round fails with it
        log.exception("planning failed")
        outcome = f"{type(exc).__name__}: {exc}"
    answer.write(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
    answer.flush()


if __name__ == "__main__":
    main()
