"""What every service process has: settings, its database, NATS, tracing, the outbox relay and its consumers.

Each service's `create_app` builds a `ServiceHost`, adds its consumers and request-reply handlers, and
returns `host.app`: a FastStream application (`python -m services.<name>` runs it).

Who does what:
- **FastStream** runs the process's lifecycle (start-up, SIGTERM), its NATS connection (reconnecting for
  ever, over every server NATS_URL lists) and the request-reply router: each `@host.reply` endpoint is a
  FastStream subscriber on `reroute.rpc.<service>.<verb>` in the service's queue group, taking a typed body.
- **JetStream events** do not go through FastStream: they ride `shared/messaging.py`'s `BatchConsumer`, a
  plain nats-py pull loop (one transaction per fetched batch, pipelined publishes, a span per message). It
  measured faster (docs/performance.md), and FastStream 0.7.8's batch subscriber crashes on a fetch time-out.
- **Database work** runs on one thread per service (`DatabaseThread`), so the event loop keeps answering
  health checks and requests while a batch commits or a database hangs; the schema is migrated beforehand
  (`reroute db upgrade`) and checked here, never created.
- **Health**: `ping` answers live (restart me if false) and ready (my dependencies work), with the problems; the
  same is served over HTTP on REROUTE_OPS_PORT (/healthz, /readyz, with /metrics) and the replica registers with the
  NATS services API for discovery (shared/ops.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats.errors
from fastapi import FastAPI
from faststream import FastStream
from faststream.exceptions import SkipMessage
from faststream.nats import NatsBroker, NatsRouter
from faststream.nats.annotations import NatsMessage
from faststream.specification import AsyncAPI
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine
from sqlmodel import SQLModel

from shared import deadletters, heap, process, streams
from shared.contracts.deadletters import (
    DeadLetterDetail,
    DeadLetterDiscardRequest,
    DeadLetterList,
    DeadLetterListRequest,
    DeadLetterReplayRequest,
    DeadLetterResult,
    DeadLetterResults,
    DeadLetterShowRequest,
    Held,
    HeldRequest,
)
from shared.contracts.rpc import (
    DEAD_LETTER,
    DEAD_LETTERS,
    DISCARD,
    ERASE_REFERRALS,
    EXPORT_REFERRALS,
    HELD,
    PING,
    REPLAY,
    STATISTICS,
    ConsumerFigures,
    Empty,
    Endpoint,
    Erased,
    ErrorCode,
    Health,
    Invalid,
    NotFound,
    PersonalData,
    ReferralIds,
    ServiceError,
    ServiceStatistics,
    decode_reply,
    readable,
)
from shared.db import DatabaseThread, is_unavailable, make_engine
from shared.deadletters import DeadLetterRow
from shared.http import HttpServer
from shared.messaging import (
    SLOW_DATABASE_SECONDS,
    BatchConsumer,
    BatchHandler,
    Delivery,
    commit_batch,
)
from shared.metrics import PUBLISHED, SAMPLE_SECONDS, Sample, ServiceMetrics, consumer_samples, stored_samples
from shared.migrations import current, head, require_head
from shared.nats_auth import jetstream_use, unanswerable
from shared.ops import Discoverable, ops_app, register
from shared.outbox import OutboxRelay, OutboxRow, Outgoing, add_to_outbox, describe
from shared.settings import HttpPort, ServiceSettings
from shared.subjects import Subjects
from shared.telemetry import extract_context, setup_tracing

log = logging.getLogger(__name__)
T = TypeVar("T")
Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
Answer = Callable[[Req], Awaitable[Rep]]



HUNG_AFTER_SECONDS = 60
"""A consumer loop that has neither fetched nor finished a batch for this long (with no dependency to blame)
is hung: the replica is not live."""
OUTBOX_STUCK_SECONDS = 60
SCHEMA_CHECK_SECONDS = 15
"""How often a replica reads its database's migration revision: the database answering, and the schema this
version needs (a replica left running across an upgrade or a restore says so)."""
"""An unsent outbox row this old makes the replica not ready."""
SHUTDOWN_SECONDS = 8
"""How long SIGTERM waits for the batches in hand before abandoning them unacked."""


class AlreadyResolved(Exception):
    """A dead letter was replayed or discarded by someone else meanwhile."""



@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    filter_subjects: list[str]
    durable: str
    handler: BatchHandler
    formerly: tuple[str, ...] = ()
    """Durable names an earlier version gave this consumer: its dead letters still replay through this one."""


class ServiceHost:
    def __init__(self, name: str, settings: ServiceSettings, tables: Sequence[type[SQLModel]]) -> None:
        self.name = name
        self.settings = settings
        self.subjects = Subjects(settings.namespace)
        self.engine: Engine = make_engine(name, settings)
        require_head(self.engine, name)  # the schema is migrated by `reroute db upgrade`, never here
        self._schema_head = head(name)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # read every 15 s below: not two INFO lines each time
        self._schema_problem: str | None = None
        self.database = DatabaseThread(name, self.engine)
        self.tracer_provider: TracerProvider = setup_tracing(name, settings.data_dir)
        self.tracer = self.tracer_provider.get_tracer(f"reroute.{name}")
        self.broker = NatsBroker(
            settings.nats_servers(),
            name=f"reroute-{name}-{os.getpid()}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            inbox_prefix=settings.inbox_prefix,
            log_level=logging.DEBUG,  # FastStream logs every message at INFO otherwise
            logger=logging.getLogger(f"reroute.{name}.broker"),  # through the root logger's format (shared/logs.py)
        )
        self.router = NatsRouter()
        self._consumer_specs: list[ConsumerSpec] = []
        self._consumers: list[BatchConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._started = False
        self._started_at = datetime.now(UTC)
        self._http: HttpServer | None = None
        self._periodic: list[tuple[float, Callable[[], Awaitable[object]], str, bool]] = []
        self._seal: deadletters.Seal = bytes
        self._unseal: deadletters.Seal = bytes
        self.metrics_registry = CollectorRegistry()
        self._ops = (HttpServer(ops_app(self.health, self.metrics_registry), host=settings.http_host,
                                port=settings.ops_port, name=name, port_setting="REROUTE_OPS_PORT",
                                what="probes and metrics") if settings.ops_port else None)
        self._micro: Discoverable | None = None
        self.metrics = ServiceMetrics(name, self.metrics_registry, namespace=settings.namespace, health=self.health)
        self._samplers: list[Callable[[Connection, datetime], list[Sample]]] = [stored_samples]
        self.every(SAMPLE_SECONDS, self._sample, name="metrics", at_start=True)
        self.every(SCHEMA_CHECK_SECONDS, self._check_schema, name="schema-check", at_start=True)
        self.app = FastStream(
            self.broker,
            specification=AsyncAPI(title=f"reroute {name}", version="1.0.0"),
            logger=logging.getLogger(f"reroute.{name}.app"),
            on_startup=[self._start_ops],  # probes answer (live, not ready) while NATS is still being reached
            after_startup=[self._start],
            on_shutdown=[self._shutdown],
        )

    def serve_http(self, app: FastAPI, *, port: HttpPort, port_setting: str, host: str | None = None) -> None:
        """Serve `app` on `port` (0: not at all; auto: any free port, its URL logged) while the service runs;
        `port_setting` names the variable to change when the port is taken."""
        if port:
            self._http = HttpServer(app, host=host or self.settings.http_host, port=port, name=self.name,
                                    port_setting=port_setting)

    @property
    def http_url(self) -> str | None:
        """Where this replica's HTTP API listens, once started (None: it has none)."""
        return self._http.url if self._http is not None else None

    @property
    def ops_url(self) -> str | None:
        """Where this replica's probes and /metrics are served, once started (None: REROUTE_OPS_PORT=0)."""
        return self._ops.url if self._ops is not None else None

    def every(self, seconds: float, job: Callable[[], Awaitable[object]], *, name: str, at_start: bool = False) -> None:
        """Run `job` every `seconds` while the service runs (0: never), and once as it starts when `at_start`;
        a failure is logged, not fatal."""
        if seconds > 0:
            self._periodic.append((seconds, job, name, at_start))

    async def _repeat(self, seconds: float, job: Callable[[], Awaitable[object]], name: str, at_start: bool) -> None:
        first = at_start
        while not self._stop.is_set():
            if not first:
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=seconds)
                    return
                except TimeoutError:
                    pass
            first = False
            try:
                await job()
            except Exception:
                log.exception("%s: periodic %s failed; will try again", self.name, name)

    def consume(self, *, stream: str, subjects: list[str], what: str, handler: BatchHandler,
                formerly: tuple[str, ...] = ()) -> None:
        """A durable consumer on `subjects` of `stream`, shared by every replica of this service; `formerly`: what
        an earlier version called it (`what`), whose dead letters it replays."""
        self._consumer_specs.append(ConsumerSpec(stream, subjects, self.subjects.durable(self.name, what), handler,
                                                 tuple(self.subjects.durable(self.name, w) for w in formerly)))

    def reply(self, endpoint: Endpoint[Req, Rep], *, at_once: int = 1
              ) -> Callable[[Answer[Req, Rep]], Answer[Req, Rep]]:
        """Decorator: `handler` answers `endpoint` on reroute.rpc.<service>.<verb> (the services') and, when people
        may ask it, on reroute.ask.*.<service>.<verb>, load-shared by replicas. A replica answers `at_once` requests
        of the endpoint at a time (the next waits), so a handler that refuses while one of its own runs needs 2.

        The handler takes the typed request and returns the typed reply; it raises `ServiceError` (NotFound,
        Refused, Invalid) to refuse with a reason. A request that does not fit the model is refused as
        `invalid` naming the field, and a fault becomes `internal` (logged here, never sent): every request
        gets an answer, never a client time-out."""
        service = endpoint.service(self.name)
        subjects = [self.subjects.rpc(service, endpoint.verb)]
        if endpoint.roles:  # people ask on subjects naming them (reroute.ask.<person>.<service>.<verb>)
            subjects.append(self.subjects.ask("*", service, endpoint.verb))

        def register(handler: Answer[Req, Rep]) -> Answer[Req, Rep]:
            async def answer(message: NatsMessage) -> dict[str, Any] | None:
                if why := unanswerable(message.raw_message.reply):
                    log.warning("%s: %s: %s", self.name, endpoint.verb, why)
                    raise SkipMessage
                asker = self.subjects.asker(message.raw_message.subject)
                return await self._answer(endpoint, handler, message.body, asker=asker)

            for subject in subjects:
                self.router.subscriber(subject, queue=self.name, title=subject, description=endpoint.summary,
                                       max_workers=at_once)(answer)
            return handler

        return register

    async def _answer(self, endpoint: Endpoint[Req, Rep], handler: Answer[Req, Rep], body: bytes, *,
                      asker: str | None = None) -> dict[str, Any]:
        """`asker`: the person the subject names, recorded as who asked whatever the body says (a field left out
        stays out: a calendar shows names only when they are asked for); None on a service's own subject."""
        try:
            request = endpoint.request.model_validate_json(body or b"{}")
        except ValidationError as exc:
            return Invalid(f"{endpoint.verb}: {readable(exc)}").reply().model_dump(mode="json")
        if asker is not None and endpoint.acts_as is not None and getattr(request, endpoint.acts_as) is not None:
            request = request.model_copy(update={endpoint.acts_as: asker})
        try:
            reply = await handler(request)
        except ServiceError as exc:
            return exc.reply().model_dump(mode="json")
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("%s: %s: the database is unavailable (%s)", self.name, endpoint.verb, describe(exc))
                error = ServiceError(ErrorCode.UNAVAILABLE, f"{self.name} cannot reach its database just now; "
                                                            "try again in a minute")
            elif isinstance(exc, nats.errors.NoRespondersError | nats.errors.TimeoutError | TimeoutError):
                log.warning("%s: %s: a service it asked did not answer (%s)", self.name, endpoint.verb,
                            type(exc).__name__)
                error = ServiceError(ErrorCode.UNAVAILABLE, f"{self.name} could not answer {endpoint.verb}: a "
                                                            "service it needs did not answer; try again shortly")
            else:
                log.exception("%s: %s failed", self.name, endpoint.verb)
                error = ServiceError(ErrorCode.INTERNAL, f"{self.name} failed to answer {endpoint.verb} "
                                                         f"({type(exc).__name__}); its log has the details")
            return error.reply().model_dump(mode="json")
        return reply.model_dump(mode="json")

    async def transact(self, decide: Callable[[Connection, datetime], tuple[T, list[Outgoing]]]) -> T:
        """Run `decide` in one transaction with its events in the outbox, then publish them (request handlers)."""
        def work() -> tuple[T, list[Outgoing]]:
            now = datetime.now(UTC)
            with self.engine.begin() as conn:
                result, out = decide(conn, now)
                add_to_outbox(conn, out, now=now)
            return result, out

        result, out = await self.database.run(work)  # off the event loop: health and consumers keep answering
        await self.relay.publish(out)
        return result

    async def ask(self, endpoint: Endpoint[Req, Rep], request: Req, *, service: str | None = None,
                  timeout: float = 10) -> Rep:
        """Ask another service over NATS request-reply (services never import each other); an error reply
        is raised as `ServiceError`."""
        reply = await self.broker.connection.request(
            self.subjects.rpc(endpoint.service(service), endpoint.verb), request.model_dump_json().encode(),
            timeout=timeout)
        return decode_reply(endpoint, reply.data)

    def serve_personal_data(
        self,
        export: Callable[[Connection, list[str]], dict[str, Any]],
        erase: Callable[[Connection, list[str]], dict[str, int]],
    ) -> None:
        """person.export and person.erase for a service that holds data by referral id (subject access and
        erasure, orchestrated by intake)."""
        @self.reply(EXPORT_REFERRALS)
        async def person_export(request: ReferralIds) -> PersonalData:
            def read() -> PersonalData:
                with self.engine.connect() as conn:
                    return PersonalData(service=self.name, data=export(conn, request.referral_ids))

            return await self.database.run(read)

        @self.reply(ERASE_REFERRALS)
        async def person_erase(request: ReferralIds) -> Erased:
            def erase_here(conn: Connection, now: datetime) -> tuple[Erased, list[Outgoing]]:
                return Erased(service=self.name, erased=erase(conn, request.referral_ids)), []

            return await self.transact(erase_here)

    def seal_dead_letters(self, seal: deadletters.Seal, unseal: deadletters.Seal) -> None:
        """Store this service's dead letters sealed (intake: encrypted, as they may hold personal data)."""
        self._seal, self._unseal = seal, unseal

    def _serve_dead_letters(self) -> None:
        @self.reply(DEAD_LETTERS)
        async def list_dead_letters(request: DeadLetterListRequest) -> DeadLetterList:
            def read() -> DeadLetterList:
                with self.engine.connect() as conn:
                    found, counts = deadletters.listing(conn, service=self.name, limit=request.limit,
                                                        include_resolved=request.include_resolved)
                return DeadLetterList(service=self.name, dead_letters=found, open_by_reason=counts)

            return await self.database.run(read)

        @self.reply(DEAD_LETTER)
        async def show_dead_letter(request: DeadLetterShowRequest) -> DeadLetterDetail:
            def read() -> DeadLetterRow | OutboxRow | None:
                with self.engine.connect() as conn:
                    parked = deadletters.find_parked(conn, request.id) if deadletters.is_parked_id(request.id) else None
                    return parked or deadletters.load(conn, request.id)

            row = await self.database.run(read)
            if isinstance(row, OutboxRow):  # an event of ours NATS refused: in the outbox, not sealed
                if request.body:
                    log.warning("%s: parked event %s shown to %s", self.name, request.id, request.asked_by or "?")
                return DeadLetterDetail(dead_letter=deadletters.parked_detail(row, service=self.name),
                                        headers=json.loads(row.headers), body_bytes=len(row.payload),
                                        body=row.payload.decode("utf-8", errors="replace") if request.body else None)
            if row is None:
                raise NotFound(f"no dead letter {request.id} in {self.name}")
            body = self._unseal(row.body)
            if request.body:
                log.warning("%s: dead letter %s body shown to %s", self.name, row.id, request.asked_by or "an operator")
            return DeadLetterDetail(
                dead_letter=deadletters.public(self.name, row), headers=json.loads(row.headers), body_bytes=len(body),
                body=body.decode("utf-8", errors="replace") if request.body else None,
            )

        @self.reply(HELD)
        async def held_referrals(request: HeldRequest) -> Held:
            def read() -> Held:
                with self.engine.connect() as conn:
                    return Held(service=self.name, held=deadletters.open_for_referrals(conn, request.referral_ids))

            return await self.database.run(read)

        @self.reply(REPLAY)
        async def replay_dead_letters(request: DeadLetterReplayRequest) -> DeadLetterResults:
            results = [await self._replay(i, asked_by=request.asked_by) for i in request.ids]
            return DeadLetterResults(service=self.name, results=results)

        @self.reply(DISCARD)
        async def discard_dead_letter(request: DeadLetterDiscardRequest) -> DeadLetterResults:
            def work() -> DeadLetterResult:
                with self.engine.begin() as conn:
                    if deadletters.is_parked_id(request.id) and (parked := deadletters.find_parked(conn, request.id)):
                        if not deadletters.discard_parked(conn, parked, seal=self._seal, by=request.asked_by,
                                                          reason=request.reason, now=datetime.now(UTC)):
                            return DeadLetterResult(id=request.id, outcome="already resolved", detail="replayed")
                        return DeadLetterResult(id=request.id, outcome="discarded", detail=request.reason)
                    row = deadletters.load(conn, request.id, for_update=True)
                    if row is None:
                        return DeadLetterResult(id=request.id, outcome="not found")
                    if row.status != "open":
                        return DeadLetterResult(id=request.id, outcome="already resolved", detail=row.status)
                    deadletters.resolve(conn, request.id, status="discarded", by=request.asked_by,
                                        note=request.reason, now=datetime.now(UTC))
                return DeadLetterResult(id=request.id, outcome="discarded", detail=request.reason)

            result = await self.database.run(work)
            return DeadLetterResults(service=self.name, results=[result])

    async def _unpark(self, dead_letter_id: str, asked_by: str) -> DeadLetterResult | None:
        """Put a parked event of ours back in the outbox (its cause fixed: a limit raised); None when none is
        parked under this id (a discarded one is a dead letter)."""
        def work() -> bool | None:
            with self.engine.begin() as conn:
                row = deadletters.find_parked(conn, dead_letter_id)
                return None if row is None else deadletters.unpark(conn, row)

        done = await self.database.run(work)
        if done is None:
            return None
        log.warning("%s: parked event %s put back in the outbox by %s", self.name, dead_letter_id, asked_by)
        return DeadLetterResult(id=dead_letter_id, outcome="replayed", detail=(
            "back in the outbox: the relay publishes it once (under its own id), or parks it again if NATS still "
            "refuses it"))

    async def _replay(self, dead_letter_id: str, *, asked_by: str) -> DeadLetterResult:
        if deadletters.is_parked_id(dead_letter_id) and (put_back := await self._unpark(dead_letter_id, asked_by)):
            return put_back

        def read() -> DeadLetterRow | None:
            with self.engine.connect() as conn:
                return deadletters.load(conn, dead_letter_id)

        row = await self.database.run(read)
        if row is None:
            return DeadLetterResult(id=dead_letter_id, outcome="not found")
        if row.status != "open":
            return DeadLetterResult(id=dead_letter_id, outcome="already resolved", detail=row.status)
        spec = next((c for c in self._consumer_specs if row.consumer in (c.durable, *c.formerly)), None)
        if spec is None:
            return DeadLetterResult(id=dead_letter_id, outcome="failed again",
                                    detail=f"this version has no consumer {row.consumer}")
        headers: dict[str, str] = json.loads(row.headers)
        span = self.tracer.start_span(f"{self.name} replay {row.subject}", context=extract_context(headers),
                                      kind=trace.SpanKind.CONSUMER, attributes={"reroute.dead_letter.id": row.id})
        delivery = Delivery(row.subject, self._unseal(row.body), headers, row.message_key, span)

        def mark(conn: Connection, now: datetime) -> None:
            if not deadletters.mark_replayed(conn, dead_letter_id, by=asked_by, now=now):
                raise AlreadyResolved  # another replay won the race: roll this one back

        try:
            out = await self.database.run(lambda: commit_batch(self.engine, spec.handler, [delivery],
                                                               consumer=spec.durable, relay=self.relay, also=mark))
        except AlreadyResolved:
            return DeadLetterResult(id=dead_letter_id, outcome="already resolved", detail="replayed meanwhile")
        except Exception as exc:  # noqa: BLE001 - still failing: it stays open, and the operator is told why
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            return DeadLetterResult(id=dead_letter_id, outcome="failed again", detail=describe(exc))
        finally:
            span.end()
        await self.relay.publish(out)
        log.warning("%s: dead letter %s replayed by %s (%d events)", self.name, dead_letter_id, asked_by, len(out))
        return DeadLetterResult(id=dead_letter_id, outcome="replayed", detail=f"{len(out)} events published")

    def finish_routes(self) -> None:
        self._serve_dead_letters()

        @self.reply(PING)
        async def ping(_: Empty) -> Health:
            return self.health()

        @self.reply(STATISTICS)
        async def statistics(_: Empty) -> ServiceStatistics:
            return await self.statistics()

        self.broker.include_router(self.router)

    async def statistics(self) -> ServiceStatistics:
        """The figures /metrics exports, read now: the outbox and dead letters from the database (None when it does
        not answer), each consumer's backlog from JetStream's consumer info, the throughput this replica counted."""
        def read() -> dict[str, float]:
            with self.engine.connect() as conn:
                return {s.gauge: s.value for s in stored_samples(conn, datetime.now(UTC))}

        try:
            stored: dict[str, float] = await self.database.run(read)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            stored = {}
        specs = [(c.stream, c.durable) for c in self._consumer_specs]
        backlog: dict[str, dict[str, int]] = {}
        for sample in await consumer_samples(self.broker.connection.jetstream(), specs):
            backlog.setdefault(sample.labels["consumer"], {})[sample.gauge] = int(sample.value)
        through = self.metrics.throughput

        def counted(key: str) -> int | None:
            return int(stored[key]) if key in stored else None

        return ServiceStatistics(
            health=self.health(), started_at=self._started_at, asked_at=datetime.now(UTC),
            consumers=[ConsumerFigures(
                durable=durable, stream=stream, pending=backlog.get(durable, {}).get("consumer_pending"),
                ack_pending=backlog.get(durable, {}).get("consumer_ack_pending"),
                redelivered=backlog.get(durable, {}).get("consumer_redelivered"),
                processed=through.total(durable), processed_last_minute=through.last_minute(durable))
                for stream, durable in specs],
            published=through.total(PUBLISHED), published_last_minute=through.last_minute(PUBLISHED),
            outbox_backlog=counted("outbox_backlog"), outbox_parked=counted("outbox_parked"),
            outbox_oldest_unsent_seconds=stored.get("outbox_oldest_unsent_age"),
            dead_letters_open=counted("dead_letters_open"))

    async def _check_streams(self, js: JetStreamContext) -> None:
        """Streams are provisioned by `reroute streams provision`, not by services: say what is missing.
        The consumers keep trying to bind, so the service carries on once they are provisioned."""
        try:
            absent = await streams.missing(js, jetstream_use(self.name, self.subjects).streams)  # its own only
        except Exception as exc:  # noqa: BLE001 - no leader yet, say: the consumers wait and retry
            log.warning("%s: cannot check the streams yet (%s)", self.name, describe(exc))
            return
        if absent:
            log.error("%s: the streams %s do not exist; provision them with `reroute streams provision` (`reroute "
                      "up` does it; a deployment runs it as a one-shot step). Waiting for them.", self.name,
                      ", ".join(absent))

    def health(self) -> Health:
        """Live: the event loop answers (it is running this) and no consumer or relay task is dead or hung.
        Ready: live, and its dependencies work: NATS connected, the database answering, the outbox moving.
        A supervisor restarts a replica that is not live; one that is only not ready waits for its
        dependency (restarting it would not bring the database back)."""
        now = time.monotonic()
        hung: list[str] = []
        for task in self._tasks:
            if task.done():
                hung.append(f"task {task.get_name()} has stopped")
        for consumer in self._consumers:
            if (now - consumer.last_progress > HUNG_AFTER_SECONDS and consumer.problem is None
                    and not consumer.waiting_on_database):
                hung.append(f"consumer {consumer.durable} has not moved for {now - consumer.last_progress:.0f} s")
        problems = [c.problem for c in self._consumers if c.problem is not None]
        if not self._started:
            problems.append("starting")
        elif not all(c.ready.is_set() for c in self._consumers):
            problems.append("consumers not bound yet")
        if self._started and not self.broker.connection.is_connected:
            problems.append("not connected to NATS")
        if (busy := self.database.busy_for()) > SLOW_DATABASE_SECONDS:
            problems.append(f"the database has not answered for {busy:.0f} s")
        elif self._schema_problem is not None:
            problems.append(self._schema_problem)
        if self._started and self.relay.oldest_unsent_age > OUTBOX_STUCK_SECONDS:
            problems.append(f"the oldest unsent event has waited {self.relay.oldest_unsent_age:.0f} s")
        live = not hung
        return Health(service=self.name, pid=os.getpid(), live=live, ready=live and not problems,
                      problems=[*hung, *problems], http_url=self.http_url, ops_url=self.ops_url)

    async def _check_schema(self) -> None:
        """Read the migration revision: the database answers, and is at the head this version needs."""
        try:
            found = await self.database.run(lambda: current(self.engine))
        except Exception as exc:  # noqa: BLE001 - unreachable: not ready, and said so
            self._schema_problem = f"the database cannot be reached ({describe(exc)})"
            return
        self._schema_problem = None if found == self._schema_head else (
            f"the database schema is at {found or 'no revision'}; this version needs {self._schema_head} "
            "(run `reroute db upgrade`)")

    def sample(self, read: Callable[[Connection, datetime], list[Sample]]) -> None:
        """Add gauges of this service's own (the waitlist, say), read from its database every SAMPLE_SECONDS."""
        self._samplers.append(read)

    async def _sample(self) -> None:
        def read() -> list[Sample]:
            now = datetime.now(UTC)
            found: list[Sample] = []
            with self.engine.connect() as conn:
                for sampler in self._samplers:
                    try:
                        found += sampler(conn, now)
                    except Exception as exc:
                        if is_unavailable(exc):
                            raise  # the database is away: no gauge this round
                        log.exception("%s: metrics: %s failed; its gauges are left out", self.name,
                                      getattr(sampler, "__name__", sampler))
                        conn.rollback()
            return found

        try:
            samples = await self.database.run(read)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.debug("%s: metrics: the database is unavailable (%s)", self.name, describe(exc))
            return  # readiness says so, in words; the gauges keep their last readings
        js = self.broker.connection.jetstream()
        samples += await consumer_samples(js, [(c.stream, c.durable) for c in self._consumer_specs])
        self.metrics.record_samples(samples)

    async def _start_ops(self) -> None:
        if self._ops is not None:
            await self._ops.start()

    async def _start(self) -> None:
        # What start-up made lives as long as the process: frozen out of every later full garbage collection, before
        # any task runs, so that no batch in flight is frozen with it (shared/heap.py).
        frozen = heap.settle()
        js = self.broker.connection.jetstream()
        await self._check_streams(js)
        relay = OutboxRelay(self.database, js, on_published=self.metrics.published)
        self.relay = relay
        for spec in self._consumer_specs:
            consumer = BatchConsumer(
                service=self.name,
                js=js,
                database=self.database,
                relay=relay,
                tracer=self.tracer,
                subjects=self.subjects,
                stream=spec.stream,
                filter_subjects=spec.filter_subjects,
                durable=spec.durable,
                handler=spec.handler,
                batch_size=self.settings.batch_size,
                max_deliver=self.settings.max_deliver,
                seal=self._seal,
                metrics=self.metrics,
            )
            self._consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run(self._stop), name=f"{self.name}:{spec.durable}"))
        self._tasks.append(asyncio.create_task(relay.run(self._stop), name=f"{self.name}:outbox"))
        for seconds, job, name, at_start in self._periodic:
            self._tasks.append(asyncio.create_task(self._repeat(seconds, job, name, at_start),
                                                   name=f"{self.name}:{name}"))
        if self._http is not None:
            await self._http.start()
        self._micro = await register(self.broker.connection, service=self.name, namespace=self.settings.namespace,
                                     health=self.health)
        self._started = True
        log.info("%s started (pid %d; %d objects kept out of garbage collection)", self.name, os.getpid(), frozen)

    async def _shutdown(self) -> None:
        """Stop within a bound: the batch in hand finishes or is abandoned unacked (and so redelivered)."""
        if self._http is not None:
            await self._http.stop()
        if self._micro is not None:
            try:
                await asyncio.wait_for(self._micro.stop(), timeout=2)
            except Exception:  # noqa: BLE001, S110 - the connection is gone already: nothing to unregister
                pass
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_SECONDS)
            for task in pending:
                log.warning("%s: %s did not stop within %d s; abandoning it (its messages are redelivered)",
                            self.name, task.get_name(), SHUTDOWN_SECONDS)
                task.cancel()
        self.database.close()
        self.tracer_provider.shutdown()
        self.metrics.shutdown()
        self.engine.dispose()
        if self._ops is not None:
            await self._ops.stop()
        log.info("%s stopped", self.name)


S = TypeVar("S", bound=ServiceSettings)


def run_service(name: str, load: Callable[[], S], create_app: Callable[[S], FastStream]) -> None:
    """`python -m services.<name>`: the service's FastStream app until SIGTERM, started as every process is
    (shared/process.py: private files, settings checked, logging)."""
    process.run(name, load, lambda settings: create_app(settings).run())
