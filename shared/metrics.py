"""A service's metrics: OpenTelemetry instruments, read by Prometheus from /metrics on the ops port (shared/ops.py).

Counters and histograms move as work is done: referrals received per agency (intake's consumer), every event a
service publishes (counted as NATS confirms it, whatever made it: a consumer, a request, a re-optimisation round),
messages processed and redelivered per consumer, dead letters kept, and the latency of each stage (from the
message being stored in its stream to the commit of what it caused). Gauges are sampled every
`SAMPLE_SECONDS` off the event loop (the outbox, dead letters, the consumers' backlog, a service's own figures
such as the waitlist), and readiness as Prometheus asks.

Labels never hold personal data: agency ids, tiers, outcomes, rule ids, consumer and service names only; never a
referral, person or event id (each is unique, so it would also make one time series per referral).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nats.js import JetStreamContext
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, func, select
from sqlmodel import col

from shared.contracts.rpc import Health
from shared.deadletters import DeadLetterRow
from shared.heap import GcCollector, GcPauses
from shared.outbox import OutboxRow, Outgoing

if TYPE_CHECKING:
    from shared.messaging import Delivery

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 15.0
"""How often the gauges are read (Prometheus scrapes every 15 s by default)."""
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
STAGE_OF_SERVICE = {"intake": "intake", "risk": "assessment", "scheduling": "scheduling"}
"""The stage whose latency a service's consumers measure."""

Labels = tuple[tuple[str, str], ...]
PUBLISHED = "published"
"""The throughput key of the events a replica published (the others are its consumers' durable names)."""


@dataclass(frozen=True)
class Sample:
    """One gauge reading: `gauge` is a key of `GAUGES`."""

    gauge: str
    value: float
    labels: dict[str, str]


GAUGES: dict[str, tuple[str, str]] = {
    "outbox_backlog": ("reroute.outbox.backlog", "Events written to the outbox and not yet confirmed by NATS."),
    "outbox_oldest_unsent_age": ("reroute.outbox.oldest_unsent_age", "Age of the oldest unsent outbox event (s)."),
    "outbox_parked": ("reroute.outbox.parked", "Events NATS refused for good, parked in the outbox (never sent)."),
    "dead_letters_open": ("reroute.dead_letters.open", "Dead letters kept by the service and not yet resolved."),
    "consumer_pending": ("reroute.consumer.pending", "Messages in the stream the durable consumer has not had yet."),
    "consumer_ack_pending": ("reroute.consumer.ack_pending", "Messages delivered to the consumer and not acked yet."),
    "consumer_redelivered": ("reroute.consumer.redelivered", "Messages delivered more than once and not acked yet."),
    "waitlist_size": ("reroute.waitlist.size", "Referrals waiting for a mentor, by tier."),
    "waitlist_oldest_age": ("reroute.waitlist.oldest_age", "How long the longest-waiting referral has waited (s)."),
    "safeguarding_alerts_unacknowledged": (
        "reroute.safeguarding.alerts.unacknowledged",
        ("Safeguarding alerts nobody has acknowledged yet (`reroute alerts ack`), by agency and whether their "
         "deadline has passed.")),
}
_UNITS = {"outbox_oldest_unsent_age": "s", "waitlist_oldest_age": "s"}


class Throughput:
    """Counts since the replica started and in the last minute, by key (a consumer, `published`): what an operator's
    overview shows (the `statistics` request); Prometheus computes its own rates from the counters."""

    WINDOW_SECONDS = 60

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._totals: dict[str, int] = {}
        self._recent: dict[str, deque[tuple[int, int]]] = {}
        """Per key, (whole second, count in it), the last WINDOW_SECONDS of them at most."""

    def add(self, key: str, n: int = 1) -> None:
        self._totals[key] = self._totals.get(key, 0) + n
        second = int(self._clock())
        recent = self._recent.setdefault(key, deque())
        if recent and recent[-1][0] == second:
            recent[-1] = (second, recent[-1][1] + n)
        else:
            recent.append((second, n))
        while recent[0][0] <= second - self.WINDOW_SECONDS:
            recent.popleft()

    def total(self, key: str) -> int:
        return self._totals.get(key, 0)

    def last_minute(self, key: str) -> int:
        since = int(self._clock()) - self.WINDOW_SECONDS
        return sum(n for second, n in self._recent.get(key, ()) if second > since)


class ServiceMetrics:
    """The instruments of one service process, exported to `registry` (served on /metrics)."""

    def __init__(self, service: str, registry: CollectorRegistry, *, namespace: str,
                 health: Callable[[], Health]) -> None:
        self.service = service
        self._prefix = f"{namespace}." if namespace else ""
        self._health = health
        reader = PrometheusMetricReader(registry=registry, disable_target_info=True, scope_info_enabled=False)
        self.provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": service}),
            views=[View(instrument_name="reroute.stage.latency",
                        aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS))])
        self._meter = meter = self.provider.get_meter("reroute")
        self._received = meter.create_counter(
            "reroute.referrals.received", description="Referral submissions and updates intake processed, by agency.")
        self._accepted = meter.create_counter(
            "reroute.referrals.accepted", description="referrals.accepted published, by agency (duplicate: a repeat).")
        self._rejected = meter.create_counter(
            "reroute.referrals.rejected", description="referrals.rejected published, by agency.")
        self._assessed = meter.create_counter(
            "reroute.assessments", description="risk.assessed published, by agency and tier.")
        self._alerts = meter.create_counter(
            "reroute.safeguarding.alerts.raised", description="safeguarding.alert published, by agency and rule.")
        self._outcomes = meter.create_counter(
            "reroute.scheduling.outcomes",
            description="sessions.* published, by agency, outcome (scheduled, waitlisted, …) and tier.")
        self._processed = meter.create_counter(
            "reroute.messages.processed", description="Messages a consumer committed (repeats it had seen excluded).")
        self._redeliveries = meter.create_counter(
            "reroute.messages.redelivered", description="Messages a consumer committed on a second or later delivery.")
        self._dead_lettered = meter.create_counter(
            "reroute.dead_letters.kept", description="Messages a consumer gave up on and kept as dead letters.")
        self._dropped = meter.create_counter(
            "reroute.messages.dropped",
            description="Messages a consumer dropped unread, by reason (server_reply: an answer of the NATS server "
                        "that a client aimed at the stream's subjects).")
        self._latency = meter.create_histogram(
            "reroute.stage.latency", unit="s",
            description="From a message being stored in its stream to the commit of what it caused, by stage "
                        "(intake, assessment, scheduling).")
        self._values: dict[str, dict[Labels, float]] = {}
        self.throughput = Throughput()
        for key, (name, description) in GAUGES.items():
            meter.create_observable_gauge(name, callbacks=[self._reader(key)], description=description,
                                          unit=_UNITS.get(key, ""))
        meter.create_observable_gauge("reroute.ready", callbacks=[self._readiness],
                                      description="1 when the replica is ready (as /readyz), else 0.")
        self.gc = GcPauses()
        self._registry, self._gc_collector = registry, GcCollector(self.gc, service)
        registry.register(self._gc_collector)

    def live_gauge(self, name: str, read: Callable[[], float], *, description: str) -> None:
        """A gauge of this replica's own state (`reroute.<name>`), read as Prometheus asks, not sampled: a state
        that lasts seconds (a batch round in progress) is seen while it lasts."""
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read(), {"service": self.service})]

        self._meter.create_observable_gauge(f"reroute.{name}", callbacks=[observe], description=description)

    def _reader(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(v, dict(labels)) for labels, v in self._values.get(key, {}).items()]

        return observe

    def _readiness(self, _: CallbackOptions) -> Iterable[Observation]:
        h = self._health()
        return [Observation(1 if h.ready else 0, {"service": self.service})]

    def record_samples(self, samples: Iterable[Sample]) -> None:
        """Replace every gauge's readings with these (a gauge with none here is no longer reported)."""
        values: dict[str, dict[Labels, float]] = {}
        for s in samples:
            values.setdefault(s.gauge, {})[tuple(sorted({"service": self.service, **s.labels}.items()))] = s.value
        self._values = values

    # -- as work is done ----------------------------------------------------------------------------------------

    def processed(self, consumer: str, deliveries: Sequence[Delivery], now: datetime) -> None:
        """A consumer committed these (fresh) deliveries."""
        stage = STAGE_OF_SERVICE.get(self.service, self.service)
        labels = {"service": self.service, "consumer": consumer}
        self.throughput.add(consumer, len(deliveries))
        for d in deliveries:
            self._processed.add(1, labels)
            if d.msg is None:  # a replayed dead letter: no stream timestamp, and no redelivery either
                continue
            meta = d.msg.metadata
            if meta.num_delivered and meta.num_delivered > 1:
                self._redeliveries.add(1, labels)
            if meta.timestamp is not None:
                self._latency.record(max(0.0, (now - meta.timestamp.astimezone(UTC)).total_seconds()),
                                     {"stage": stage})
            kind, agency = self._event(d.subject)
            if kind in ("referrals.submitted", "referrals.updated"):
                self._received.add(1, {"agency": agency, "kind": kind.rsplit(".", 1)[1]})

    def dead_lettered(self, consumer: str) -> None:
        self._dead_lettered.add(1, {"service": self.service, "consumer": consumer})

    def dropped(self, consumer: str, reason: str, count: int) -> None:
        self._dropped.add(count, {"service": self.service, "consumer": consumer, "reason": reason})

    def published(self, messages: Sequence[Outgoing]) -> None:
        """NATS confirmed these events: count them by what they say (agency, tier, outcome, rule)."""
        self.throughput.add(PUBLISHED, len(messages))
        for m in messages:
            kind, agency = self._event(m.subject)
            if kind not in _COUNTED:
                continue
            try:
                body = json.loads(m.payload)
            except ValueError:
                body = {}
            if kind == "referrals.accepted":
                self._accepted.add(1, {"agency": agency, "duplicate": str(bool(body.get("duplicate"))).lower()})
            elif kind == "referrals.rejected":
                self._rejected.add(1, {"agency": agency})
            elif kind == "risk.assessed":
                self._assessed.add(1, {"agency": agency, "tier": str(body.get("tier", "unknown"))})
            elif kind == "safeguarding.alert":
                self._alerts.add(1, {"agency": agency, "rule": str(body.get("rule_id", "unknown"))})
            else:
                self._outcomes.add(1, {"agency": agency, "outcome": kind.split(".", 1)[1],
                                       "tier": str(body.get("tier") or "none")})

    def _event(self, subject: str) -> tuple[str, str]:
        """(`referrals.accepted`, agency id) from `[namespace.]referrals.accepted.<agency>`."""
        bare = subject.removeprefix(self._prefix)
        kind, _, agency = bare.rpartition(".")
        return kind, agency

    def shutdown(self) -> None:
        self.gc.close()
        self._registry.unregister(self._gc_collector)
        self.provider.shutdown()


_COUNTED = frozenset({"referrals.accepted", "referrals.rejected", "risk.assessed", "safeguarding.alert",
                      "sessions.scheduled", "sessions.waitlisted", "sessions.rescheduled", "sessions.cancelled"})


def stored_samples(conn: Connection, now: datetime) -> list[Sample]:
    """What every service's database says: the outbox's backlog and parked events, and open dead letters."""
    unsent = (col(OutboxRow.sent_at).is_(None), col(OutboxRow.parked_at).is_(None))
    backlog, oldest = conn.execute(select(func.count(), func.min(OutboxRow.created_at)).where(*unsent)).one()
    parked = conn.execute(select(func.count()).where(col(OutboxRow.parked_at).is_not(None))).scalar_one()
    open_letters = conn.execute(select(func.count()).select_from(DeadLetterRow)
                                .where(col(DeadLetterRow.status) == "open")).scalar_one()
    return [Sample("outbox_backlog", backlog, {}), Sample("outbox_parked", parked, {}),
            Sample("outbox_oldest_unsent_age", age(oldest, now), {}),
            Sample("dead_letters_open", open_letters, {})]


def age(since: datetime | None, now: datetime) -> float:
    """Seconds from `since` (naive: UTC, as SQLite returns it) to `now`; 0 for nothing."""
    if since is None:
        return 0.0
    return max(0.0, (now - (since if since.tzinfo else since.replace(tzinfo=UTC))).total_seconds())


async def consumer_samples(js: JetStreamContext, consumers: Iterable[tuple[str, str]]) -> list[Sample]:
    """Each durable consumer's backlog as the server sees it (for every replica alike)."""
    found: list[Sample] = []
    for stream, durable in consumers:
        try:
            info = await js.consumer_info(stream, durable, timeout=2)
        except Exception as exc:  # noqa: BLE001 - no leader, reconnecting: the gauge is left out this round
            log.debug("no consumer info for %s (%s)", durable, exc)
            continue
        labels = {"consumer": durable}
        found += [Sample("consumer_pending", info.num_pending or 0, labels),
                  Sample("consumer_ack_pending", info.num_ack_pending or 0, labels),
                  Sample("consumer_redelivered", info.num_redelivered or 0, labels)]
    return found
