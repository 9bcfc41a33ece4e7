"""A referral is one trace: `risk_case.trace_context` keeps the W3C traceparent of the referral's trace, so a
risk lead's override, countersignature or refusal is a span in it (shared/telemetry.py).

Expand only: a nullable column, which a replica of the previous version never reads; a case assessed before it
has none, and its next assessment fills it in.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from shared.migrations import schema_of

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("risk_case", sa.Column("trace_context", AutoString(length=100), nullable=True),
                  schema=schema_of(op.get_bind()))


def downgrade() -> None:
    op.drop_column("risk_case", "trace_context", schema=schema_of(op.get_bind()))
