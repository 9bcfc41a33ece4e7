"""The people who use reroute and their roles: each gets NATS credentials of their own (user `person-<id>`), of
which only a bcrypt hash is kept; the NATS server's configuration is written from `nats_credentials` (the
`people.nats` request), so a person added or removed is let in or shut out when the server next reloads it."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from services.intake.tables import ConsoleCredentialRecord, StaffRecord, as_utc
from shared.contracts.intake_rpc import PersonCredentials, StaffMember, StaffNatsHash
from shared.contracts.rpc import Role
from shared.nats_auth import hash_password, person_inbox_prefix, person_nats_user
from shared.subjects import AGENCY_ID


class StaffError(ValueError):
    """A request about people that cannot be done; the message says why and what to do instead."""


class LastAdmin(StaffError):
    """Removing this person would leave no admin."""


def _roles(text: str) -> list[Role]:
    return [Role(r) for r in text.split(",") if r]


def public(row: StaffRecord) -> StaffMember:
    return StaffMember(person_id=row.person_id, roles=_roles(row.roles), status="removed" if row.status == "removed"
                       else "active", created_at=as_utc(row.created_at),
                       removed_at=as_utc(row.removed_at) if row.removed_at else None)


class StaffRegistry:
    """The staff table: add (or add again), remove, list, and the active people's NATS hashes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, person_id: str, roles: list[Role], *, now: datetime, only_first_admin: bool = False
            ) -> tuple[StaffMember, PersonCredentials]:
        """Add a person (or a removed one again, with a new password); returns them and their credentials, the only
        time the password exists in clear. `only_first_admin`: refused when any admin is active already."""
        if not AGENCY_ID.match(person_id):
            raise StaffError(f"person id '{person_id}' is not valid: use lower-case letters, digits, - and _ (at most "
                             "63), starting with a letter or digit, e.g. sam-okafor")
        wanted = sorted(set(roles), key=list(Role).index)
        password = secrets.token_urlsafe(24)
        values = {"roles": ",".join(wanted), "nats_password_hash": hash_password(password), "status": "active",
                  "created_at": now, "removed_at": None}
        try:
            with self._engine.begin() as conn:
                if only_first_admin and self._admins(conn):
                    raise StaffError("an admin exists already: the first admin is made once; an admin adds the "
                                     "others with `reroute people add`")
                found = conn.execute(select(col(StaffRecord.status)).where(
                    col(StaffRecord.person_id) == person_id)).scalar()
                if found == "active":
                    raise StaffError(f"'{person_id}' already has an identity; to change their roles or password, "
                                     f"`reroute people remove {person_id}`, then add them again")
                if found is None:
                    conn.execute(insert(StaffRecord).values(person_id=person_id, **values))
                else:
                    conn.execute(update(StaffRecord).where(col(StaffRecord.person_id) == person_id).values(**values))
        except IntegrityError:  # added at the same moment by another replica
            raise StaffError(f"'{person_id}' already has an identity") from None
        member = self._public(person_id)
        return member, PersonCredentials(person_id=person_id, roles=member.roles, nats_user=person_nats_user(person_id),
                                         password=password, inbox_prefix=person_inbox_prefix(person_id))

    def remove(self, person_id: str, *, now: datetime) -> StaffMember:
        """Remove a person; never the last admin (no one could then add people, and only the operator account's
        one-time bootstrap would remain)."""
        with self._engine.begin() as conn:
            if self._admins(conn) == [person_id]:
                raise LastAdmin(f"'{person_id}' is the last admin: add another admin first, then remove them")
            done = conn.execute(update(StaffRecord).where(
                col(StaffRecord.person_id) == person_id, col(StaffRecord.status) == "active"
            ).values(status="removed", removed_at=now))
            # their console password goes with them: added again, they get a new one-time one
            conn.execute(delete(ConsoleCredentialRecord).where(col(ConsoleCredentialRecord.person_id) == person_id))
        if done.rowcount == 0:
            raise StaffError(f"no active person '{person_id}' (see `reroute people list`)")
        return self._public(person_id)

    def member(self, person_id: str) -> StaffMember | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(StaffRecord).where(col(StaffRecord.person_id) == person_id)).first()
        return public(row) if row is not None else None  # type: ignore[arg-type]

    def all(self) -> list[StaffMember]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(StaffRecord).order_by(col(StaffRecord.person_id))).all()
        return [public(r) for r in rows]  # type: ignore[arg-type]

    def nats_credentials(self) -> list[StaffNatsHash]:
        """Active people's roles and NATS password hashes, for the server configuration."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(col(StaffRecord.person_id), col(StaffRecord.roles),
                                       col(StaffRecord.nats_password_hash))
                                .where(col(StaffRecord.status) == "active").order_by(col(StaffRecord.person_id))).all()
        return [StaffNatsHash(person_id=p, roles=_roles(r), password_hash=h) for p, r, h in rows]

    def _admins(self, conn: object) -> list[str]:
        rows = conn.execute(select(col(StaffRecord.person_id), col(StaffRecord.roles))  # type: ignore[attr-defined]
                            .where(col(StaffRecord.status) == "active")).all()
        return [p for p, r in rows if Role.ADMIN in _roles(r)]

    def _public(self, person_id: str) -> StaffMember:
        found = self.member(person_id)
        assert found is not None
        return found
