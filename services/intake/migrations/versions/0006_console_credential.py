"""People log in to the web console with a password of its own: the `console_credential` table (an argon2id hash,
one-time or chosen, and the wrong tries that lock a log-in for a while), apart from their NATS credentials.

Expand only: a new table, which a replica of the previous version never reads.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_credential",
        sa.Column("person_id", AutoString(length=64), nullable=False),
        sa.Column("password_hash", AutoString(length=200), nullable=False),
        sa.Column("one_time", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
        schema=schema_of(op.get_bind()),
    )


def downgrade() -> None:
    op.drop_table("console_credential", schema=schema_of(op.get_bind()))
