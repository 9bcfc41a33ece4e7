"""Drop `ix_session_mentor_id` (session.mentor_id, from the baseline): `ix_session_mentor_id_start` (migration 0008)
leads with mentor_id, so it serves every lookup by mentor the single-column index served, and each session written
no longer updates a third index on mentor_id.

Contract, safe within one release: no code names the index, and every read of a mentor's sessions, in this version
and the previous one, filters on mentor_id with start or end, which the planner serves from 0008's
`(mentor_id, start)` and `(mentor_id, end)`; a replica of the previous version runs unchanged beside this one.
Dropping an index is quick on SQLite and PostgreSQL alike (no rewrite of the table); the downgrade builds it again.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import schema_of

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_session_mentor_id", table_name="session", schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.create_index("ix_session_mentor_id", "session", ["mentor_id"], unique=False, schema=schema_of(op.get_bind()))
