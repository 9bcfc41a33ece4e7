"""Baseline: the intake schema as it stood when migrations were introduced.

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
    ensure_table("agency",
        sa.Column("agency_id", AutoString(length=64), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("key_salt", AutoString(length=64), nullable=False),
        sa.Column("key_hash", AutoString(length=128), nullable=False),
        sa.Column("nats_password_hash", AutoString(length=100), nullable=True),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("rotated_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("agency_id")
    )
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
    ensure_table("equality_monitoring",
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("ethnicity", AutoString(length=100), nullable=True),
        sa.Column("religion", AutoString(length=100), nullable=True),
        sa.Column("disability", AutoString(length=100), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id")
    )
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
    ensure_table("person",
        sa.Column("person_id", AutoString(length=40), nullable=False),
        sa.Column("match_key", AutoString(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
        sa.UniqueConstraint("match_key")
    )
    ensure_table("personal_data_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("item", AutoString(length=40), nullable=False),
        sa.Column("asked_by", AutoString(length=200), nullable=False),
        sa.Column("purpose", AutoString(length=500), nullable=False),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    ensure_index("ix_personal_data_access_referral_id", "personal_data_access", ["referral_id"], unique=False)
    ensure_table("referral",
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("agency_id", AutoString(length=64), nullable=False),
        sa.Column("agency_referral_id", AutoString(length=100), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("body", AutoString(), nullable=False),
        sa.Column("person_id", AutoString(length=40), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("cloudevent", AutoString(), nullable=True),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id"),
        sa.UniqueConstraint("agency_id", "agency_referral_id", name="uq_referral_agency_ref")
    )
    ensure_index("ix_referral_agency_id", "referral", ["agency_id"], unique=False)
    ensure_index("ix_referral_person_id", "referral", ["person_id"], unique=False)
    ensure_table("rejection",
        sa.Column("event_id", AutoString(length=400), nullable=False),
        sa.Column("agency_id", AutoString(length=64), nullable=False),
        sa.Column("agency_referral_id", AutoString(length=100), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("errors", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("event_id")
    )
    ensure_index("ix_rejection_agency_id", "rejection", ["agency_id"], unique=False)


def downgrade() -> None:
    raise RuntimeError("the baseline revision is not downgraded: it would drop every table and its data")
