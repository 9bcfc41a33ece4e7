"""Alembic environment of scheduling's migrations; they run through `reroute db upgrade` (shared/migrations.py)."""

from services.scheduling.tables import TABLES
from shared.migrations import run_env, service_metadata

run_env("scheduling", service_metadata(TABLES))
