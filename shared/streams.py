"""The JetStream streams reroute needs, provisioned in one place and verified by every service.

`reroute streams provision` (run by `reroute up` and by a deployment's one-shot step, before the services)
creates each stream, or brings an existing one to the settings here, with its replica count from
configuration. A replica count is never lowered: an R3 stream stays R3 when something asks for fewer, since
losing replicas silently loses the fault tolerance an operator set up. Every stream refuses a message over
`MAX_MESSAGE_BYTES`, whatever the server's own `max_payload`. Services only check that what they need exists, and
say clearly what is missing.

It also upgrades an install of an earlier layout: where agencies' raw submissions were kept in REFERRALS for 30
days beside intake's events (`move_raw_submissions`), and where risk and scheduling read `referrals.accepted`, whose
schema_version 1 told an agency about other agencies' referrals of the same child (`move_pending_accepted`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.subjects import StreamSpec, Subjects

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message (headers and body) a stream stores: NATS's default `max_payload`, so what the streams hold
never depends on a server configured to carry more. Our events are a few KiB (the referral contract bounds every
list); an agency's submission over it is refused at its publish (the PubAck says "message size exceeds maximum
allowed"), one under it but over REROUTE_INTAKE_MAX_BODY_BYTES gets referrals.rejected."""


@dataclass(frozen=True)
class Provisioned:
    stream: str
    action: str  # "created", "updated", "unchanged", or what a migration did ("moved 3 pending submissions …")
    replicas: int


class ProvisioningError(nats.errors.Error):
    """A stream exists in a form provisioning cannot change in place; the message says what to do."""


_RETENTION = {"limits": RetentionPolicy.LIMITS, "workqueue": RetentionPolicy.WORK_QUEUE}


def _config(spec: StreamSpec, replicas: int) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        retention=_RETENTION[spec.retention],
        storage=StorageType.FILE,
        max_age=spec.max_age_days * 86_400,
        duplicate_window=spec.duplicate_window,
        max_msg_size=MAX_MESSAGE_BYTES,
        num_replicas=replicas,
    )


async def provision(js: JetStreamContext, subjects: Subjects, *, replicas: int) -> list[Provisioned]:
    """Create or update every stream, then move what an earlier layout left behind; returns what was done."""
    done: list[Provisioned] = []
    for spec in subjects.streams():
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(_config(spec, replicas))
            done.append(Provisioned(spec.name, "created", replicas))
            continue
        current = info.config
        keep = max(replicas, current.num_replicas or 1)  # never downgraded
        wanted = _config(spec, keep)
        if current.retention != wanted.retention:  # the server refuses to change it in place
            raise ProvisioningError(
                f"stream {spec.name} has {current.retention} retention, not {wanted.retention}: the server cannot "
                f"change it. Stop the services, delete the stream once nothing in it is needed (`nats stream rm "
                f"{spec.name}`, as a NATS user with the whole JetStream API: neither the operator nor the "
                f"provisioner may delete streams), and provision again")
        same = (sorted(current.subjects or []) == sorted(wanted.subjects or []) and current.max_age == wanted.max_age
                and current.duplicate_window == wanted.duplicate_window and current.max_msg_size == wanted.max_msg_size
                and (current.num_replicas or 1) == keep)
        if same:
            done.append(Provisioned(spec.name, "unchanged", keep))
            continue
        await js.update_stream(wanted)
        done.append(Provisioned(spec.name, "updated", keep))
    replicas_of = {p.stream: p.replicas for p in done}
    for migration in (move_raw_submissions, move_pending_accepted):
        if migrated := await migration(js, subjects):
            done.append(Provisioned(subjects.referrals_stream, migrated, replicas_of[subjects.referrals_stream]))
    return done


INTAKE_DURABLE_BEFORE = "intake-submitted"
"""The durable consumer intake had on REFERRALS in the earlier layout (its ack floor says what it processed)."""


async def move_raw_submissions(js: JetStreamContext, subjects: Subjects) -> str | None:
    """Upgrade an install of the earlier layout: raw submissions that intake processed are purged from REFERRALS,
    and those it had not are moved, in order and with their headers, to the submissions stream, where intake's
    consumer finds them; returns what was done, or None when there was nothing to do.

    Run with intake stopped (a deployment provisions before the services start). Each step is safe to repeat if
    provisioning is interrupted: the processed ones (up to the old consumer's ack floor) are purged before that
    consumer is deleted, and each pending message is erased from REFERRALS only once the submissions stream has
    confirmed its copy. A message interrupted between the two is moved twice, and intake's inbox drops the second
    copy when it has a `Nats-Msg-Id` (one without is processed as a repeat of its referral: a duplicate
    acceptance, nothing stored twice)."""
    old = subjects.referrals_stream
    raw = subjects.raw_submissions()
    try:
        floor = (await js.consumer_info(old, INTAKE_DURABLE_BEFORE)).ack_floor
        processed, had_consumer = (floor.stream_seq if floor is not None else 0), True
    except NotFoundError:  # gone (an interrupted run purged up to its floor already) or never made: all pending
        processed, had_consumer = 0, False
    held = 0
    for pattern in raw:
        try:
            state = (await js.stream_info(old, subjects_filter=pattern)).state
        except NotFoundError:
            return None
        held += sum((state.subjects or {}).values())
    if not held and not had_consumer:
        return None
    if processed:
        for pattern in raw:
            await js.purge_stream(old, seq=processed + 1, subject=pattern)  # every one below processed + 1
    if had_consumer:
        await js.delete_consumer(old, INTAKE_DURABLE_BEFORE)
    moved = 0
    for msg in await _pending(js, old, raw):
        await _republish(js, msg.subject, msg.data or b"", _movable(msg.headers))
        await js.delete_msg(old, msg.seq)  # erased: the server overwrites the message
        moved += 1
    log.warning("streams: %s held %d raw submissions of the earlier layout: %d processed ones purged, %d pending "
                "ones moved to %s", old, held, held - moved, moved, subjects.submissions_stream)
    return f"migrated: {held - moved} processed submissions purged, {moved} pending moved to " \
           f"{subjects.submissions_stream}"


ACCEPTED_DURABLES_BEFORE = ("risk-accepted", "scheduling-accepted")
"""Risk's and scheduling's consumers of `referrals.accepted` on REFERRALS, from before that event carried only what
concerns the agency's own referral (its schema_version 1 carried the facts they now read from intake.recorded)."""


async def move_pending_accepted(js: JetStreamContext, subjects: Subjects) -> str | None:
    """Upgrade an install where risk and scheduling read `referrals.accepted` (schema_version 1) from REFERRALS: the
    events either of them had not processed yet are copied, in order and with their headers, to intake.recorded
    (whose body is version 1's), where their new consumers find them; then the old consumers are deleted. Returns
    what was done, or None when there was nothing to do.

    Run with risk and scheduling stopped (a deployment provisions before the services start). Safe to repeat if
    interrupted: the old consumers are deleted last, and an event copied twice is dropped by the INTAKE stream (the
    same `Nats-Msg-Id` within its window) or else by risk and scheduling, which skip a revision they already hold;
    so is one the faster of the two had processed already (copying starts after the lower ack floor)."""
    old = subjects.referrals_stream
    floors: dict[str, int] = {}
    for durable in ACCEPTED_DURABLES_BEFORE:
        try:
            floor = (await js.consumer_info(old, durable)).ack_floor
        except NotFoundError:  # never made, or deleted by an earlier run of this
            continue
        floors[durable] = floor.stream_seq if floor is not None else 0
    if not floors:
        return None
    copied, seq = 0, min(floors.values())
    while True:
        try:
            msg = await js.get_msg(old, seq=seq + 1, subject=subjects.accepted(), next=True)
        except NotFoundError:
            break
        if msg.seq is None or msg.subject is None:  # never, for a stored message
            break
        seq = msg.seq
        await js.publish(subjects.recorded(subjects.agency_of(msg.subject)), msg.data or b"",
                         headers=_movable(dict(msg.headers or {})) or None)
        copied += 1
    for durable in floors:
        await js.delete_consumer(old, durable)
    log.warning("streams: %d accepted referrals not yet processed by %s copied to %s", copied, " or ".join(floors),
                subjects.intake_stream)
    return f"migrated: {copied} accepted referrals not yet processed by risk or scheduling copied to " \
           f"{subjects.intake_stream}; their consumers on {old} removed"


async def _pending(js: JetStreamContext, stream: str, patterns: list[str]) -> list[RawMessage]:
    """The messages left on `patterns` in stream order (few: those intake had not processed)."""
    found: dict[int, RawMessage] = {}
    for pattern in patterns:
        seq = 0
        while True:
            try:
                msg = await js.get_msg(stream, seq=seq + 1, subject=pattern, next=True)
            except NotFoundError:
                break
            if msg.seq is None or msg.subject is None:  # never, for a stored message
                break
            found[msg.seq] = RawMessage(msg.seq, msg.subject, msg.data, dict(msg.headers or {}))
            seq = msg.seq
    return [found[s] for s in sorted(found)]


@dataclass(frozen=True)
class RawMessage:
    seq: int
    subject: str
    data: bytes | None
    headers: dict[str, str]


def _movable(headers: dict[str, str]) -> dict[str, str]:
    """The headers an agency sent, less the expectations checked at its first publish (`Nats-Expected-Stream`
    would now refuse the copy)."""
    return {k: v for k, v in headers.items() if not k.lower().startswith("nats-expected-")}


async def _republish(js: JetStreamContext, subject: str, data: bytes, headers: dict[str, str]) -> None:
    """Publish a moved message; one the stream takes for a duplicate (another message with its `Nats-Msg-Id`
    moved within the submissions stream's 100 ms window, possibly another agency's) is published again once the
    window has passed: intake's inbox, not the stream, decides what is a repeat."""
    for _ in range(10):  # the server forgets an id between one and two windows after it saw it
        ack = await js.publish(subject, data, headers=headers or None)
        if not ack.duplicate:
            return
        await asyncio.sleep(0.1)
    raise ProvisioningError(f"the submissions stream keeps refusing a moved message on {subject} as a duplicate")


async def missing(js: JetStreamContext, names: list[str]) -> list[str]:
    """Which of these streams do not exist (a service cannot run without the ones it uses)."""
    absent = []
    for name in names:
        try:
            await js.stream_info(name)
        except NotFoundError:
            absent.append(name)
    return absent


async def provision_at(servers: list[str], subjects: Subjects, *, replicas: int) -> list[Provisioned]:
    """Connect to NATS (any of `servers`), as the provisioner on a server with users, and provision every stream.
    As the provisioner, replies come on its own inbox, the only one it may read; as any other user (a server
    without users, a cluster's own administrator), on the default `_INBOX`."""
    from urllib.parse import urlsplit

    import nats

    from shared.nats_auth import PROVISIONER, inbox_prefix

    as_provisioner = any(urlsplit(server if "://" in server else f"nats://{server}").username == PROVISIONER
                         for server in servers)  # nats-py takes `user:pw@host:port` without a scheme too
    prefix = inbox_prefix(PROVISIONER) if as_provisioner else "_INBOX"
    nc = await nats.connect(servers, max_reconnect_attempts=3, connect_timeout=5, name="reroute-provision",
                            inbox_prefix=prefix.encode())
    try:
        return await provision(nc.jetstream(), subjects, replicas=replicas)
    finally:
        await nc.close()
