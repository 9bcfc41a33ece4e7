"""Schema migrations with alembic: one history per service, in `services/<service>/migrations/`.

Each service's database (its SQLite file, or its PostgreSQL schema) carries its own `alembic_version`.
`reroute db upgrade` (run by `reroute up`, and by a deployment as a one-shot step before the services) brings
each to head; a service refuses to start on a schema behind head, saying what to run. Migrations are written
expand-then-contract: a revision only adds (tables, nullable columns, indexes) or backfills, and what the old
code still uses is dropped only in a later release, so two replicas of different versions can run side by side
through a rolling update.

A new revision: `services/<service>/migrations/versions/NNNN_what.py`, with `down_revision` the previous head.
On PostgreSQL each service lives in its own schema: give alembic operations that name a table by string
(`op.add_column`, `op.create_index`, `op.execute`) `schema=schema_of(op.get_bind())`.
`tests/integration/test_migrations.py` fails when the models and the migrations drift apart.

A database made before migrations existed (tables, no `alembic_version`) is adopted by the baseline revision
itself: 0001 creates each table that is missing and completes each that exists with the optional columns and
indexes later pre-migration versions added (`ensure_table`, `ensure_index`), so it suits an empty database and
every earlier one alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, MetaData, inspect, text
from sqlmodel import SQLModel

from shared.settings import ConfigurationError, ServiceSettings

log = logging.getLogger(__name__)
SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


class SchemaBehind(ConfigurationError):
    """The database's schema is not at this version's head: `reroute db upgrade` first."""


@dataclass(frozen=True)
class Upgraded:
    service: str
    before: str | None
    after: str
    adopted: bool


def schema_of(bind: Engine | Connection) -> str | None:
    """The PostgreSQL schema a service's tables live in (None for SQLite), from its engine or a connection."""
    translate: dict[str | None, str] = bind.get_execution_options().get("schema_translate_map", {})
    return translate.get(None)


def config(service: str, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.attributes["connection"] = connection
    cfg.attributes["service"] = service
    return cfg


def head(service: str) -> str:
    heads = ScriptDirectory.from_config(config(service)).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"{service} has {len(heads)} migration heads ({', '.join(heads)}); merge them")
    return heads[0]


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table_schema": schema_of(engine)}).get_current_revision()


def require_head(engine: Engine, service: str) -> None:
    """Refuse to run on a schema behind (or ahead of) this version's migrations."""
    found, wanted = current(engine), head(service)
    if found != wanted:
        state = "has no migrations applied" if found is None else f"is at revision {found}"
        raise SchemaBehind(f"the {service} database {state}; this version needs {wanted}. Run `reroute db upgrade` "
                           "(`reroute up` does; a deployment runs it as a one-shot step before the services).")


def upgrade(engine: Engine, service: str) -> Upgraded:
    """Bring the service's database to head (adopting a pre-migrations database first)."""
    schema = schema_of(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # replicas or two operators upgrading at once take turns
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"reroute-migrate:{schema}"})
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        before = MigrationContext.configure(conn, opts={"version_table_schema": schema}).get_current_revision()
        adopted = before is None and _has_tables(conn, schema)
        command.upgrade(config(service, conn), "head")
        after = MigrationContext.configure(conn, opts={"version_table_schema": schema}).get_current_revision()
    if before != after:
        log.info("%s database upgraded from %s to %s%s", service, before or "nothing", after,
                    " (adopted a database made before migrations)" if adopted else "")
    return Upgraded(service, before, after or "", adopted)


def run_env(service: str, metadata: MetaData) -> None:
    """The body of every service's migrations/env.py: run online, on the connection `upgrade` passes in."""
    from alembic import context

    env: EnvironmentContext = context  # type: ignore[assignment]
    connection: Connection | None = env.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through `reroute db upgrade` (shared.migrations.upgrade), not the "
                           "alembic command line")
    env.configure(connection=connection, target_metadata=metadata, version_table_schema=schema_of(connection),
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with env.begin_transaction():
        env.run_migrations()


def service_metadata(tables: Sequence[type[SQLModel]]) -> MetaData:
    """A service's tables plus the plumbing every service has (outbox, inbox, dead letters), on one MetaData."""
    from shared.deadletters import DeadLetterRow
    from shared.outbox import InboxRow, OutboxRow

    metadata = MetaData()
    for model in [*tables, OutboxRow, InboxRow, DeadLetterRow]:
        model.__table__.to_metadata(metadata)  # type: ignore[attr-defined]
    return metadata


def _has_tables(conn: Connection, schema: str | None) -> bool:
    return bool(inspect(conn).get_table_names(schema=schema))


def ensure_table(name: str, *parts: Any) -> None:
    """`op.create_table` for a baseline revision: create the table, or, when a pre-migrations version made it
    already, add the optional columns it lacks. A missing required column cannot be added to existing rows."""
    from alembic import op

    conn = op.get_bind()
    schema = schema_of(conn)
    inspector = inspect(conn)
    if not inspector.has_table(name, schema=schema):
        op.create_table(name, *parts, schema=schema)
        return
    present = {c["name"] for c in inspector.get_columns(name, schema=schema)}
    for part in parts:
        if not isinstance(part, Column) or part.name in present:
            continue
        if not part.nullable:
            raise RuntimeError(f"the existing table {name} has no column {part.name}, which cannot be added to "
                               "existing rows: move the old data aside and start again")
        op.add_column(name, Column(part.name, part.type, nullable=True), schema=schema)
        log.warning("added column %s.%s to a database made before migrations", name, part.name)


def ensure_index(name: str, table: str, columns: list[str], *, unique: bool = False) -> None:
    """`op.create_index` for a baseline revision: only when the index is missing."""
    from alembic import op

    conn = op.get_bind()
    schema = schema_of(conn)
    if name not in {i["name"] for i in inspect(conn).get_indexes(table, schema=schema)}:
        op.create_index(name, table, columns, unique=unique, schema=schema)


def upgrade_all(settings: ServiceSettings, services: Sequence[str] = ("intake", "risk", "scheduling")) -> list[Upgraded]:
    """`reroute db upgrade`: every service's database to head, with the same settings the services read."""
    from shared.db import make_engine

    done = []
    for service in services:
        engine = make_engine(service, settings)
        try:
            done.append(upgrade(engine, service))
        finally:
            engine.dispose()
    return done
