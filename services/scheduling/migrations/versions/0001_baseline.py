"""Baseline: the scheduling schema as it stood when migrations were introduced.

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
    ensure_table("calendar_token",
        sa.Column("token_hash", AutoString(length=64), nullable=False),
        sa.Column("mentor_id", AutoString(length=64), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash")
    )
    ensure_index("ix_calendar_token_mentor_id", "calendar_token", ["mentor_id"], unique=False)
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
    ensure_table("mentor",
        sa.Column("mentor_id", AutoString(length=64), nullable=False),
        sa.Column("record", AutoString(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mentor_id")
    )
    ensure_table("mentor_leave",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", AutoString(length=64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    ensure_index("ix_mentor_leave_mentor_id", "mentor_leave", ["mentor_id"], unique=False)
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
    ensure_table("sched_case",
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("agency_id", AutoString(length=64), nullable=False),
        sa.Column("person_id", AutoString(length=40), nullable=True),
        sa.Column("facts", AutoString(), nullable=True),
        sa.Column("tier", AutoString(length=16), nullable=True),
        sa.Column("assessment_number", sa.Integer(), nullable=False),
        sa.Column("cadence_tier", AutoString(length=16), nullable=True),
        sa.Column("lower_reviews", sa.Integer(), nullable=False),
        sa.Column("wellbeing_tier", AutoString(length=16), nullable=True),
        sa.Column("missing", sa.Boolean(), nullable=False),
        sa.Column("staffed_only", sa.Boolean(), nullable=False),
        sa.Column("needs", AutoString(), nullable=True),
        sa.Column("status", AutoString(length=24), nullable=False),
        sa.Column("mentor_id", AutoString(length=64), nullable=True),
        sa.Column("reason", AutoString(), nullable=True),
        sa.Column("deadline_met", sa.Boolean(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id")
    )
    ensure_index("ix_sched_case_agency_id", "sched_case", ["agency_id"], unique=False)
    ensure_index("ix_sched_case_mentor_id", "sched_case", ["mentor_id"], unique=False)
    ensure_index("ix_sched_case_person_id", "sched_case", ["person_id"], unique=False)
    ensure_index("ix_sched_case_status", "sched_case", ["status"], unique=False)
    ensure_table("session",
        sa.Column("session_id", AutoString(length=40), nullable=False),
        sa.Column("referral_id", AutoString(length=40), nullable=False),
        sa.Column("mentor_id", AutoString(length=64), nullable=False),
        sa.Column("venue_id", AutoString(length=64), nullable=True),
        sa.Column("route", AutoString(), nullable=True),
        sa.Column("mentor_route", AutoString(), nullable=True),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id")
    )
    ensure_index("ix_session_mentor_id", "session", ["mentor_id"], unique=False)
    ensure_index("ix_session_referral_id", "session", ["referral_id"], unique=False)
    ensure_index("ix_session_start", "session", ["start"], unique=False)
    ensure_table("venue",
        sa.Column("venue_id", AutoString(length=64), nullable=False),
        sa.Column("record", AutoString(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("venue_id")
    )


def downgrade() -> None:
    raise RuntimeError("the baseline revision is not downgraded: it would drop every table and its data")
