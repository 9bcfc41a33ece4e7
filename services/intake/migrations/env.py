"""Alembic environment of intake's migrations; they run through `reroute db upgrade` (shared/migrations.py)."""

from services.intake.tables import TABLES
from shared.migrations import run_env, service_metadata

run_env("intake", service_metadata(TABLES))
