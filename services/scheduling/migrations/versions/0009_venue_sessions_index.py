"""An index on `session (venue_id, start)`: a borough's rooms taken in a week (`venues.week`, `store.venue_sessions`)
reads its venues' sessions in the window without reading every session of the week in every borough.

Expand only: an index, which a replica of the previous version uses without knowing. It is built in the migration's
transaction, and writes to the session table wait meanwhile (the size of one of migration 0008's four).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import schema_of

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_session_venue_id_start", "session", ["venue_id", "start"], unique=False,
                    schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.drop_index("ix_session_venue_id_start", table_name="session", schema=schema_of(op.get_bind()))
