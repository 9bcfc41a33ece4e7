"""A service's own tables for a test: a SQLite file, or a schema of their own when DATABASE_URL names a PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from services.intake.settings import IntakeSettings
from shared.db import is_postgres, make_engine
from shared.migrations import schema_of, upgrade
from shared.settings import ServiceSettings


@contextmanager
def intake_database(data_dir: Path, **settings: Any) -> Iterator[tuple[Engine, IntakeSettings]]:
    """Intake's tables migrated to head, and the settings that name them; the schema is dropped afterwards."""
    chosen = IntakeSettings(data_dir=data_dir, db_schema_prefix=f"tu{uuid.uuid4().hex[:12]}", **settings)
    engine = make_engine("intake", chosen)
    upgrade(engine, "intake")
    try:
        yield engine, chosen
    finally:
        if is_postgres(engine):
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{chosen.db_schema_prefix}_intake" CASCADE'))
        engine.dispose()


@contextmanager
def service_database(service: str, data_dir: Path) -> Iterator[Engine]:
    """`service`'s tables migrated to head (a SQLite file in `data_dir`, or a schema of their own on the PostgreSQL
    DATABASE_URL names); the schema is dropped afterwards."""
    settings = ServiceSettings(data_dir=data_dir, db_schema_prefix=f"t{uuid.uuid4().hex[:12]}")
    engine = make_engine(service, settings)
    upgrade(engine, service)
    try:
        yield engine
    finally:
        if is_postgres(engine):
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_of(engine)}" CASCADE'))
        engine.dispose()
