"""Intake's request-reply endpoints: each takes its typed request (shared/contracts/intake_rpc.py) and what it
needs, and returns its typed reply or raises a `ServiceError`. `app.create_app` wires them to the host."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from services.intake import console_logins, outcomes, privacy, store
from services.intake import rematch as rematching
from services.intake.agencies import AgencyError, AgencyRegistry
from services.intake.console_logins import ConsoleLogins
from services.intake.crypto import IntakeKeys
from services.intake.fairness import AuditRow, audit
from services.intake.personal_data import access_log, find_person, first_name_for, identity_for
from services.intake.staff import LastAdmin, StaffError, StaffRegistry
from services.intake.tables import ReferralRecord
from shared.contracts.intake_rpc import (
    ENCRYPTED_TABLES,
    AccessLog,
    AccessLogRequest,
    Agencies,
    AgencyKeys,
    AgencyNatsHashes,
    AgencyReply,
    AgencyRequest,
    AuditReport,
    AuditRequest,
    ConsoleLogin,
    ConsoleLoginRequest,
    ConsolePasswordChange,
    ConsolePasswordIssued,
    FindPersonRequest,
    FirstName,
    FirstNameRequest,
    FoundPerson,
    Identity,
    IdentityRequest,
    IntakeStatus,
    NatsAccess,
    PersonErased,
    PersonExport,
    PersonIdRequest,
    PersonReferrals,
    PersonRequest,
    Purged,
    Reencrypted,
    ReencryptRequest,
    Rematched,
    RematchRequest,
    SecondFactorConfirm,
    SecondFactorRequest,
    SecondFactorSecret,
    Staff,
    StaffAdded,
    StaffNatsHashes,
    StaffReply,
    StaffRequest,
    StatusRequest,
    WhoAmI,
    WhoAmIRequest,
)
from shared.contracts.risk_rpc import AUDIT_ROWS
from shared.contracts.rpc import ERASE_REFERRALS, Empty, NotFound, ReferralIds, Refused, Role
from shared.contracts.scheduling_rpc import CLOSED_BEFORE, ClosedBeforeRequest
from shared.db import is_unavailable
from shared.nats_auth import agency_inbox_prefix, agency_user
from shared.outbox import Outgoing
from shared.service import ServiceHost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    """What intake's endpoints work with."""

    host: ServiceHost
    keys: IntakeKeys
    agencies: AgencyRegistry
    staff: StaffRegistry
    console_logins: ConsoleLogins


async def status(request: StatusRequest, intake: Intake) -> IntakeStatus:
    """By our id, else by the agency's reference: of the agency named, or of the one agency that used it."""
    query = select(ReferralRecord)
    if request.referral_id:
        query = query.where(col(ReferralRecord.referral_id) == request.referral_id)
        named = request.referral_id
    else:
        query = query.where(col(ReferralRecord.agency_referral_id) == request.agency_referral_id)
        named = f"with the agency's reference {request.agency_referral_id}"
        if request.agency_id:
            query = query.where(col(ReferralRecord.agency_id) == request.agency_id)
            named += f" from {request.agency_id}"

    def read() -> list[Row[ReferralRecord]]:
        with intake.host.engine.connect() as conn:
            return list(conn.execute(query.order_by(col(ReferralRecord.agency_id)).limit(10)).all())

    rows = await intake.host.database.run(read)
    if not rows:
        raise NotFound(f"no referral {named} at intake")
    if len(rows) > 1:
        raise Refused(f"the reference {request.agency_referral_id} is used by several agencies "
                      f"({', '.join(row.agency_id for row in rows)}): name the agency")
    row = rows[0]
    return IntakeStatus(referral_id=row.referral_id, agency_id=row.agency_id, agency_referral_id=row.agency_referral_id,
                        received_at=row.received_at, submissions=row.submissions, revision=row.revision,
                        person_id=row.person_id, withdrawn_at=row.withdrawn_at, withdrawal_reason=row.withdrawal_reason)


async def first_name(request: FirstNameRequest, intake: Intake) -> FirstName:
    def look_up() -> FirstName | None:
        with intake.host.engine.begin() as conn:  # the access log is kept even when nothing is found
            return first_name_for(conn, intake.keys, referral_id=request.referral_id, asked_by=request.asked_by,
                                  purpose=request.purpose, now=datetime.now(UTC))

    if (found := await intake.host.database.run(look_up)) is None:
        raise NotFound(f"no referral {request.referral_id} at intake")
    return found


async def identity(request: IdentityRequest, intake: Intake) -> Identity:
    def look_up() -> Identity | None:
        with intake.host.engine.begin() as conn:  # the access log is kept even when nothing is found
            return identity_for(conn, intake.keys, request, now=datetime.now(UTC))

    if (found := await intake.host.database.run(look_up)) is None:
        raise NotFound(f"no referral {request.referral_id} at intake (the look-up is logged)")
    return found


async def personal_data_access_log(request: AccessLogRequest, intake: Intake) -> AccessLog:
    def read() -> AccessLog:
        with intake.host.engine.connect() as conn:
            return access_log(conn, request)

    return await intake.host.database.run(read)


async def person_find(request: FindPersonRequest, intake: Intake) -> FoundPerson:
    def look_up() -> FoundPerson | None:
        with intake.host.engine.begin() as conn:  # the access log is kept even when no one is found
            return find_person(conn, intake.keys, request, now=datetime.now(UTC))

    if (found := await intake.host.database.run(look_up)) is None:
        raise NotFound("no young person with that name and date of birth at intake (the look-up is logged)")
    return found


def nats_access(agency_id: str, password: str) -> NatsAccess:
    """What an agency's IT team needs to publish on NATS."""
    user = agency_user(agency_id, password_hash="")
    return NatsAccess(user=user.user, password=password, inbox_prefix=agency_inbox_prefix(agency_id),
                      publish=user.publish, subscribe=[s for s in user.subscribe if not s.startswith("_INBOX")])


async def add_agency(request: AgencyRequest, intake: Intake) -> AgencyKeys:
    try:
        agency, key, password = await intake.host.database.run(
            lambda: intake.agencies.add(request.agency_id, request.name, now=datetime.now(UTC)))
    except AgencyError as exc:
        raise Refused(str(exc)) from None
    await outcomes.keep_for_agencies(intake.host, [request.agency_id])  # its outcomes are kept from now on
    return AgencyKeys(agency=agency, api_key=key, nats=nats_access(request.agency_id, password))


async def rotate_agency(request: AgencyRequest, intake: Intake) -> AgencyKeys:
    try:
        agency, key, password = await intake.host.database.run(
            lambda: intake.agencies.rotate(request.agency_id, now=datetime.now(UTC)))
    except AgencyError as exc:
        raise NotFound(str(exc)) from None
    await outcomes.keep_for_agencies(intake.host, [request.agency_id])  # a revoked agency's, made again
    return AgencyKeys(agency=agency, api_key=key, nats=nats_access(request.agency_id, password))


async def revoke_agency(request: AgencyRequest, intake: Intake) -> AgencyReply:
    try:
        agency = await intake.host.database.run(lambda: intake.agencies.revoke(request.agency_id,
                                                                               now=datetime.now(UTC)))
    except AgencyError as exc:
        raise NotFound(str(exc)) from None
    return AgencyReply(agency=agency)


async def list_agencies(_: Empty, intake: Intake) -> Agencies:
    return Agencies(agencies=await intake.host.database.run(intake.agencies.all))


async def agency_nats_hashes(_: Empty, intake: Intake) -> AgencyNatsHashes:
    return AgencyNatsHashes(agencies=await intake.host.database.run(intake.agencies.nats_credentials))


async def person_referrals(request: PersonRequest, intake: Intake) -> PersonReferrals:
    def read() -> list[str]:
        with intake.host.engine.connect() as conn:
            return privacy.referral_ids(conn, request.person_id)

    return PersonReferrals(referral_ids=await intake.host.database.run(read))


async def export_person(request: PersonRequest, intake: Intake) -> PersonExport:
    def read() -> PersonExport:
        with intake.host.engine.connect() as conn:
            return PersonExport(data=privacy.export(conn, intake.keys, request.person_id))

    return await intake.host.database.run(read)


async def erase_person(request: PersonRequest, intake: Intake) -> PersonErased:
    def traces() -> list[privacy.BrokerTrace]:
        with intake.host.engine.connect() as conn:
            return privacy.broker_traces(conn, request.person_id)

    host = intake.host  # the broker first: once the link is erased, no one can tell which messages were theirs
    messages = await privacy.erase_from_streams(host.broker.connection.jetstream(), host.subjects,
                                                await host.database.run(traces))

    def erase(conn: Connection, now: datetime) -> tuple[PersonErased, list[Outgoing]]:
        return PersonErased(erased={**privacy.erase(conn, request.person_id), "stream_messages": messages}), []

    return await host.transact(erase)


async def purge(days: float, intake: Intake) -> Purged:
    """Erase referrals closed more than `days` ago from every service (the retention policy)."""
    host = intake.host
    ids = (await host.ask(CLOSED_BEFORE, ClosedBeforeRequest(days=days), timeout=30)).referral_ids
    if not ids:
        return Purged(purged=0)
    for service in ERASE_REFERRALS.services:
        await host.ask(ERASE_REFERRALS, ReferralIds(referral_ids=ids), service=service, timeout=60)

    def erase_here(conn: Connection, now: datetime) -> tuple[Purged, list[Outgoing]]:
        return Purged(purged=privacy.erase_referrals(conn, ids)), []

    return await host.transact(erase_here)


async def fairness_audit(request: AuditRequest, intake: Intake) -> AuditReport:
    risk = await intake.host.ask(AUDIT_ROWS, Empty(), timeout=30)

    def read() -> dict[str, dict[str, str]]:
        with intake.host.engine.connect() as conn:  # decrypted here, in memory only
            return {rid: {k: v for k, v in answers.items() if v}
                    for rid, answers in store.equality_answers(conn, intake.keys).items()}

    answers = await intake.host.database.run(read)
    rows = [AuditRow(tier=r.tier, override=r.override, groups=answers.get(r.referral_id, {})) for r in risk.rows]
    report = audit(rows, min_group_size=request.min_group_size, ratio_threshold=request.ratio_threshold)
    return AuditReport(lines=report.lines(), flagged=len(report.flagged), total=report.total)


async def reencrypt(request: ReencryptRequest, intake: Intake) -> Reencrypted:
    def work() -> store.Reencryption:
        with intake.host.engine.begin() as conn:
            return store.reencrypt(conn, intake.keys.cipher, request.table, after=request.after, limit=request.limit)

    done = await intake.host.database.run(work)
    following = ENCRYPTED_TABLES[ENCRYPTED_TABLES.index(request.table) + 1:]
    if done.checked == request.limit and done.last is not None:
        next_batch: ReencryptRequest | None = request.model_copy(update={"after": done.last})
    else:
        next_batch = ReencryptRequest(table=following[0], limit=request.limit) if following else None
    if done.reencrypted or done.encrypted or done.unreadable:
        log.info("re-encrypted %d %s rows under the first key (%d plain answers encrypted, %d unreadable)",
                 done.reencrypted, request.table, done.encrypted, done.unreadable)
    return Reencrypted(table=request.table, total=done.total, checked=done.checked, reencrypted=done.reencrypted,
                       encrypted=done.encrypted, current=done.current, changed=done.changed,
                       unreadable=done.unreadable, next=next_batch)


async def rematch(request: RematchRequest, intake: Intake) -> Rematched:
    def work() -> rematching.Rematching:
        with intake.host.engine.begin() as conn:
            return rematching.rematch(conn, intake.keys, after=request.after, limit=request.limit)

    for attempt in range(3):  # intake stored one of these people meanwhile: the batch is rolled back, done again
        try:
            done = await intake.host.database.run(work)
            break
        except (IntegrityError, rematching.ChangedMeanwhile):
            if attempt == 2:
                raise Refused("people in this batch kept changing while it ran (intake is busy storing them): "
                              "run the command again") from None
    if done.rematched or done.merged or done.forgotten or done.unreadable:
        log.info("rematched %d people under the current matching key (%d merged, %d forgotten, %d unreadable)",
                 done.rematched, done.merged, done.forgotten, done.unreadable)
    more = done.checked == request.limit and done.last is not None
    return Rematched(total=done.total, checked=done.checked, rematched=done.rematched, current=done.current,
                     merged=done.merged, forgotten=done.forgotten, changed=done.changed, unreadable=done.unreadable,
                     next=request.model_copy(update={"after": done.last}) if more else None)


PLAIN_ANSWERS_BATCH = 200


async def encrypt_plain_answers(intake: Intake) -> int:
    """Encrypt the equality answers a version before migration 0003 stored in plain, batch by batch (one
    transaction each), until a batch finds fewer than a full one to do; returns how many."""
    def batch() -> int:
        with intake.host.engine.begin() as conn:
            return store.encrypt_plain_answers(conn, intake.keys, limit=PLAIN_ANSWERS_BATCH)

    total = 0
    try:
        while (done := await intake.host.database.run(batch)) > 0:
            total += done
            if done < PLAIN_ANSWERS_BATCH:
                break
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.debug("equality answers: the database is unavailable; trying again later")  # ping reports it
    if total:
        log.info("encrypted %d rows of equality answers stored in plain by an earlier version", total)
    return total


async def add_person(request: StaffRequest, intake: Intake) -> StaffAdded:
    try:
        member, credentials = await intake.host.database.run(
            lambda: intake.staff.add(request.person_id, request.roles, now=datetime.now(UTC)))
    except StaffError as exc:
        raise Refused(str(exc)) from None
    log.warning("person %s added with roles %s", member.person_id, ",".join(member.roles))
    return StaffAdded(member=member, credentials=credentials)


async def bootstrap_admin(request: StaffRequest, intake: Intake) -> StaffAdded:
    if Role.ADMIN not in request.roles:
        raise Refused("the first person made this way must be an admin")
    try:
        member, credentials = await intake.host.database.run(lambda: intake.staff.add(
            request.person_id, request.roles, now=datetime.now(UTC), only_first_admin=True))
    except StaffError as exc:
        raise Refused(str(exc)) from None
    log.warning("first admin %s made", member.person_id)
    return StaffAdded(member=member, credentials=credentials)


async def remove_person(request: PersonIdRequest, intake: Intake) -> StaffReply:
    try:
        member = await intake.host.database.run(lambda: intake.staff.remove(request.person_id, now=datetime.now(UTC)))
    except LastAdmin as exc:
        raise Refused(str(exc)) from None
    except StaffError as exc:
        raise NotFound(str(exc)) from None
    log.warning("person %s removed", member.person_id)
    return StaffReply(member=member)


async def list_people(_: Empty, intake: Intake) -> Staff:
    return Staff(people=await intake.host.database.run(intake.staff.all))


async def people_nats_hashes(_: Empty, intake: Intake) -> StaffNatsHashes:
    return StaffNatsHashes(people=await intake.host.database.run(intake.staff.nats_credentials))


async def whoami(request: WhoAmIRequest, intake: Intake) -> WhoAmI:
    member = await intake.host.database.run(lambda: intake.staff.member(request.person_id))
    if member is None or member.status != "active":
        raise NotFound(f"no active person '{request.person_id}'")
    return WhoAmI(person_id=member.person_id, roles=member.roles)


async def issue_console_password(request: PersonIdRequest, intake: Intake) -> ConsolePasswordIssued:
    password = await intake.host.database.run(
        lambda: intake.console_logins.issue(request.person_id, now=datetime.now(UTC)))
    log.warning("one-time console password issued for person %s", request.person_id)
    return ConsolePasswordIssued(person_id=request.person_id, one_time_password=password)


async def _checked(person_id: str, password: str, intake: Intake, *, code: str | None) -> ConsoleLogin:
    """The person, when `password` is their console password and, for a log-in (`code` not None) by someone whose
    authenticator is in use, `code` is a code it makes that was not used before; else Refused, counting the try."""
    stored = await intake.host.database.run(lambda: intake.console_logins.stored(person_id))
    console_logins.refused_unless_open(stored, now=datetime.now(UTC))
    right = await asyncio.to_thread(console_logins.verify, stored.password_hash if stored else None, password)
    if stored is None or stored.password_hash is None:
        raise Refused(console_logins.WRONG)
    step = None
    if right and code is not None and stored.totp_in_use and console_logins.needs_second_factor(stored.roles):
        secret = intake.keys.cipher.decrypt(stored.totp_secret or "")
        step = console_logins.code_step(secret, code, now=datetime.now(UTC), after=stored.totp_last_step)
        right = step is not None
    locked = await intake.host.database.run(
        lambda: intake.console_logins.record(person_id, right=right, now=datetime.now(UTC), step=step))
    if not right:
        log.warning("console log-in refused for person %s%s", person_id, " (now locked)" if locked else "")
        raise Refused(console_logins.locked_message(locked) if locked else console_logins.WRONG)
    return console_logins.login(person_id, stored)


async def console_login(request: ConsoleLoginRequest, intake: Intake) -> ConsoleLogin:
    login = await _checked(request.person_id, request.password, intake, code=request.code)
    log.info("console log-in by person %s", login.person_id)
    return login


async def console_password(request: ConsolePasswordChange, intake: Intake) -> ConsoleLogin:
    login = await _checked(request.person_id, request.current_password, intake, code=None)
    if request.new_password == request.current_password:
        raise Refused("choose a new password, not the one you have")
    new_hash = await asyncio.to_thread(console_logins.hash_password, request.new_password)
    await intake.host.database.run(
        lambda: intake.console_logins.replace(request.person_id, new_hash, now=datetime.now(UTC)))
    log.warning("console password changed by person %s", login.person_id)
    return login.model_copy(update={"one_time": False})


async def begin_second_factor(request: SecondFactorRequest, intake: Intake) -> SecondFactorSecret:
    secret = console_logins.new_totp_secret()
    sealed = intake.keys.cipher.encrypt(secret)
    await intake.host.database.run(lambda: intake.console_logins.begin_second_factor(request.person_id, sealed))
    return SecondFactorSecret(person_id=request.person_id, secret=secret,
                              uri=console_logins.totp_uri(secret, request.person_id))


async def confirm_second_factor(request: SecondFactorConfirm, intake: Intake) -> ConsoleLogin:
    stored = await intake.host.database.run(lambda: intake.console_logins.stored(request.person_id))
    if stored is None or stored.totp_secret is None or stored.totp_in_use:
        raise Refused("no new authenticator is being set up for this person: start again")
    secret = intake.keys.cipher.decrypt(stored.totp_secret)
    now = datetime.now(UTC)
    step = console_logins.code_step(secret, request.code, now=now, after=None)
    if step is None:
        raise Refused("that is not the code the app shows now: check the app's clock and the secret typed in, and try "
                      "the next code")
    sealed = stored.totp_secret
    if not await intake.host.database.run(
            lambda: intake.console_logins.confirm_second_factor(request.person_id, sealed, step=step, now=now)):
        raise Refused("the authenticator secret changed meanwhile: start again")
    log.warning("authenticator put in use for person %s", request.person_id)
    return console_logins.login(request.person_id, replace(stored, totp_in_use=True))
