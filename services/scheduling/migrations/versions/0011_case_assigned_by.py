"""`sched_case.assigned_by` and `assigned_mentor_id`: who chose the case's mentor by hand (`reroute assign`) and
which mentor they chose, so the batch round keeps a scheduler's decision instead of undoing it for a better score,
its horizon or to make room; both cleared whenever the case's mentor changes any other way.

Expand only: two nullable columns. A case stored before them has none, and the round treats it as before (the
services' own choice). A replica of the previous version never reads them; one that moves a case while both
versions run leaves them as they were, but the case's mentor_id is then another than `assigned_mentor_id`, so the
round no longer keeps it (the choice is over, as it would have been on this version). Only a case an older replica
moves away and back to the very mentor chosen is kept again: with the mentor the scheduler chose.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from shared.migrations import schema_of

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    op.add_column("sched_case", sa.Column("assigned_by", AutoString(length=200), nullable=True), schema=schema)
    op.add_column("sched_case", sa.Column("assigned_mentor_id", AutoString(length=64), nullable=True), schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    op.drop_column("sched_case", "assigned_mentor_id", schema=schema)
    op.drop_column("sched_case", "assigned_by", schema=schema)
