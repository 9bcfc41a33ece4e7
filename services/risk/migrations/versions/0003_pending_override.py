"""Lowering a tier takes two risk leads, in two steps: `pending_override` keeps each lowering asked for, pending
until a second risk lead countersigns or someone refuses it, or until it lapses, and what became of it.

Expand only: a new table, which a replica of the previous version never reads (it would still take a lowering with
its countersignature in one request, as it always did).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    op.create_table(
        "pending_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("tier", AutoString(length=16), nullable=False),
        sa.Column("reason", AutoString(length=2000), nullable=False),
        sa.Column("requested_by", AutoString(length=200), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("decided_by", AutoString(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_reason", AutoString(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index("ix_pending_override_referral_id", "pending_override", ["referral_id"], unique=False,
                    schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    op.drop_index("ix_pending_override_referral_id", table_name="pending_override", schema=schema)
    op.drop_table("pending_override", schema=schema)
