"""Database engines: one SQLite file per service in the data dir, or one PostgreSQL schema per service."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(service: str, settings: ServiceSettings) -> Engine:
    """The service's own database. Transactions are write transactions from the start (no lost updates)."""
    if settings.database_url:
        prefix = settings.db_schema_prefix if settings.db_schema_prefix is not None else settings.namespace
        return _postgres_engine(settings.database_url, schema=f"{prefix}_{service}" if prefix else service)
    return _sqlite_engine(settings.data_dir / f"{service}.db")


READS_ONLY = "reroute_reads_only"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection that only reads, for work done beside the database thread (an HTTP request's look-up).

    On SQLite its transaction is deferred: in WAL mode a reader neither waits for the writer nor holds it up,
    where a write transaction (every other one here) would wait up to 30 s for the database thread's batch, on the
    caller's thread (the event loop, for an async route). Never write through it: a deferred transaction that
    writes after another connection has written fails at once ("database is locked"). On PostgreSQL it is an
    ordinary connection."""
    with engine.connect() as conn:
        conn.execution_options(**{READS_ONLY: True})
        yield conn


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def lock_for_update(conn: Any, key: str) -> None:
    """Serialise writers that must see each other's rows (e.g. booking a mentor) across replicas.

    On SQLite every transaction already begins IMMEDIATE (one writer at a time); on PostgreSQL we take a
    transaction-scoped advisory lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def _sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READS_ONLY) else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str, *, schema: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    # connect_timeout: a database behind a link that stopped forwarding fails a new connection in 5 s
    # instead of never; a statement on an open one is not cut off but watched (DatabaseThread.busy_for)
    # the schema itself is made by the migrations (`reroute db upgrade`), not by every start
    engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, connect_args={"connect_timeout": 5})
    log.info("using PostgreSQL schema %s", schema)
    return engine.execution_options(schema_translate_map={None: schema})


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached or dropped the connection, not that a statement
    was wrong: the work is retried once it is back, and no message is blamed for it."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError))


class DatabaseThread:
    """Runs a service's database work on one thread of its own, one piece at a time.

    The event loop stays free to answer health checks, requests and NATS while a transaction runs, and a
    database that stops answering (a hung link) stalls only this thread: `busy_for` tells readiness how
    long the current piece has waited. The thread is a daemon, so a hung call never keeps the process alive
    after shutdown.
    """

    def __init__(self, name: str, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._started_at: float | None = None
        self._thread = threading.Thread(target=self._work, name=f"{name}-db", daemon=True)
        self._thread.start()

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work()` on the database thread and return its result (or raise its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(work, loop, future, contextvars.copy_context()))
        return await future

    def busy_for(self) -> float:
        """Seconds the piece of work now running has taken so far (0 when idle)."""
        started = self._started_at
        return time.monotonic() - started if started is not None else 0.0

    def close(self) -> None:
        self._queue.put(None)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._started_at = time.monotonic()
            try:
                result = job.context.run(job.work)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                job.loop.call_soon_threadsafe(_settle, job.future, None, exc)
            else:
                job.loop.call_soon_threadsafe(_settle, job.future, result, None)
            finally:
                self._started_at = None


@dataclass(frozen=True)
class _Job:
    work: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    context: contextvars.Context


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled (shutdown)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
