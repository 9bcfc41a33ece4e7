"""Does scheduling slow down as history grows? The same operations timed on a database holding a simulated year
and on one holding none, both with the same registry and the same present.

    .venv/bin/python -m bench.history [--referrals 50000] [--sessions-per-referral 9] [--repeats 30]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.history
    .venv/bin/python -m bench.history --revision 0007   # before migration 0008's indexes, then after, same data

Two scheduling databases (SQLite files in a temporary directory, or two schemas of their own on PostgreSQL when
DATABASE_URL is set, dropped at the end), migrated to head, each given bench/workload.py's registry (500 mentors
of all three kinds, the boroughs' venues and rooms, leave) through the store. Then:

history  Only in one of them: a simulated year of closed referrals (`--referrals`, referred over the last year
         and closed before this week) and their weekly sessions (`--sessions-per-referral` each: attended, missed,
         cancelled, a few never recorded and still booked), inserted in bulk into the service's own tables, not
         through the pipeline. Nothing of it holds a place or a room now, and its young people
         are not the present's, so both databases hold the same present and every choice is the same in both.
present  In both, `--present` referrals drawn from the sample distribution, booked through scheduling's own
         handlers (facts, then the assessment, in batches): the open cases, their sessions and a waitlist.

Then each operation is timed, alternating between the two databases `--repeats` times (wall time, so that
PostgreSQL's own work counts), through the service's functions on the real database, without NATS:

match         a new referral's facts, then its assessment, each in its own transaction (`handle_intake`,
              `handle_assessed`: decide, book, store), as the consumers run them one at a time
match-loaded  the same right after another writer's change: booking loads every mentor and room (`booking_state`)
status        `status` of one open referral (rpc.status)
calendar      one mentor's next week (rpc.calendar)
borough       a borough's next week: every mentor covering it (rpc.list_mentors, then rpc.calendar for each, as the
              console's borough page asks)
round-read    the batch round's read (`read_round`); round-plan is the optimiser on it (`plan_round`, pure) and
              round-book its booking (`book_round`, rolled back; both databases book the same plan), every
              `--round-every` repeats

Prints a markdown table: the median of each operation on each database and the ratio history/empty (with
`--revision`, one at that migration and one at head, after upgrading both databases, timed).
Run on demand, not in tests; docs/performance.md ("As history grows") records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, cast

from alembic import command
from opentelemetry import trace
from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import col

from bench.instances import draw_case
from bench.workload import INDICATORS_FOR, registry
from services.risk.handlers import Case as RiskCase
from services.risk.handlers import next_assessment
from services.risk.shipped_rules import SHIPPED_RULES
from services.scheduling import rpc, store
from services.scheduling.constraints import default_offices
from services.scheduling.handlers import handle_assessed, handle_intake
from services.scheduling.optimiser import Allocation
from services.scheduling.reoptimisation import book_round, plan_round, read_round
from services.scheduling.slots import LONDON
from services.scheduling.tables import CaseRow, SessionRow
from shared.contracts.codes import LONDON_BOROUGHS, place_key
from shared.contracts.intake import Indicator, PersonFacts, Preferences, ReferralRecorded
from shared.contracts.risk import RiskAssessed
from shared.contracts.rpc import Empty
from shared.contracts.rules import load_rules
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionStatus, VenueRecord
from shared.contracts.scheduling_rpc import CalendarRequest, ReferralRequest
from shared.db import is_postgres, make_engine
from shared.messaging import Delivery
from shared.migrations import config, schema_of, upgrade
from shared.settings import ServiceSettings
from shared.subjects import Subjects

AGENCY = "bench"
Referral = tuple[ReferralRecorded, RiskAssessed]  # its facts, and risk's assessment of them
SUBJECTS = Subjects()
RULES = load_rules(SHIPPED_RULES)
CHUNK = 10_000  # rows per insert statement while filling
OUTCOMES = [(SessionStatus.ATTENDED, 70), (SessionStatus.MISSED, 10), (SessionStatus.CANCELLED, 15),
            (SessionStatus.BOOKED, 5)]  # the history's sessions; a few were never recorded


@dataclass
class Database:
    """One scheduling database with the store's per-process memory of it (what booking keeps between batches),
    swapped in while it is worked on, as each service process has its own."""

    name: str
    engine: Engine
    kept: list[Any] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)
    venues: list[Any] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    @contextmanager
    def current(self) -> Iterator[None]:
        store._KEPT, store._SEEN, store._VENUES = self.kept, self.seen, self.venues
        try:
            yield
        finally:
            store._KEPT, store._SEEN, store._VENUES = [], {}, []

    def timed(self, op: str, work: Callable[[], object]) -> None:
        with self.current():
            started = time.perf_counter()
            work()
            self.times.setdefault(op, []).append((time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class _Host:
    """What the rpc functions use of the service host: the engine, and a database thread (here: run inline)."""

    engine: Engine

    @property
    def database(self) -> _Host:
        return self

    async def run(self, work: Callable[[], Any]) -> Any:
        return work()


def _engine(root: Path, name: str, revision: str | None) -> Engine:
    settings = ServiceSettings(data_dir=root / name, db_schema_prefix=f"bh{uuid.uuid4().hex[:8]}",  # type: ignore[call-arg]
                               DATABASE_URL=os.environ.get("DATABASE_URL"))
    engine = make_engine("scheduling", settings)
    if revision is None:
        upgrade(engine, "scheduling")
    else:  # an earlier schema, to compare with head
        with engine.begin() as conn:
            if is_postgres(engine):
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema_of(engine)}"'))
            command.upgrade(config("scheduling", conn), revision)
    return engine


def register(engine: Engine, *, mentors: int, now: datetime) -> list[MentorRecord]:
    reg = registry(mentors, seed=1)
    records = [MentorRecord.model_validate(m) for m in reg.mentors]
    with engine.begin() as conn:
        store.save_venues(conn, [VenueRecord.model_validate(v) for v in reg.venues], now=now)
        store.save_mentors(conn, records, now=now)
        for leave in reg.leave:
            store.add_leave(conn, leave["mentor_id"], date.fromisoformat(leave["first_day"]),
                            date.fromisoformat(leave["last_day"]), now=now)
    return records


def facts(i: int, rng: random.Random, weights: list[float], *, now: datetime, person_id: str,
          referral_id: str | None = None) -> ReferralRecorded:
    """A referral's facts drawn from the sample distribution (bench/instances.py), as intake records them."""
    case = draw_case(rng, i, now, weights)
    gender: Any = "any" if case.mentor_gender == "not_stated" else case.mentor_gender
    return ReferralRecorded(
        event_id=f"recorded:{referral_id or i}", occurred_at=now, referral_id=referral_id or f"ref_{uuid.uuid4().hex}",
        agency_id=AGENCY, agency_referral_id=f"H-{i}", person_id=person_id,
        person=PersonFacts(age_years=15, age_band="14-15", gender=rng.choice(["male", "female"]),
                           borough=case.borough, languages=list(case.languages)),
        indicators=[Indicator(code=code) for code in INDICATORS_FOR[case.tier](rng)], protective_factors=[],
        unsafe_areas=list(case.unsafe_areas), preferences=Preferences(mentor_gender=gender,
                                                                      language=case.preferred_language),
        availability=list(case.availability))


def _with_assessment(recorded: ReferralRecorded, *, now: datetime) -> Referral:
    return recorded, assessed(recorded, now=now)


def assessed(recorded: ReferralRecorded, *, now: datetime) -> RiskAssessed:
    first = RiskAssessed.model_construct(referral_id=recorded.referral_id, number=0, escalations=[])
    return next_assessment(RiskCase(recorded, first, new=True), recorded, rules=RULES, now=now,
                           cause="referral").assessed


def _delivery(subject: str, event: ReferralRecorded | RiskAssessed) -> Delivery:
    return Delivery(subject, event.model_dump_json().encode(), {}, event.event_id, trace.INVALID_SPAN)


def book(engine: Engine, referrals: list[Referral], *, now: datetime) -> None:
    """The referrals through scheduling's consumers: their facts in one transaction, their assessments (risk's,
    worked out beforehand) in another."""
    with engine.begin() as conn:
        handle_intake(conn, [_delivery(SUBJECTS.recorded(AGENCY), r) for r, _ in referrals], now, subjects=SUBJECTS)
    with engine.begin() as conn:
        handle_assessed(conn, [_delivery(SUBJECTS.assessed(AGENCY), a) for _, a in referrals], now, subjects=SUBJECTS)


def fill_history(engine: Engine, mentors: list[MentorRecord], *, referrals: int, per_referral: int,
                 now: datetime) -> None:
    """A year of closed referrals and their weekly sessions, all before this week, inserted in bulk."""
    rng = random.Random("history:1")
    weights = [rng.choice([1.0, 1.0, 1.5, 3.0]) for _ in LONDON_BOROUGHS]
    covering: dict[str, list[MentorRecord]] = {}
    for record in mentors:
        for borough in record.boroughs:
            covering.setdefault(place_key(borough), []).append(record)
    monday = datetime.combine(now.astimezone(LONDON).date(), clock(), tzinfo=LONDON)
    monday -= timedelta(days=monday.weekday())
    last_start = monday - timedelta(weeks=per_referral, days=1)  # the last session ends before this week
    statuses, odds = zip(*OUTCOMES, strict=True)
    drawn = [facts(i, rng, weights, now=now, person_id="", referral_id="") for i in range(1_000)]
    cases: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    for i in range(referrals):
        referred = last_start - timedelta(minutes=rng.randint(0, (365 - 7 * per_referral) * 24 * 60))
        person = f"psn_h{rng.randint(0, int(referrals * 0.85))}"  # some young people are referred again
        recorded = rng.choice(drawn).model_copy(update={  # the draw is slow: a thousand, each reused
            "referral_id": f"ref_h{i:06d}", "event_id": f"recorded:ref_h{i:06d}", "person_id": person,
            "occurred_at": referred})
        mentor = rng.choice(covering.get(place_key(recorded.person.borough)) or mentors)
        first = datetime.combine((referred + timedelta(days=rng.randint(1, 5))).date(),
                                 clock(rng.randint(10, 18), rng.choice([0, 30])), tzinfo=LONDON)
        closed = first + timedelta(weeks=per_referral)
        cases.append({
            "referral_id": recorded.referral_id, "agency_id": AGENCY, "person_id": person,
            "facts": recorded.model_dump_json(), "tier": "medium", "cadence_tier": "medium", "wellbeing_tier": "low",
            "assessment_number": 1, "needs": "[]", "status": CaseStatus.CLOSED, "mentor_id": mentor.id,
            "reason": "closed by bench: programme complete", "agency_reason": "programme complete",
            "deadline_met": True, "updated_at": closed})
        venues = [None, default_offices((recorded.person.borough,))[0].id]
        for week in range(per_referral):
            start = first + timedelta(weeks=week)
            venue = rng.choice(venues)
            sessions.append({
                "session_id": f"ses_h{i:06d}_{week}", "referral_id": recorded.referral_id, "mentor_id": mentor.id,
                "venue_id": venue, "route": json.dumps([recorded.person.borough]) if venue else None,
                "mentor_route": None, "start": start, "end": start + timedelta(hours=1),
                "status": rng.choices(statuses, odds)[0], "sequence": 1, "created_at": referred, "updated_at": start})
        if len(sessions) >= CHUNK:
            _insert(engine, cases, sessions)
            cases, sessions = [], []
    _insert(engine, cases, sessions)


def _insert(engine: Engine, cases: list[dict[str, object]], sessions: list[dict[str, object]]) -> None:
    """Into the service's own tables, a thousand rows a statement: an executemany (`store.add_sessions`) is a
    statement a row on PostgreSQL, each changing the booking version (migration 0007): slower, though how much slower
    was not measured apart from the machine's load and generating the rows."""
    with engine.begin() as conn:
        for table, rows in ((CaseRow, cases), (SessionRow, sessions)):
            for at in range(0, len(rows), 1_000):
                conn.execute(insert(table).values(rows[at:at + 1_000]))


def analyse(engine: Engine) -> None:
    """Statistics as autovacuum keeps them on PostgreSQL (SQLite has none unless asked: none is asked for)."""
    if is_postgres(engine):
        with engine.begin() as conn:
            for table in ("session", "sched_case", "mentor_leave"):
                conn.execute(text(f'ANALYZE "{schema_of(engine)}".{table}'))


def present(engine: Engine, *, n: int, now: datetime, batch: int = 100) -> None:
    rng = random.Random("present:1")
    weights = [rng.choice([1.0, 1.0, 1.5, 3.0]) for _ in LONDON_BOROUGHS]
    referrals = [_with_assessment(facts(i, rng, weights, now=now, person_id=f"psn_p{i}", referral_id=f"ref_p{i:06d}"),
                                  now=now) for i in range(n)]
    for at in range(0, n, batch):
        book(engine, referrals[at:at + batch], now=now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentors", type=int, default=500)
    parser.add_argument("--referrals", type=int, default=50_000, help="closed referrals of the simulated year")
    parser.add_argument("--sessions-per-referral", type=int, default=9)
    parser.add_argument("--present", type=int, default=1_500, help="open referrals, in both databases")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--round-every", type=int, default=10, help="time the batch round every this many repeats")
    parser.add_argument("--revision", help="build both databases at this migration (e.g. 0007, before 0008's "
                        "indexes), measure, upgrade both to head, and measure again")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="reroute-history-") as tmp:
        dbs = [Database(name, _engine(Path(tmp), name, args.revision)) for name in ("empty", "history")]
        try:
            run(dbs, args, now=now)
        finally:
            for db in dbs:
                if is_postgres(db.engine):
                    with db.engine.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_of(db.engine)}" CASCADE'))
                db.engine.dispose()
    print(f"database: {'PostgreSQL' if url else 'SQLite'}; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"load {os.getloadavg()[0]:.1f} at the end")


def run(dbs: list[Database], args: argparse.Namespace, *, now: datetime) -> None:
    history = dbs[1]
    for db in dbs:
        with db.current():
            mentors = register(db.engine, mentors=args.mentors, now=now)
    started = time.perf_counter()
    fill_history(history.engine, mentors, referrals=args.referrals, per_referral=args.sessions_per_referral, now=now)
    print(f"history: {args.referrals:,} referrals and {args.referrals * args.sessions_per_referral:,} sessions "
          f"inserted in {time.perf_counter() - started:.0f} s", flush=True)
    for db in dbs:
        started = time.perf_counter()
        with db.current():
            present(db.engine, n=args.present, now=now)
        analyse(db.engine)
        with db.engine.connect() as conn:
            counts: dict[str, int] = dict(conn.execute(
                select(col(CaseRow.status), func.count()).group_by(col(CaseRow.status))).all())
        print(f"{db.name}: present booked in {time.perf_counter() - started:.0f} s: {counts}", flush=True)

    for revision in [args.revision, None] if args.revision else [None]:
        if revision is None and args.revision:
            for db in dbs:
                started = time.perf_counter()
                done = upgrade(db.engine, "scheduling")
                analyse(db.engine)
                print(f"{db.name}: upgraded from {done.before} to {done.after} in "
                      f"{time.perf_counter() - started:.1f} s", flush=True)
        measure(dbs, args, now=now, phase=revision or "head")
        print(f"at {revision or 'head'}:\n{table(dbs)}", flush=True)
        for db in dbs:
            db.times.clear()


def measure(dbs: list[Database], args: argparse.Namespace, *, now: datetime, phase: str) -> None:
    """Each operation `--repeats` times on both databases, alternating which goes first."""
    empty = dbs[0]
    rng = random.Random(f"new:{phase}")
    weights = [rng.choice([1.0, 1.0, 1.5, 3.0]) for _ in LONDON_BOROUGHS]
    with empty.engine.connect() as conn:
        open_ids = sorted(r.referral_id for r in store.cases_in(conn, CaseStatus.SCHEDULED))
        mentor_ids = [m.id for m in store.mentor_records(conn)]
    week = now.astimezone(LONDON).date() + timedelta(days=7 - now.astimezone(LONDON).weekday())  # next Monday
    pick = random.Random(f"ops:{phase}")
    for repeat in range(args.repeats):
        new = [_with_assessment(facts(10_000 + 2 * repeat + k, rng, weights, now=now, person_id=f"psn_n{phase}{repeat}_{k}",
                                      referral_id=f"ref_n{phase}_{repeat:04d}_{k}"), now=now) for k in range(2)]
        referral, mentor_id = pick.choice(open_ids), pick.choice(mentor_ids)
        borough = pick.choice(LONDON_BOROUGHS)
        plan: Allocation | None = None
        for db in dbs if repeat % 2 == 0 else dbs[::-1]:
            operations(db, new, referral=referral, mentor_id=mentor_id, borough=borough, week=week, now=now)
            if repeat % args.round_every == 0:
                plan = _round(db, now=now, plan=plan)
        print(f"repeat {repeat + 1}/{args.repeats}", end="\r", flush=True)


def operations(db: Database, new: list[Referral], *, referral: str, mentor_id: str, borough: str, week: date,
               now: datetime) -> None:
    """Each operation once on `db`: two new referrals matched (the second after another writer's change), a
    referral's status, a mentor's week and a borough's."""
    scheduling = cast(rpc.Scheduling, _Scheduling(_Host(db.engine)))
    db.timed("match", lambda: book(db.engine, new[:1], now=now))
    db.kept.clear()  # as after another writer's change: the booking version differs, booking loads
    db.timed("match-loaded", lambda: book(db.engine, new[1:], now=now))
    db.timed("status", lambda: asyncio.run(rpc.status(ReferralRequest(referral_id=referral), scheduling)))
    db.timed("calendar", lambda: asyncio.run(rpc.calendar(CalendarRequest(mentor_id=mentor_id, start=week, days=7),
                                                          scheduling)))
    db.timed("borough", lambda: asyncio.run(_borough_week(scheduling, borough, week)))


@dataclass(frozen=True)
class _Scheduling:
    host: _Host
    feed_url: str | None = None


async def _borough_week(scheduling: rpc.Scheduling, borough: str, monday: date) -> int:
    """As the console's borough page: the mentors, then the week of each who covers the borough."""
    listed = await rpc.list_mentors(Empty(), scheduling)
    covering = [m for m in listed.mentors if borough in m.boroughs]
    weeks = [await rpc.calendar(CalendarRequest(mentor_id=m.id, start=monday, days=7), scheduling) for m in covering]
    return sum(len(w.sessions) for w in weeks)


def _round(db: Database, *, now: datetime, plan: Allocation | None) -> Allocation:
    """The batch round, timed in its three steps; booked (and rolled back) with `plan`, the other database's, when
    given: the input is the same in both, but a plan cut short by the optimiser's time limit may not be."""
    with db.current():
        started = time.perf_counter()
        with db.engine.connect() as conn:
            planned = read_round(conn, now=now)
        read = time.perf_counter()
        result = plan_round(planned)
        planned_at = time.perf_counter()
        with db.engine.connect() as conn:
            tx = conn.begin()
            book_round(conn, planned, plan or result, now=now, subjects=SUBJECTS, tracer=trace.get_tracer("bench"))
            tx.rollback()
        booked = time.perf_counter()
        store.forget_bookings()
    for op, ms in (("round-read", read - started), ("round-plan", planned_at - read), ("round-book", booked - planned_at)):
        db.times.setdefault(op, []).append(ms * 1000)
    return plan or result


def table(dbs: list[Database]) -> str:
    empty, history = dbs
    lines = ["| operation | empty: median ms | history: median ms | history / empty | n |", "|---|---|---|---|---|"]
    for op, times in empty.times.items():
        a, b = statistics.median(times), statistics.median(history.times[op])
        lines.append(f"| {op} | {a:.1f} | {b:.1f} | {b / a:.2f}× | {len(times)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
