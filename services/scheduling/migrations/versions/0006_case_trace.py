"""A referral is one trace: `sched_case.trace_context` keeps the W3C traceparent of the referral's trace, so a
re-plan scheduling starts itself (a mentor's leave, a mentor who may no longer keep their cases) is a span in it
(shared/telemetry.py).

Expand only: a nullable column, which a replica of the previous version never reads; a case stored before it has
none, and its re-plans start traces of their own, as before.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from shared.migrations import schema_of

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sched_case", sa.Column("trace_context", AutoString(length=100), nullable=True),
                  schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.drop_column("sched_case", "trace_context", schema=schema_of(op.get_bind()))
