"""Admins and safeguarding leads log in to the web console with an authenticator code too (TOTP):
`console_credential` gains the secret (encrypted), when it was put in use, and the step of the last code accepted.

Expand only: nullable columns, which a replica of the previous version never reads.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    op.add_column("console_credential", sa.Column("totp_secret", AutoString(length=500), nullable=True), schema=schema)
    op.add_column("console_credential", sa.Column("totp_confirmed_at", UTCDateTime(), nullable=True), schema=schema)
    op.add_column("console_credential", sa.Column("totp_last_step", sa.Integer(), nullable=True), schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    for column in ("totp_last_step", "totp_confirmed_at", "totp_secret"):
        op.drop_column("console_credential", column, schema=schema)
