"""Intake's, risk's and scheduling's cost per referral in their batch transactions, in-process (no NATS, no other
process).

    .venv/bin/python -m bench.service_cost                     # 2,000 referrals, batches of 256, 500 mentors, SQLite
    .venv/bin/python -m bench.service_cost --profile intake    # and the top functions of intake's part (cProfile)

What each service's consumer does for a fetched batch, short of the network: a span per message started from the
message's headers (as `BatchConsumer` does), then `commit_batch` with the service's handler (inbox check, decision,
state, outbox, one transaction), then the spans ended, exported as JSON lines by the SDK's batch processor as in a
service. Intake takes bench/workload.py's referrals; risk takes the `intake.recorded` events intake wrote (with
their trace headers); scheduling takes intake's `intake.recorded` events and then risk's `risk.assessed` ones (each
referral booked or waitlisted when its assessment arrives, as in the flood) against bench/workload.py's registry of
--mentors mentors and their venues, imported first (leave left out). CPU time of the process (the span exporter's thread included), per referral; the median of
--repeats runs, each on a fresh database. The flood (`python -m bench.pipeline`) measures the rest: fetching,
publishing, acking. With DATABASE_URL, PostgreSQL schemas of their own (dropped afterwards).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import pstats
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from cryptography.fernet import Fernet
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from sqlalchemy import Engine, text

from bench.workload import AGENCY, Registry, referrals, registry
from services.intake.crypto import load_keys
from services.intake.handlers import handle_submissions
from services.intake.settings import IntakeSettings
from services.risk.handlers import handle_recorded
from services.risk.shipped_rules import SHIPPED_RULES
from services.scheduling import store as scheduling_store
from services.scheduling.handlers import handle_assessed, handle_intake
from shared import heap
from shared.contracts.rules import load_rules
from shared.contracts.scheduling import MentorRecord, VenueRecord
from shared.db import DatabaseThread, is_postgres, make_engine
from shared.messaging import BatchConsumer, BatchHandler, commit_batch
from shared.migrations import upgrade
from shared.outbox import OutboxRelay, Outgoing
from shared.settings import ServiceSettings
from shared.subjects import Subjects
from shared.telemetry import setup_tracing

SUBJECTS = Subjects()


@contextmanager
def database(service: str, data_dir: Path, settings: ServiceSettings) -> Iterator[Engine]:
    """The service's tables migrated to head (a schema of its own on PostgreSQL, dropped afterwards)."""
    engine = make_engine(service, settings)
    upgrade(engine, service)
    try:
        yield engine
    finally:
        if is_postgres(engine):
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{settings.db_schema_prefix}_{service}" CASCADE'))
        engine.dispose()


def consume(service: str, engine: Engine, handler: BatchHandler, msgs: list[Msg], provider: TracerProvider, *,
            batch: int) -> tuple[float, list[Outgoing]]:
    """CPU seconds to take `msgs` through `service`'s batch transactions, and the events they wrote."""
    thread = DatabaseThread(service, engine)
    consumer = BatchConsumer(service=service, js=None, database=thread, relay=OutboxRelay(thread, None),  # type: ignore[arg-type]
                             tracer=provider.get_tracer(service), subjects=SUBJECTS, stream="bench",
                             filter_subjects=[], durable=f"{service}-bench", handler=handler)
    thread.close()
    out: list[Outgoing] = []
    start = time.process_time()
    for i in range(0, len(msgs), batch):
        deliveries = [consumer._delivery(m) for m in msgs[i:i + batch]]
        out += commit_batch(engine, handler, deliveries, consumer=consumer.durable, relay=consumer._relay)
        for d in deliveries:
            d.span.end()
    provider.force_flush()
    return time.process_time() - start, out


def message(subject: str, data: bytes, headers: dict[str, str]) -> Msg:
    return Msg(_client=None, subject=subject, data=data, headers=headers)  # type: ignore[arg-type]


def run_once(bodies: list[bytes], reg: Registry, *, batch: int, profile: str | None) -> tuple[dict[str, float], str]:
    """One run of intake, then risk, then scheduling, on fresh databases: each one's CPU ms per referral, and the
    digest of scheduling's decisions."""
    with tempfile.TemporaryDirectory(prefix="reroute-cost-") as tmp:
        data_dir = Path(tmp)
        prefix = f"cost{uuid.uuid4().hex[:8]}"
        intake_settings = IntakeSettings(data_dir=data_dir, db_schema_prefix=prefix,
                                         intake_encryption_key=SecretStr(Fernet.generate_key().decode()),
                                         intake_matching_key=SecretStr(Fernet.generate_key().decode()))
        keys = load_keys(intake_settings)
        provider = setup_tracing("bench", data_dir)
        submitted = [message(SUBJECTS.submitted(AGENCY), body, {"Nats-Msg-Id": f"sub-{i}"})
                     for i, body in enumerate(bodies)]
        costs: dict[str, float] = {}
        plain = ServiceSettings(data_dir=data_dir, db_schema_prefix=prefix)
        with database("intake", data_dir, intake_settings) as intake_engine, \
                database("risk", data_dir, plain) as risk_engine, \
                database("scheduling", data_dir, plain) as scheduling_engine:
            intake: Callable[[], tuple[float, list[Outgoing]]] = partial(
                consume, "intake", intake_engine, partial(handle_submissions, subjects=SUBJECTS, keys=keys,
                                                          max_body_bytes=intake_settings.intake_max_body_bytes,
                                                          tracer=provider.get_tracer("intake"), status_base=None),
                submitted, provider, batch=batch)
            seconds, out = _profiled(intake, profile == "intake")
            costs["intake"] = seconds * 1000 / len(bodies)
            recorded = [message(o.subject, o.payload, {**o.headers, "Nats-Msg-Id": o.event_id})
                        for o in out if o.subject.startswith(SUBJECTS.recorded(""))]
            assert len(recorded) == len(bodies), f"intake recorded {len(recorded)} of {len(bodies)}"
            risk = partial(consume, "risk", risk_engine,
                           partial(handle_recorded, rules=load_rules(SHIPPED_RULES), subjects=SUBJECTS),
                           recorded, provider, batch=batch)
            seconds, out = _profiled(risk, profile == "risk")
            costs["risk"] = seconds * 1000 / len(bodies)
            assessed = [message(o.subject, o.payload, {**o.headers, "Nats-Msg-Id": o.event_id})
                        for o in out if o.subject.startswith("risk.assessed.")]
            assert len(assessed) == len(bodies), f"risk assessed {len(assessed)} of {len(bodies)}"
            with scheduling_engine.begin() as conn:
                now = datetime.now(UTC)
                scheduling_store.save_venues(conn, [VenueRecord.model_validate(v) for v in reg.venues], now=now)
                scheduling_store.save_mentors(conn, [MentorRecord.model_validate(m) for m in reg.mentors], now=now)
            scheduling = partial(_scheduling, scheduling_engine, recorded, assessed, provider, batch=batch)
            seconds, out = _profiled(scheduling, profile == "scheduling")
            costs["scheduling"] = seconds * 1000 / len(bodies)
            booked = [o for o in out if o.subject.startswith((SUBJECTS.scheduled(""), SUBJECTS.waitlisted("")))]
            assert len(booked) >= len(bodies), f"scheduling decided {len(booked)} of {len(bodies)}"
            digest = _digest(booked)
        provider.shutdown()
    return costs, digest


def _scheduling(engine: Engine, recorded: list[Msg], assessed: list[Msg], provider: TracerProvider, *,
                batch: int) -> tuple[float, list[Outgoing]]:
    """Scheduling's two consumers in turn: the facts, then the assessments (which book)."""
    intake_seconds, intake_out = consume("scheduling", engine, partial(
        handle_intake, subjects=SUBJECTS, tracer=provider.get_tracer("scheduling")), recorded, provider, batch=batch)
    risk_seconds, risk_out = consume("scheduling", engine, partial(handle_assessed, subjects=SUBJECTS), assessed,
                                     provider, batch=batch)
    return intake_seconds + risk_seconds, intake_out + risk_out


def _digest(events: list[Outgoing]) -> str:
    """Scheduling's decisions in order (mentor and session times, or the waitlist's reason), as a number to compare
    between trees run on the same day: the same bookings give the same digest."""
    said = []
    for o in events:
        body = json.loads(o.payload)
        said.append([o.subject.split(".")[-2], body.get("mentor_id"), body.get("reason"),
                     [(s["start"], s["end"]) for s in body.get("sessions", [])]])
    return hashlib.sha256(json.dumps(said).encode()).hexdigest()[:12]


def _profiled(work: Callable[[], tuple[float, list[Outgoing]]], on: bool) -> tuple[float, list[Outgoing]]:
    """The part's CPU seconds and events, with what the bench holds so far frozen out of garbage collection, as a
    service freezes its start-up heap (`shared.heap.settle`): the bench's own messages and the earlier parts' events
    are not in a service's process, and full collections walking them were a fifth of scheduling's time here."""
    heap.settle()
    try:
        return _run(work, on)
    finally:
        gc.unfreeze()


def _run(work: Callable[[], tuple[float, list[Outgoing]]], on: bool) -> tuple[float, list[Outgoing]]:
    if not on:
        return work()
    profiler = cProfile.Profile()
    result = profiler.runcall(work)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256, help="messages per batch transaction (a consumer's fetch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mentors", type=int, default=500, help="scheduling's registry (bench/workload.py)")
    parser.add_argument("--profile", choices=["intake", "risk", "scheduling"],
                        help="print cProfile's top functions of one part")
    args = parser.parse_args(argv)
    bodies = referrals(args.referrals, args.seed)
    reg = registry(args.mentors, args.seed)
    results = [run_once(bodies, reg, batch=args.batch, profile=args.profile) for _ in range(args.repeats)]
    runs, digests = [r for r, _ in results], {d for _, d in results}
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.referrals:,} referrals, batches of {args.batch}, "
          f"{args.mentors} mentors; scheduling's decisions {', '.join(sorted(digests))}; CPU ms per "
          "referral, median of " + f"{args.repeats} [each run]: " + "; ".join(
              f"{name} {statistics.median(r[name] for r in runs):.3f} ["
              + ", ".join(f"{r[name]:.3f}" for r in runs) + "]" for name in runs[0]))


if __name__ == "__main__":
    main()
