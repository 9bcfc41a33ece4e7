"""Indexes on what scheduling filters by, so that its reads stay as fast after years of sessions as on the first day
(docs/performance.md, "As history grows"):

- `session.end`: booking's read of every mentor's sessions and the rooms taken (`store.load_mentor_states`,
  `load_rooms`) asks for those ending from yesterday on; without it each read scanned every session ever booked;
- `session (mentor_id, start)`: a mentor's calendar week and the sessions a leave falls on, in order, without
  reading the mentor's whole history;
- `session (mentor_id, end)`: a mentor's calendar feed (the sessions ending in its window);
- `mentor_leave.last_day`: the leave still to come, read with the mentors.

Expand only: indexes, which a replica of the previous version uses without knowing. They are built in the
migration's transaction, and writes to the tables wait meanwhile: 2.1 s for all four on PostgreSQL, 2.9 s on SQLite,
over a year of history (450,000 sessions; `python -m bench.history --revision 0007`).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import schema_of

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_session_end", "session", ["end"]),
    ("ix_session_mentor_id_start", "session", ["mentor_id", "start"]),
    ("ix_session_mentor_id_end", "session", ["mentor_id", "end"]),
    ("ix_mentor_leave_last_day", "mentor_leave", ["last_day"]),
)


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False, schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table, schema=schema)
