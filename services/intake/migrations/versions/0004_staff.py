"""People who use reroute get identities of their own: the `staff` table (person id, roles, a bcrypt hash of their
NATS password, active or removed), from which the NATS server's per-person users and permissions are written.

Expand only: a new table, which a replica of the previous version never reads.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff",
        sa.Column("person_id", AutoString(length=64), nullable=False),
        sa.Column("roles", AutoString(length=200), nullable=False),
        sa.Column("nats_password_hash", AutoString(length=100), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("person_id"),
        schema=schema_of(op.get_bind()),
    )


def downgrade() -> None:
    op.drop_table("staff", schema=schema_of(op.get_bind()))
