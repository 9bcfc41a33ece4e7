"""Database engines: one SQLite file per service in the data dir, or one PostgreSQL schema per service."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


def make_engine(service: str, settings: ServiceSettings) -> Engine:
    """The service's own database. Transactions are write transactions from the start (no lost updates)."""
    if settings.database_url:
        prefix = settings.db_schema_prefix if settings.db_schema_prefix is not None else settings.namespace
        return _postgres_engine(settings.database_url, schema=f"{prefix}_{service}" if prefix else service)
    return _sqlite_engine(settings.data_dir / f"{service}.db")


def create_tables(engine: Engine, tables: Sequence[type[SQLModel]]) -> None:
    """Create missing tables, and add the optional columns a newer version brought to existing ones."""
    SQLModel.metadata.create_all(engine, tables=[t.__table__ for t in tables])  # type: ignore[attr-defined]
    _add_new_columns(engine, [t.__table__ for t in tables])  # type: ignore[attr-defined]


def _add_new_columns(engine: Engine, tables: Sequence[Table]) -> None:
    """Bring a database made by an earlier version up to date: a new column that may be empty is added (old
    rows get NULL); a new required one cannot be, and the error says what to do."""
    schema = engine.get_execution_options().get("schema_translate_map", {}).get(None)
    with engine.begin() as conn:
        inspector = inspect(conn)
        for table in tables:
            present = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
            for column in table.columns:
                if column.name in present:
                    continue
                if not column.nullable:
                    raise RuntimeError(
                        f"the database's table {table.name} has no column {column.name}, which this version needs "
                        "and cannot add to existing rows: move the old data aside (`make clean` removes .reroute "
                        "for local runs) and start again")
                kind = column.type.compile(dialect=engine.dialect)
                where = f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'
                conn.execute(text(f'ALTER TABLE {where} ADD COLUMN "{column.name}" {kind}'))
                log.warning("added column %s.%s (an earlier version's database)", table.name, column.name)


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
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str, *, schema: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, pool_pre_ping=True, pool_size=5)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    log.info("using PostgreSQL schema %s", schema)
    return engine.execution_options(schema_translate_map={None: schema})
