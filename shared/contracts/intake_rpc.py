"""Intake's request-reply endpoints (`reroute.rpc.intake.<verb>`): operators' and the services' questions.

Implemented in `services/intake/rpc.py`. Agencies never reach these (NATS permissions): they ask over HTTP.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field, model_validator

from shared.contracts.codes import WithdrawalReason
from shared.contracts.common import Contract, PersonName
from shared.contracts.rpc import ANY_ROLE, CASEWORK, Empty, Endpoint, Role

_INTAKE = ("intake",)
_ADMIN = frozenset({Role.ADMIN})


class StatusRequest(Contract):
    """A referral by our id, or by the agency's own id (`agency_id` narrows it to one agency's; without it the
    reference must belong to one agency only)."""

    referral_id: str | None = Field(default=None, max_length=100)
    agency_id: str | None = Field(default=None, max_length=100)
    agency_referral_id: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _one_way(self) -> StatusRequest:
        if not self.referral_id and not self.agency_referral_id:
            raise ValueError("give referral_id, or agency_referral_id (with agency_id to name the agency)")
        return self


class IntakeStatus(Contract):
    """Where a referral stands at intake (ids and dates only)."""

    referral_id: str
    agency_id: str
    agency_referral_id: str
    received_at: datetime
    submissions: int = Field(description="How many times the agency sent it (re-sends and updates).")
    revision: int = Field(description="How many times its content changed.")
    person_id: str | None = Field(description="The young person it is about, matched across referrals.")
    withdrawn_at: datetime | None = Field(default=None, description="When its agency withdrew it, if it did.")
    withdrawal_reason: WithdrawalReason | None = Field(default=None, description="The agency's reason, if withdrawn.")


class FirstNameRequest(Contract):
    referral_id: str = Field(max_length=100)
    asked_by: str = Field(default="", description="Who is asking (logged).")
    purpose: str = Field(default="", description="Why (logged).")


class FirstName(Contract):
    referral_id: str
    first_name: str


class AgencyRequest(Contract):
    agency_id: str = Field(max_length=100)
    name: str = Field(default="", max_length=1000)


class Agency(Contract):
    """An agency as operators see it: never its key or hash."""

    agency_id: str
    name: str
    status: Literal["active", "revoked"]
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


class NatsAccess(Contract):
    """What an agency's IT team needs to publish and subscribe on NATS."""

    user: str
    password: str
    inbox_prefix: str
    publish: list[str]
    subscribe: list[str]


class AgencyKeys(Contract):
    """A registered or re-keyed agency with its new API key and NATS password: shown once, never again."""

    agency: Agency
    api_key: str
    nats: NatsAccess


class AgencyReply(Contract):
    agency: Agency


class Agencies(Contract):
    agencies: list[Agency]


class AgencyNatsHash(Contract):
    agency_id: str
    password_hash: str


class AgencyNatsHashes(Contract):
    agencies: list[AgencyNatsHash]


class PersonRequest(Contract):
    person_id: str = Field(min_length=1, max_length=40)


class PersonReferrals(Contract):
    referral_ids: list[str]


class StoredWithdrawal(Contract):
    withdrawn_at: datetime
    reason: WithdrawalReason
    note: str | None = Field(description="The agency's note (decrypted), if it gave one.")


class StoredReferral(Contract):
    referral_id: str
    agency_id: str
    agency_referral_id: str
    received_at: datetime
    revision: int
    referral: dict[str, object] = Field(description="The referral as the agency sent it (decrypted).")
    withdrawal: StoredWithdrawal | None = Field(default=None, description="Its withdrawal by the agency, if any.")


class EqualityAnswers(Contract):
    referral_id: str
    ethnicity: str | None
    religion: str | None
    disability: str | None


class PersonalDataAccess(Contract):
    referral_id: str
    item: str
    asked_by: str
    purpose: str
    asked_at: datetime


class AccessLogRequest(Contract):
    """The personal-data access log, newest first, narrowed by whichever of these are given."""

    asked_by: str = Field(default="", max_length=200, description="Only look-ups by this person (their person id).")
    referral_id: str = Field(default="", max_length=100, description="Only look-ups of this referral.")
    person_id: str = Field(default="", max_length=40, description="Only look-ups of this young person's referrals.")
    limit: int = Field(default=200, ge=1, le=1000)


class AccessLogEntry(PersonalDataAccess):
    answered: bool = Field(description="False when nothing was found (a look-up is logged either way).")


class AccessLog(Contract):
    entries: list[AccessLogEntry] = Field(description="Newest first.")
    more: bool = Field(description="More entries match than `limit`.")


class IntakePersonalData(Contract):
    referrals: list[StoredReferral]
    equality_monitoring: list[EqualityAnswers]
    personal_data_access_log: list[PersonalDataAccess]


class PersonExport(Contract):
    service: Literal["intake"] = "intake"
    data: IntakePersonalData


class PersonErased(Contract):
    service: Literal["intake"] = "intake"
    erased: dict[str, int]


class PurgeRequest(Contract):
    days: float | None = Field(default=None, ge=0, description="Closed more than this many days ago; default: "
                                                              "the configured retention period.")


class Purged(Contract):
    purged: int = Field(description="Referrals erased from every service.")


class AuditRequest(Contract):
    min_group_size: int = Field(default=10, ge=1)
    ratio_threshold: float = Field(default=1.25, gt=1)


class AuditReport(Contract):
    lines: list[str] = Field(description="The report, line by line, for a person to read.")
    flagged: int = Field(description="Groups whose rate is over the threshold.")
    total: int = Field(description="Assessments counted.")


class IdentityRequest(Contract):
    referral_id: str = Field(min_length=1, max_length=100)
    purpose: str = Field(min_length=1, max_length=500, description="Why (logged with who asked).")
    asked_by: str = Field(default="", max_length=200, description="Set by intake to the person the subject names.")


class ReferrerContact(Contract):
    name: str
    role: str
    email: str | None
    phone: str | None


class Identity(Contract):
    """Who a referral is about and who referred them: personal data, for the person who asked, never listed."""

    referral_id: str
    agency_id: str
    agency_referral_id: str
    given_name: str
    family_name: str
    date_of_birth: date
    borough: str
    referrer: ReferrerContact


class FindPersonRequest(Contract):
    """A young person by the name and date of birth a referral gave, matched as intake matches referrals (case,
    accents, punctuation and look-alike letters from another script do not matter; the whole birth date must)."""

    given_name: PersonName = Field(min_length=1, max_length=100)
    family_name: PersonName = Field(min_length=1, max_length=100)
    date_of_birth: date
    purpose: str = Field(min_length=1, max_length=500, description="Why (logged with who asked).")
    asked_by: str = Field(default="", max_length=200, description="Set by intake to the person the subject names.")


class FoundReferral(Contract):
    referral_id: str
    agency_id: str
    agency_referral_id: str
    received_at: datetime


class FoundPerson(Contract):
    """The young person's id (what `person export` and `person erase` take) and their referrals."""

    person_id: str
    referrals: list[FoundReferral] = Field(description="Oldest first.")


STATUS = Endpoint("status", StatusRequest, IntakeStatus,
                  "Where a referral stands at intake (ids and dates only), by our id or the agency's.", _INTAKE, roles=CASEWORK)
FIRST_NAME = Endpoint("first_name", FirstNameRequest, FirstName,
                      "The young person's first name, for a named person and a stated purpose; every request is "
                      "logged.", _INTAKE, roles=frozenset({Role.SCHEDULER, Role.DSL}), acts_as="asked_by")
FIND_PERSON = Endpoint("person.find", FindPersonRequest, FoundPerson,
                       "A young person's id and referrals by name and date of birth, for a named person and a stated "
                       "purpose; every request is logged, found or not.", _INTAKE,
                       roles=frozenset({Role.DSL, Role.ADMIN}), acts_as="asked_by")
IDENTITY = Endpoint("identity", IdentityRequest, Identity,
                    "A referral's young person (name, date of birth, borough) and the referrer's contact details, for "
                    "a named safeguarding lead and a stated purpose; every request is logged, found or not.", _INTAKE,
                    roles=frozenset({Role.DSL}), acts_as="asked_by")
ACCESS_LOG = Endpoint("personal_data.access_log", AccessLogRequest, AccessLog,
                      "Who looked at which young person's personal data, when and why (newest first), by who looked, "
                      "referral or young person.", _INTAKE, roles=frozenset({Role.DPO}))
ADD_AGENCY = Endpoint("agencies.add", AgencyRequest, AgencyKeys,
                      "Register an agency; the reply holds its API key, which is never shown again.", _INTAKE, roles=_ADMIN)
ROTATE_AGENCY = Endpoint("agencies.rotate", AgencyRequest, AgencyKeys,
                         "Issue an agency a new API key; the old one stops working at once.", _INTAKE, roles=_ADMIN)
REVOKE_AGENCY = Endpoint("agencies.revoke", AgencyRequest, AgencyReply, "Revoke an agency's API key at once.", _INTAKE, roles=_ADMIN)
LIST_AGENCIES = Endpoint("agencies.list", Empty, Agencies, "Every registered agency (never keys or hashes).", _INTAKE,
                       roles=frozenset({Role.ADMIN, Role.OPERATOR}))
AGENCY_NATS_HASHES = Endpoint("agencies.nats", Empty, AgencyNatsHashes,
                              "Active agencies' NATS password hashes, for the NATS server's configuration.", _INTAKE)
PERSON_REFERRALS = Endpoint("person.referrals", PersonRequest, PersonReferrals,
                            "The referral ids of one young person (for export and erasure across the services).",
                            _INTAKE, roles=_ADMIN)
EXPORT_PERSON = Endpoint("person.export", PersonRequest, PersonExport,
                         "Everything intake holds about one young person (a subject access request).", _INTAKE, roles=_ADMIN)
ERASE_PERSON = Endpoint("person.erase", PersonRequest, PersonErased,
                        "Erase one young person irreversibly, keeping anonymous counts only.", _INTAKE, roles=_ADMIN)
PURGE = Endpoint("purge", PurgeRequest, Purged,
                 "Erase referrals closed longer ago than the retention period from every service, now.", _INTAKE, roles=_ADMIN)
AUDIT = Endpoint("audit", AuditRequest, AuditReport,
                 "Tier and override rates overall and by equality-monitoring group (aggregates only, small counts "
                 "hidden).", _INTAKE, roles=frozenset({Role.RISK_LEAD, Role.ADMIN}))


EncryptedTable = Literal["referral", "equality_monitoring", "dead_letters", "console_credential"]
ENCRYPTED_TABLES: tuple[EncryptedTable, ...] = ("referral", "equality_monitoring", "dead_letters",
                                                "console_credential")


class ReencryptRequest(Contract):
    """One batch of re-encryption under intake's first key: rows of `table` whose key sorts after `after`."""

    table: EncryptedTable = Field(default="referral", description="Referral bodies, equality-monitoring answers, "
                                                                  "sealed dead letters, or console authenticator "
                                                                  "secrets; the batches go in that order.")
    after: str = Field(default="", max_length=400, description="Resume after this row key (the previous reply's "
                                                               "`next`); empty: from the first row.")
    limit: int = Field(default=200, ge=1, le=2000, description="Rows in this batch (one transaction).")


class Reencrypted(Contract):
    """What one batch did, and the request for the next one (none when every table is done)."""

    table: EncryptedTable
    total: int = Field(description="Rows of the table holding a value to encrypt (for progress).")
    checked: int = Field(description="Rows in this batch.")
    reencrypted: int = Field(description="Were under an older key, now under the first.")
    encrypted: int = Field(description="Equality answers an earlier version stored in plain, now encrypted.")
    current: int = Field(description="Under the first key already.")
    changed: int = Field(description="Written again by intake meanwhile (under its first key): left as they are.")
    unreadable: int = Field(description="No configured key opens them: left as they are (intake logs which).")
    next: ReencryptRequest | None = Field(description="Ask this next; none: every table is done.")


REENCRYPT = Endpoint("keys.reencrypt", ReencryptRequest, Reencrypted,
                     "Re-encrypt one batch of stored personal data under the first REROUTE_INTAKE_ENCRYPTION_KEY "
                     "(MultiFernet.rotate), so older keys can be dropped.", _INTAKE, roles=_ADMIN)


class PersonIdRequest(Contract):
    person_id: str = Field(max_length=64, description="Lower-case letters, digits, - and _, e.g. sam-okafor.")


class StaffRequest(PersonIdRequest):
    roles: list[Role] = Field(min_length=1, max_length=len(Role), description="What the person may ask for.")


class StaffMember(Contract):
    """A person who uses reroute, as an admin sees them: never their password or its hash."""

    person_id: str
    roles: list[Role]
    status: Literal["active", "removed"]
    created_at: datetime
    removed_at: datetime | None


class PersonCredentials(Contract):
    """What a person's client needs to connect as them: shown once, never again (intake keeps only a hash)."""

    person_id: str
    roles: list[Role]
    nats_user: str
    password: str
    inbox_prefix: str


class StaffAdded(Contract):
    member: StaffMember
    credentials: PersonCredentials


class StaffReply(Contract):
    member: StaffMember


class Staff(Contract):
    people: list[StaffMember]


class StaffNatsHash(Contract):
    person_id: str
    roles: list[Role]
    password_hash: str


class StaffNatsHashes(Contract):
    people: list[StaffNatsHash]


class WhoAmIRequest(Contract):
    person_id: str = Field(default="", max_length=64, description="Set by intake to the person the subject names.")


class WhoAmI(Contract):
    person_id: str
    roles: list[Role]


ADD_PERSON = Endpoint("people.add", StaffRequest, StaffAdded,
                      "Give a person their own identity and roles; the reply holds their password, shown once "
                      "(adding a removed person again issues a new one).", _INTAKE, roles=_ADMIN)
REMOVE_PERSON = Endpoint("people.remove", PersonIdRequest, StaffReply,
                         "Remove a person: the NATS server drops their connections within seconds.", _INTAKE,
                         roles=_ADMIN)
LIST_PEOPLE = Endpoint("people.list", Empty, Staff, "Every person and their roles (never passwords or hashes).",
                       _INTAKE, roles=_ADMIN)
PEOPLE_NATS_HASHES = Endpoint("people.nats", Empty, StaffNatsHashes,
                              "Active people's roles and NATS password hashes, for the NATS server's configuration.",
                              _INTAKE)
BOOTSTRAP_ADMIN = Endpoint("people.bootstrap", StaffRequest, StaffAdded,
                           "Make the first admin (with the roles given, admin among them); refused once any admin "
                           "exists. The installation's operator account may ask this, and nothing else of people.",
                           _INTAKE)
WHOAMI = Endpoint("people.whoami", WhoAmIRequest, WhoAmI, "Who the services take the asker to be, and their roles.",
                  _INTAKE, roles=ANY_ROLE, acts_as="person_id")


class RematchRequest(Contract):
    """One batch of `reroute keys rematch`: the people whose id sorts after `after`."""

    after: str = Field(default="", max_length=40, description="Resume after this person id (the previous reply's "
                                                              "`next`); empty: from the first person.")
    limit: int = Field(default=200, ge=1, le=2000, description="People in this batch (one transaction).")


class Rematched(Contract):
    """What one batch did, and the request for the next one (none when every person has been checked)."""

    total: int = Field(description="People intake recognises (for progress).")
    checked: int = Field(description="People in this batch.")
    rematched: int = Field(description="Were under an older matching key or an earlier way of comparing names, now "
                                       "under the current one.")
    current: int = Field(description="Under the current key already.")
    merged: int = Field(description="One young person recorded twice (names spelt with look-alike letters from "
                                    "another script): now one person, with both records' referrals.")
    forgotten: int = Field(description="Had no referral left (all purged): their hash is deleted.")
    changed: int = Field(description="Changed by intake meanwhile (erased): left as they are.")
    unreadable: int = Field(description="Their referral cannot be decrypted with the configured keys: left under "
                                        "their old key (intake logs which).")
    next: RematchRequest | None = Field(description="Ask this next; none: every person has been checked.")


REMATCH = Endpoint("keys.rematch", RematchRequest, Rematched,
                   "Store one batch of people under the current matching key (the first REROUTE_INTAKE_MATCHING_KEY) "
                   "and way of comparing names, recomputed from their latest referral, so an older key can be "
                   "dropped.", _INTAKE, roles=_ADMIN)


# --- the web console's log-in: passwords of their own, kept (as argon2id hashes) and checked by intake -------------

CONSOLE_PASSWORD_MIN = 12
"""The least length of a password a person chooses for the console (a passphrase is better)."""


SECOND_FACTOR_ROLES = frozenset({Role.ADMIN, Role.DSL, Role.DPO})
"""Whoever has one of these roles logs in to the console with a code from an authenticator app (TOTP) too: admins
(people and keys), safeguarding leads (who may see who a child is) and data protection officers (who see who looked
at which child)."""


class ConsoleLoginRequest(Contract):
    """A person's id and console password, as typed on the console's log-in page, and their authenticator code."""

    person_id: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    code: str = Field(default="", max_length=12, description=(
        "The 6-digit code their authenticator app shows: required once an admin or safeguarding lead has set one "
        "up (each code is accepted once)."))


class ConsoleLogin(Contract):
    """Who logged in, and what they must do before anything else."""

    person_id: str
    roles: list[Role]
    one_time: bool = Field(description="They logged in with a one-time password: they choose their own next.")
    second_factor: Literal["not_needed", "done", "enrol"] = Field(default="not_needed", description=(
        "enrol: their roles need an authenticator code and they have none set up yet: they set one up next."))


class ConsolePasswordChange(Contract):
    """A person replacing their console password (a one-time one, or their own)."""

    person_id: str = Field(max_length=64)
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=CONSOLE_PASSWORD_MIN, max_length=1024, description=(
        f"At least {CONSOLE_PASSWORD_MIN} characters, not the current one."))


class ConsolePasswordIssued(Contract):
    """A one-time console password, shown once: the person chooses their own when they first log in with it."""

    person_id: str
    one_time_password: str


class SecondFactorRequest(Contract):
    person_id: str = Field(max_length=64)


class SecondFactorSecret(Contract):
    """A new authenticator secret, shown once while the person sets it up (intake keeps it encrypted)."""

    person_id: str
    secret: str = Field(description="Base32, as authenticator apps take it typed in.")
    uri: str = Field(description="The otpauth:// URI (what a QR code would hold).")


class SecondFactorConfirm(Contract):
    person_id: str = Field(max_length=64)
    code: str = Field(max_length=12, description="A code the app shows for the new secret.")


CONSOLE_LOGIN = Endpoint("console.login", ConsoleLoginRequest, ConsoleLogin,
                         "Check a person's console password (five wrong in a row lock their console log-in for 15 "
                         "minutes); their roles when it is right. Only the console may ask.", _INTAKE)
CONSOLE_PASSWORD = Endpoint("console.password", ConsolePasswordChange, ConsoleLogin,
                            "A person replaces their console password, giving the current one. Only the console may "
                            "ask.", _INTAKE)
SECOND_FACTOR_BEGIN = Endpoint("console.totp.begin", SecondFactorRequest, SecondFactorSecret,
                               "A new authenticator secret for a person who has none in use yet (replacing one not "
                               "yet confirmed). Only the console may ask, for a person who has just logged in.",
                               _INTAKE)
SECOND_FACTOR_CONFIRM = Endpoint("console.totp.confirm", SecondFactorConfirm, ConsoleLogin,
                                 "Put the new authenticator secret in use, given a code it makes. Only the console "
                                 "may ask.", _INTAKE)
ISSUE_CONSOLE_PASSWORD = Endpoint("people.console_password", PersonIdRequest, ConsolePasswordIssued,
                                  "Issue a one-time password for a person's console log-in (replacing their password "
                                  "and authenticator secret, and lifting a lock-out); shown once.", _INTAKE,
                                  roles=_ADMIN)
CONSOLE_ONLY = (CONSOLE_LOGIN, CONSOLE_PASSWORD, SECOND_FACTOR_BEGIN, SECOND_FACTOR_CONFIRM)
"""The requests only the console's NATS user may send (on intake's own subjects): no person asks them in their own
name, and the installation's operator account may not (it could test passwords)."""
