"""Alembic environment of risk's migrations; they run through `reroute db upgrade` (shared/migrations.py)."""

from services.risk.tables import TABLES
from shared.migrations import run_env, service_metadata

run_env("risk", service_metadata(TABLES))
