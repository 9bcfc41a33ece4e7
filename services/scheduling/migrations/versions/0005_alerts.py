"""Scheduling keeps the safeguarding alerts it raises (disengagement), so a safeguarding lead can list them and
acknowledge one by name (`reroute alerts`, `reroute alerts ack`).

Expand only: a new table, which a replica of the previous version never reads (it publishes its alerts without
keeping them, as it always did). Alerts raised before this version are on the SAFEGUARDING stream only.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    op.create_table(
        "sched_alert",
        sa.Column("event_id", AutoString(length=120), nullable=False),
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("agency_id", AutoString(length=64), nullable=True),
        sa.Column("rule_id", AutoString(length=80), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("actions", AutoString(), nullable=False),
        sa.Column("acknowledged_by", AutoString(length=200), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledgement_note", AutoString(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
        schema=schema,
    )
    op.create_index("ix_sched_alert_referral_id", "sched_alert", ["referral_id"], unique=False, schema=schema)
    op.create_index("ix_sched_alert_acknowledged_at", "sched_alert", ["acknowledged_at"], unique=False, schema=schema)


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    op.drop_index("ix_sched_alert_acknowledged_at", table_name="sched_alert", schema=schema)
    op.drop_index("ix_sched_alert_referral_id", table_name="sched_alert", schema=schema)
    op.drop_table("sched_alert", schema=schema)
