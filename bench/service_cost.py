"""Intake's and risk's cost per referral in their batch transaction, in-process (no NATS, no other process).

    .venv/bin/python -m bench.service_cost                     # 2,000 referrals, batches of 256, SQLite
    .venv/bin/python -m bench.service_cost --profile intake    # and the top functions of intake's part (cProfile)

What each service's consumer does for a fetched batch, short of the network: a span per message started from the
message's headers (as `BatchConsumer` does), then `commit_batch` with the service's handler (inbox check, decision,
state, outbox, one transaction), then the spans ended, exported as JSON lines by the SDK's batch processor as in a
service. Intake takes bench/workload.py's referrals; risk takes the `intake.recorded` events intake wrote (with
their trace headers). CPU time of the process (the span exporter's thread included), per referral; the median of
--repeats runs, each on a fresh database. The flood (`python -m bench.pipeline`) measures the rest: fetching,
publishing, acking. With DATABASE_URL, PostgreSQL schemas of their own (dropped afterwards).
"""

from __future__ import annotations

import argparse
import cProfile
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

from bench.workload import AGENCY, referrals
from services.intake.crypto import load_keys
from services.intake.handlers import handle_submissions
from services.intake.settings import IntakeSettings
from services.risk.handlers import handle_recorded
from services.risk.shipped_rules import SHIPPED_RULES
from shared.contracts.rules import load_rules
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


def run_once(bodies: list[bytes], *, batch: int, profile: str | None) -> dict[str, float]:
    """One run of intake, then risk, on fresh databases; each one's CPU ms per referral."""
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
        with database("intake", data_dir, intake_settings) as intake_engine, \
                database("risk", data_dir, ServiceSettings(data_dir=data_dir, db_schema_prefix=prefix)) as risk_engine:
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
            assert sum(o.subject.startswith("risk.assessed.") for o in out) == len(bodies)
        provider.shutdown()
    return costs


def _profiled(work: Callable[[], tuple[float, list[Outgoing]]], on: bool) -> tuple[float, list[Outgoing]]:
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
    parser.add_argument("--profile", choices=["intake", "risk"], help="print cProfile's top functions of one part")
    args = parser.parse_args(argv)
    bodies = referrals(args.referrals, args.seed)
    runs = [run_once(bodies, batch=args.batch, profile=args.profile) for _ in range(args.repeats)]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.referrals:,} referrals, batches of {args.batch}; CPU ms per "
          "referral, median of " + f"{args.repeats} [each run]: " + "; ".join(
              f"{name} {statistics.median(r[name] for r in runs):.3f} ["
              + ", ".join(f"{r[name]:.3f}" for r in runs) + "]" for name in runs[0]))


if __name__ == "__main__":
    main()
