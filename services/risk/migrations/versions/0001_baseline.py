"""Baseline: the risk schema as it stood when migrations were introduced.

Creates what is missing, so it suits an empty database and one made before migrations alike (see
shared.migrations.ensure_table). Never downgraded: there is nothing before it but data.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from shared.migrations import ensure_index, ensure_table

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ensure_table("assessment",
        sa.Column("event_id", AutoString(length=120), nullable=False),
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("assessed_at", UTCDateTime(), nullable=False),
        sa.Column("computed_tier", AutoString(length=16), nullable=False),
        sa.Column("final_tier", AutoString(length=16), nullable=False),
        sa.Column("cause", AutoString(length=16), nullable=False),
        sa.Column("changed_by", AutoString(length=200), nullable=True),
        sa.Column("rules_version", AutoString(length=40), nullable=False),
        sa.Column("event", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("event_id")
    )
    ensure_index("ix_assessment_referral_id", "assessment", ["referral_id"], unique=False)
    ensure_table("dead_letters",
        sa.Column("id", AutoString(length=100), nullable=False),
        sa.Column("message_key", AutoString(length=400), nullable=False),
        sa.Column("consumer", AutoString(length=100), nullable=False),
        sa.Column("subject", AutoString(length=300), nullable=False),
        sa.Column("headers", AutoString(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("reason", AutoString(length=1000), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("failed_at", UTCDateTime(), nullable=False),
        sa.Column("referral_id", AutoString(length=100), nullable=True),
        sa.Column("status", AutoString(length=20), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", AutoString(length=100), nullable=True),
        sa.Column("note", AutoString(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id")
    )
    ensure_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"], unique=False)
    ensure_index("ix_dead_letters_message_key", "dead_letters", ["message_key"], unique=False)
    ensure_index("ix_dead_letters_referral_id", "dead_letters", ["referral_id"], unique=False)
    ensure_index("ix_dead_letters_status", "dead_letters", ["status"], unique=False)
    ensure_table("inbox",
        sa.Column("message_key", AutoString(length=400), nullable=False),
        sa.Column("consumer", AutoString(length=100), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("message_key")
    )
    ensure_table("outbox",
        sa.Column("event_id", AutoString(length=200), nullable=False),
        sa.Column("subject", AutoString(length=300), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", AutoString(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("event_id")
    )
    ensure_index("ix_outbox_created_at", "outbox", ["created_at"], unique=False)
    ensure_index("ix_outbox_sent_at", "outbox", ["sent_at"], unique=False)
    ensure_table("risk_case",
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("agency_id", AutoString(length=64), nullable=False),
        sa.Column("facts", AutoString(), nullable=False),
        sa.Column("latest", AutoString(), nullable=False),
        sa.Column("tier", AutoString(length=16), nullable=False),
        sa.Column("computed_tier", AutoString(length=16), nullable=False),
        sa.Column("override", AutoString(length=16), nullable=True),
        sa.Column("rules_version", AutoString(length=40), nullable=False),
        sa.Column("review_due", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id")
    )
    ensure_index("ix_risk_case_agency_id", "risk_case", ["agency_id"], unique=False)
    ensure_index("ix_risk_case_review_due", "risk_case", ["review_due"], unique=False)
    ensure_index("ix_risk_case_tier", "risk_case", ["tier"], unique=False)
    ensure_table("safeguarding_alert",
        sa.Column("event_id", AutoString(length=120), nullable=False),
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("rule_id", AutoString(length=80), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("actions", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("event_id")
    )
    ensure_index("ix_safeguarding_alert_referral_id", "safeguarding_alert", ["referral_id"], unique=False)


def downgrade() -> None:
    raise RuntimeError("the baseline revision is not downgraded: it would drop every table and its data")
