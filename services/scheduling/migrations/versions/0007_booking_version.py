"""The booking version: a token that changes whenever anything booking reads changes, so a replica may reuse the
mentors and rooms its last booking left it with instead of reading every session again (store.booking_state).

`booking_version` holds one row. Triggers give it a new random token on every insert, update or delete of a
session, a leave, a mentor or a venue, and of a case that holds a place (before or after the change: HOLDING, as
services/scheduling/lifecycle.py's HOLDING_A_PLACE, which a test holds this to), whoever writes it: a replica of
any version, an operator's SQL, a purge. The first token is random too, so no two databases start alike.

Expand only: a new table and triggers. A replica of the previous version never reads the table; its writes set the
token like any other, so a new replica's reuse stays true beside it.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from shared.migrations import schema_of

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("session", "mentor_leave", "mentor", "venue")  # every change to these changes the token
HOLDING = ("scheduled", "suspended")  # a case holding a place (its mentor's caseload and points)
_HOLDING_SQL = ", ".join(f"'{status}'" for status in HOLDING)


def upgrade() -> None:
    bind = op.get_bind()
    schema = schema_of(bind)
    op.create_table(
        "booking_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    if bind.dialect.name == "postgresql":
        _postgres(schema)
    else:
        _sqlite()


def _sqlite() -> None:
    new = "UPDATE booking_version SET token = lower(hex(randomblob(16)))"
    op.execute("INSERT INTO booking_version (id, token) VALUES (1, lower(hex(randomblob(16))))")
    for table in WATCHED:
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER booking_version_{table}_{change.lower()} AFTER {change} ON {table} "
                       f"BEGIN {new}; END")
    for change, when in (("INSERT", f"NEW.status IN ({_HOLDING_SQL})"),
                         ("UPDATE", f"OLD.status IN ({_HOLDING_SQL}) OR NEW.status IN ({_HOLDING_SQL})"),
                         ("DELETE", f"OLD.status IN ({_HOLDING_SQL})")):
        op.execute(f"CREATE TRIGGER booking_version_sched_case_{change.lower()} AFTER {change} ON sched_case "
                   f"WHEN {when} BEGIN {new}; END")


def _postgres(schema: str | None) -> None:
    at = f'"{schema}".' if schema else ""
    op.execute(f"INSERT INTO {at}booking_version (id, token) VALUES (1, gen_random_uuid()::text)")
    # The table is found from the schema of the table that fired, so a schema restored under another name still works.
    op.execute(f"""
        CREATE FUNCTION {at}bump_booking_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('UPDATE %I.booking_version SET token = gen_random_uuid()::text', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$""")
    bump = f"EXECUTE FUNCTION {at}bump_booking_version()"
    for table in WATCHED:
        op.execute(f"CREATE TRIGGER booking_version_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   f"ON {at}{table} FOR EACH STATEMENT {bump}")
    for change, when in (("INSERT", f"NEW.status IN ({_HOLDING_SQL})"),
                         ("UPDATE", f"OLD.status IN ({_HOLDING_SQL}) OR NEW.status IN ({_HOLDING_SQL})"),
                         ("DELETE", f"OLD.status IN ({_HOLDING_SQL})")):
        op.execute(f"CREATE TRIGGER booking_version_{change.lower()} AFTER {change} ON {at}sched_case "
                   f"FOR EACH ROW WHEN ({when}) {bump}")
    op.execute(f"CREATE TRIGGER booking_version_truncate AFTER TRUNCATE ON {at}sched_case FOR EACH STATEMENT {bump}")


def downgrade() -> None:
    bind = op.get_bind()
    schema = schema_of(bind)
    if bind.dialect.name == "postgresql":
        at = f'"{schema}".' if schema else ""
        for table in WATCHED:
            op.execute(f"DROP TRIGGER booking_version_changed ON {at}{table}")
        for name in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER booking_version_{name} ON {at}sched_case")
        op.execute(f"DROP FUNCTION {at}bump_booking_version()")
    else:
        for table in (*WATCHED, "sched_case"):
            for change in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER booking_version_{table}_{change}")
    op.drop_table("booking_version", schema=schema)
