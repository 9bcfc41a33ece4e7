"""The outbox keeps an event NATS refused for good as parked: when, and why (shared/outbox.py).

Expand only: two nullable columns and an index. A replica of the previous version ignores them (it would only
keep retrying a parked row, as it always did), so the two can run side by side through a rolling update.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    op.add_column("outbox", sa.Column("parked_at", UTCDateTime(), nullable=True), schema=schema)
    op.add_column("outbox", sa.Column("parked_reason", AutoString(length=1000), nullable=True), schema=schema)
    op.create_index("ix_outbox_parked_at", "outbox", ["parked_at"], unique=False, schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    op.drop_index("ix_outbox_parked_at", table_name="outbox", schema=schema)
    op.drop_column("outbox", "parked_reason", schema=schema)
    op.drop_column("outbox", "parked_at", schema=schema)
