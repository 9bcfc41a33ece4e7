"""Tables the intake service owns. The referral body holds personal data: it is stored encrypted and never
leaves intake; a person is recognised again by a keyed hash, never by plain names or birth dates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class ReferralRecord(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (UniqueConstraint("agency_id", "agency_referral_id", name="uq_referral_agency_ref"),)

    referral_id: str = Field(primary_key=True, max_length=40)
    agency_id: str = Field(index=True, max_length=64)
    agency_referral_id: str = Field(max_length=100)
    received_at: datetime
    body: str = Field(description="The submitted referral as validated JSON, encrypted (Fernet): personal data.")
    person_id: str = Field(index=True, max_length=40, description="The young person (see PersonRecord).")
    updated_at: datetime
    revision: int = Field(default=0, description="How many times the agency updated it.")
    cloudevent: str | None = Field(default=None, description="CloudEvents ce-* headers, when present, as JSON.")
    submissions: int = Field(default=1, description="How many times the agency submitted it.")
    trace_context: str | None = Field(default=None, max_length=100, description=(
        "The W3C traceparent it was first accepted under: its updates and repeats continue that trace."))
    withdrawn_at: datetime | None = Field(default=None, description=(
        "When the agency withdrew it (null: not withdrawn); a withdrawn referral takes no more updates."))
    withdrawal_reason: str | None = Field(default=None, max_length=32, description="The agency's coded reason.")
    withdrawal_note: str | None = Field(default=None, description=(
        "The agency's note on the withdrawal, encrypted (Fernet) like the body: it may hold personal data."))


class RejectionRecord(SQLModel, table=True):
    """A refused submission: the reasons only, never the body (it may hold personal data)."""

    __tablename__ = "rejection"

    event_id: str = Field(primary_key=True, max_length=400)
    agency_id: str = Field(index=True, max_length=64)
    agency_referral_id: str | None = Field(default=None, max_length=100)
    received_at: datetime
    errors: str = Field(description="JSON list of {field, message}.")


class EqualityRecord(SQLModel, table=True):
    """Equality-monitoring answers, apart from the referral: never sent on, read only by the fairness audit and a
    person's export. Special category data, so encrypted like referral bodies.

    The plain columns are what versions before migration 0003 wrote: intake writes `answers` only, reads either,
    and encrypts what a plain row holds into `answers` (clearing the plain columns) in the background; a later
    revision drops them (see migrations/versions/0003_equality_encrypted.py)."""

    __tablename__ = "equality_monitoring"

    referral_id: str = Field(primary_key=True, max_length=40)
    ethnicity: str | None = Field(default=None, max_length=100, description="Plain; written only before 0003.")
    religion: str | None = Field(default=None, max_length=100, description="Plain; written only before 0003.")
    disability: str | None = Field(default=None, max_length=100, description="Plain; written only before 0003.")
    recorded_at: datetime
    answers: str | None = Field(default=None, description="The answers as a JSON object, encrypted (Fernet).")


class PersonRecord(SQLModel, table=True):
    """A young person as intake recognises them across referrals: a pseudonymous id and a keyed hash."""

    __tablename__ = "person"

    person_id: str = Field(primary_key=True, max_length=40)
    match_key: str = Field(unique=True, max_length=64, description="HMAC-SHA256 of normalised names and birth date.")
    created_at: datetime


class AgencyRecord(SQLModel, table=True):
    """An agency allowed to use the HTTP API. Only a salted hash of its API key is kept (HMAC-SHA256; an older
    scrypt hash is replaced on the key's first use).

    `agency_id` and `status` are what a NATS permission/credential issuer needs: an agency may publish only on
    subjects ending in its id, and a revoked one on none."""

    __tablename__ = "agency"

    agency_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    key_salt: str = Field(max_length=64, description="Hex salt of the key hash.")
    key_hash: str = Field(max_length=128, description="`hmac-sha256:<hex>` of the API key (bare hex: an older scrypt hash).")
    nats_password_hash: str | None = Field(default=None, max_length=100, description="bcrypt, as nats-server reads.")
    status: str = Field(default="active", max_length=16, description="'active' or 'revoked'.")
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


class StaffRecord(SQLModel, table=True):
    """A person who uses reroute (a scheduler, a risk lead, ...), with their roles. Only a bcrypt hash of their
    NATS password is kept, which the NATS server configuration reads; a removed person stays listed (the access
    log and the tier history name them) but has no user on the server."""

    __tablename__ = "staff"

    person_id: str = Field(primary_key=True, max_length=64)
    roles: str = Field(max_length=200, description="Comma-separated roles, e.g. 'risk_lead,dsl'.")
    nats_password_hash: str = Field(max_length=100, description="bcrypt, as nats-server reads.")
    status: str = Field(default="active", max_length=16, description="'active' or 'removed'.")
    created_at: datetime
    removed_at: datetime | None = None


class ConsoleCredentialRecord(SQLModel, table=True):
    """A person's web console password, apart from their NATS credentials: an argon2id hash (never the password),
    whether it is a one-time one, and the wrong tries that lock their log-in for a while."""

    __tablename__ = "console_credential"

    person_id: str = Field(primary_key=True, max_length=64)
    password_hash: str = Field(max_length=200, description="argon2id, in its standard encoded form.")
    one_time: bool = Field(description="Issued by an admin: the person must choose their own at first log-in.")
    failed_logins: int = Field(default=0, description="Wrong passwords in a row since the last right one.")
    locked_until: datetime | None = Field(default=None, description="No log-in is checked before then.")
    changed_at: datetime
    totp_secret: str | None = Field(default=None, max_length=500, description=(
        "Their authenticator (TOTP) secret, encrypted (Fernet): admins' and safeguarding leads' second factor."))
    totp_confirmed_at: datetime | None = Field(default=None, description="When it was put in use; None: not yet.")
    totp_last_step: int | None = Field(default=None, description="The 30-second step of the last code accepted: "
                                                                 "no code is accepted twice.")


class PersonalDataAccessRecord(SQLModel, table=True):
    """Who asked intake for a piece of a young person's personal data, when and why."""

    __tablename__ = "personal_data_access"

    id: int | None = Field(default=None, primary_key=True)
    referral_id: str = Field(index=True, max_length=40)
    item: str = Field(max_length=40, description="What was asked for, e.g. 'first_name'.")
    asked_by: str = Field(max_length=200)
    purpose: str = Field(max_length=500)
    asked_at: datetime
    answered: bool = Field(description="False when no such referral was found.")


TABLES: list[type[SQLModel]] = [
    ReferralRecord, RejectionRecord, EqualityRecord, PersonRecord, AgencyRecord, PersonalDataAccessRecord,
    StaffRecord, ConsoleCredentialRecord,
]


def as_utc(value: datetime) -> datetime:
    """Datetimes come back naive from SQLite; intake only ever stores UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
