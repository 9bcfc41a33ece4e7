"""The JetStream streams reroute needs, provisioned in one place and verified by every service.

`reroute streams provision` (run by `reroute up` and by a deployment's one-shot step, before the services)
creates each stream, or brings an existing one to the settings here, with its replica count from
configuration. A replica count is never lowered: an R3 stream stays R3 when something asks for fewer, since
losing replicas silently loses the fault tolerance an operator set up. Every stream refuses a message over
`MAX_MESSAGE_BYTES`, whatever the server's own `max_payload`. Services only check that what they need exists, and
say clearly what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.subjects import DUPLICATE_WINDOW_SECONDS, StreamSpec, Subjects

MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message (headers and body) a stream stores: NATS's default `max_payload`, so what the streams hold
never depends on a server configured to carry more. Our events are a few KiB (the referral contract bounds every
list); an agency's submission over it is refused at its publish (the PubAck says "message size exceeds maximum
allowed"), one under it but over REROUTE_INTAKE_MAX_BODY_BYTES gets referrals.rejected."""


@dataclass(frozen=True)
class Provisioned:
    stream: str
    action: str  # "created", "updated", "unchanged"
    replicas: int


def _config(spec: StreamSpec, replicas: int) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        storage=StorageType.FILE,
        max_age=spec.max_age_days * 86_400,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_msg_size=MAX_MESSAGE_BYTES,
        num_replicas=replicas,
    )


async def provision(js: JetStreamContext, subjects: Subjects, *, replicas: int) -> list[Provisioned]:
    """Create or update every stream; returns what was done to each."""
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
        same = (sorted(current.subjects or []) == sorted(wanted.subjects or []) and current.max_age == wanted.max_age
                and current.duplicate_window == wanted.duplicate_window and current.max_msg_size == wanted.max_msg_size
                and (current.num_replicas or 1) == keep)
        if same:
            done.append(Provisioned(spec.name, "unchanged", keep))
            continue
        await js.update_stream(wanted)
        done.append(Provisioned(spec.name, "updated", keep))
    return done


async def missing(js: JetStreamContext, subjects: Subjects) -> list[str]:
    """The streams that do not exist (a service cannot run without them)."""
    absent = []
    for spec in subjects.streams():
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            absent.append(spec.name)
    return absent


async def provision_at(servers: list[str], subjects: Subjects, *, replicas: int) -> list[Provisioned]:
    """Connect to NATS (any of `servers`) and provision every stream."""
    import nats

    nc = await nats.connect(servers, max_reconnect_attempts=3, connect_timeout=5, name="reroute-provision")
    try:
        return await provision(nc.jetstream(), subjects, replicas=replicas)
    finally:
        await nc.close()
