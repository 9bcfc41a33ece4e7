"""An agency may withdraw a referral: `referral.withdrawn_at`, `withdrawal_reason` (a code) and `withdrawal_note`
(encrypted, as the body is) record it like a closure.

Expand only: nullable columns, which a replica of the previous version never reads or writes; while one still runs
beside this version it may accept an update of a referral withdrawn meanwhile (the case stays closed in scheduling).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    op.add_column("referral", sa.Column("withdrawn_at", UTCDateTime(), nullable=True), schema=schema)
    op.add_column("referral", sa.Column("withdrawal_reason", AutoString(length=32), nullable=True), schema=schema)
    op.add_column("referral", sa.Column("withdrawal_note", AutoString(), nullable=True), schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    for column in ("withdrawal_note", "withdrawal_reason", "withdrawn_at"):
        op.drop_column("referral", column, schema=schema)
