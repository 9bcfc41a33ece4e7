"""A calendar-feed link may show the venue of sessions at the organisation's staffed premises (opt-in).

Expand only: one boolean column, false for every existing link, so feeds issued before keep showing no venue. A
replica of the previous version ignores it (its feeds show no venue), so the two can run side by side.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema_of

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calendar_token", sa.Column("show_venues", sa.Boolean(), nullable=False, server_default=sa.false()),
                  schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.drop_column("calendar_token", "show_venues", schema=schema_of(op.get_bind()))
