"""Equality-monitoring answers are stored encrypted: a nullable column `answers` (the answers as one JSON object,
Fernet-encrypted with intake's key, like referral bodies) beside the plain ethnicity, religion and disability.

Expand only, because a migration cannot reach the key cleanly. It is intake's alone: REROUTE_INTAKE_ENCRYPTION_KEY
in intake's environment, which the one-shot `reroute db upgrade` does not have (compose's `migrate` runs as the
schemas' owner with no intake key, and should not be given one), or the file intake generates in its data dir on
its first start, which need not exist yet (and a migration that made one would fork the key). So:
1. this revision adds the column;
2. intake of this version writes `answers` only, reads either, and encrypts the rows stored in plain (clearing
   their plain columns) in batches, seconds after it starts and every few seconds after, so rows a replica of the
   previous version writes during a rolling update are caught too; `reroute keys reencrypt` does it at once.
   Each row is written only if it still holds what was read (compare-and-set): replicas sweeping at once, and
   answers written again meanwhile, are safe;
3. a later release's revision drops the plain columns (contract), refusing to run while any row has `answers`
   NULL.
A replica of the previous version runs beside this one on this schema: it reads and writes the plain columns only
(its rows are encrypted by the next sweep; until it is replaced, an audit it answers misses encrypted answers).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from shared.migrations import schema_of

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("equality_monitoring", sa.Column("answers", AutoString(), nullable=True),
                  schema=schema_of(op.get_bind()))


def downgrade() -> None:
    conn = op.get_bind()
    schema = schema_of(conn)
    table = sa.table("equality_monitoring", sa.column("answers"), schema=schema)
    if conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.answers.is_not(None))).scalar():
        raise RuntimeError("equality answers are stored encrypted (equality_monitoring.answers): the previous "
                           "version cannot read them, and dropping the column would lose them")
    op.drop_column("equality_monitoring", "answers", schema=schema)
