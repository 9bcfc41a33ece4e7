"""A case's reason as its referring agency is told it, kept apart from the full reason schedulers see.

Adds a nullable column only (expand): cases stored before it have none, and the status reply then says only what
their status implies (`agency_reasons.stored_before`).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from shared.migrations import schema_of

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sched_case", sa.Column("agency_reason", AutoString(), nullable=True),
                  schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.drop_column("sched_case", "agency_reason", schema=schema_of(op.get_bind()))
