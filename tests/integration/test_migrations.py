"""Each service's schema is migrated by alembic: an empty database and one made before migrations (with rows in
it) both reach head, models and migrations never drift apart, and a service refuses a schema behind head.

Runs on SQLite, and on PostgreSQL when DATABASE_URL is set (one schema per service, as deployed)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from shared.db import make_engine
from shared.migrations import SchemaBehind, current, head, require_head, schema_of, service_metadata, upgrade
from shared.settings import ServiceSettings

SERVICES = ("intake", "risk", "scheduling")
PRE_MIGRATION = Path(__file__).parent / "pre_migration"


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[dict[str, Engine]]:
    prefix = f"mig{uuid.uuid4().hex[:8]}"
    settings = ServiceSettings(data_dir=tmp_path, db_schema_prefix=prefix,
                               DATABASE_URL=os.environ.get("DATABASE_URL"))  # type: ignore[call-arg]
    made = {service: make_engine(service, settings) for service in SERVICES}
    yield made
    for engine in made.values():
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_of(engine)}" CASCADE'))
        engine.dispose()


def _tables(service: str) -> list[type]:
    import importlib

    return list(importlib.import_module(f"services.{service}.tables").TABLES)


def _drift(engine: Engine, service: str) -> list[object]:
    schema = schema_of(engine)
    with engine.connect() as conn:
        if schema:  # reflect the service's own schema, where the migrations put its tables
            conn.execute(text(f'SET search_path TO "{schema}"'))
        context = MigrationContext.configure(conn, opts={"version_table_schema": schema, "compare_type": True,
                                                         "include_schemas": False})
        diff = compare_metadata(context, service_metadata(_tables(service)))
    return [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]


@pytest.mark.parametrize("service", SERVICES)
def test_an_empty_database_reaches_head_and_matches_the_models(engines: dict[str, Engine], service: str) -> None:
    engine = engines[service]
    with pytest.raises(SchemaBehind, match="reroute db upgrade"):
        require_head(engine, service)
    done = upgrade(engine, service)
    assert (done.before, done.after, done.adopted) == (None, head(service), False)
    require_head(engine, service)
    assert _drift(engine, service) == [], "the models and the migrations have drifted apart: add a revision"
    again = upgrade(engine, service)
    assert again.before == again.after == head(service), "upgrading twice changes nothing"


@pytest.mark.parametrize("service", SERVICES)
def test_a_database_made_before_migrations_keeps_its_rows_and_reaches_head(
    engines: dict[str, Engine], service: str
) -> None:
    engine = engines[service]
    schema = schema_of(engine)
    ddl = (PRE_MIGRATION / f"{service}.{engine.dialect.name}.sql").read_text()
    with engine.begin() as conn:
        if schema:  # the schema as the code before migrations made it, on its first start
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        for statement in ddl.split(";\n"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.execute(text(body))
        if service == "scheduling":  # an earlier pre-migration version had no routes on sessions
            conn.execute(text("ALTER TABLE session DROP COLUMN route"))
            conn.execute(text("INSERT INTO mentor (mentor_id, record, updated_at) VALUES ('m-old', '{}', :t)"),
                         {"t": datetime.now(UTC)})
        conn.execute(text("INSERT INTO outbox (event_id, subject, payload, headers, created_at) "
                          "VALUES ('e-old', 's', :p, '{}', :t)"), {"p": b"payload", "t": datetime.now(UTC)})
    assert current(engine) is None

    done = upgrade(engine, service)

    assert done.adopted and done.after == head(service)
    require_head(engine, service)
    assert _drift(engine, service) == []
    with engine.connect() as conn:
        if schema:
            conn.execute(text(f'SET search_path TO "{schema}"'))
        assert conn.execute(text("SELECT payload FROM outbox WHERE event_id = 'e-old'")).scalar() == b"payload"
        assert "dead_letters" in inspect(conn).get_table_names(schema=schema), "tables it lacked were added"
        if service == "scheduling":
            assert conn.execute(text("SELECT count(*) FROM mentor WHERE mentor_id = 'm-old'")).scalar() == 1
            assert "route" in {c["name"] for c in inspect(conn).get_columns("session", schema=schema)}
