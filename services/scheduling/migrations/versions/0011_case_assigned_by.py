"""`sched_case.assigned_by`: who chose the case's mentor by hand (`reroute assign`), so the batch round keeps a
scheduler's decision instead of undoing it for a better score, its horizon or to make room; cleared whenever the
case's mentor changes any other way.

Expand only: a nullable column. A case stored before it has none, and the round treats it as before (the services'
own choice). A replica of the previous version never reads it; one that moves a case while both versions run
leaves the column as it was, so the new version would keep that case with its new mentor until a person or a
mentor change moves it: a rolling upgrade should not run a batch round on the old version meanwhile.

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
    op.add_column("sched_case", sa.Column("assigned_by", AutoString(length=200), nullable=True),
                  schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.drop_column("sched_case", "assigned_by", schema=schema_of(op.get_bind()))
