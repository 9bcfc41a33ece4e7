"""A safeguarding alert is acknowledged by a named person (`reroute alerts ack`), and keeps its agency.

Expand only: four nullable columns and an index. A replica of the previous version never reads them (it went on
counting an alert as taken up once the referral's tier was reviewed). What that version counted is carried over:
an alert whose referral had a tier review recorded at or after it was raised is marked acknowledged by the
practitioner who recorded the first such review, at that time, so an upgrade does not page for alerts someone
already took up. Each alert is given its referral's agency.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import schema_of

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARRIED_OVER = "a tier review recorded before alerts were acknowledged by name (migration 0004)"


def upgrade() -> None:
    schema = schema_of(op.get_bind())
    with op.batch_alter_table("safeguarding_alert", schema=schema) as batch:
        batch.add_column(sa.Column("agency_id", AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", AutoString(length=200), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("acknowledgement_note", AutoString(length=2000), nullable=True))
    op.create_index("ix_safeguarding_alert_acknowledged_at", "safeguarding_alert", ["acknowledged_at"], unique=False,
                    schema=schema)

    meta = sa.MetaData(schema=schema)
    alert = sa.Table("safeguarding_alert", meta, autoload_with=op.get_bind())
    case = sa.Table("risk_case", meta, autoload_with=op.get_bind())
    assessment = sa.Table("assessment", meta, autoload_with=op.get_bind())
    op.execute(alert.update().values(agency_id=sa.select(case.c.agency_id)
                                     .where(case.c.referral_id == alert.c.referral_id).scalar_subquery()))
    def first_review(column: sa.Column[object]) -> sa.ScalarSelect[object]:
        """`column` of the earliest tier review of the alert's referral at or after it was raised."""
        return (sa.select(column).where(assessment.c.referral_id == alert.c.referral_id,
                                        assessment.c.cause == "override", assessment.c.assessed_at >= alert.c.raised_at)
                .order_by(assessment.c.assessed_at).limit(1).scalar_subquery())

    op.execute(alert.update().where(first_review(assessment.c.assessed_at).is_not(None)).values(
        acknowledged_at=first_review(assessment.c.assessed_at),
        acknowledged_by=sa.func.coalesce(first_review(assessment.c.changed_by), "unknown"),
        acknowledgement_note=CARRIED_OVER))


def downgrade() -> None:
    schema = schema_of(op.get_bind())
    op.drop_index("ix_safeguarding_alert_acknowledged_at", table_name="safeguarding_alert", schema=schema)
    with op.batch_alter_table("safeguarding_alert", schema=schema) as batch:
        batch.drop_column("acknowledgement_note")
        batch.drop_column("acknowledged_at")
        batch.drop_column("acknowledged_by")
        batch.drop_column("agency_id")
