"""`reroute streams provision` gives every stream a maximum message size, and brings an existing stream to it."""

from __future__ import annotations

import uuid

import nats
from nats.js.api import StreamConfig

from shared.streams import MAX_MESSAGE_BYTES, provision
from shared.subjects import Subjects


async def test_streams_are_created_with_a_maximum_message_size_and_an_existing_one_is_updated(nats_url: str) -> None:
    subjects = Subjects(f"s{uuid.uuid4().hex[:8]}")
    specs = subjects.streams()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        earlier = specs[0]  # as an earlier version made it: no maximum message size
        await js.add_stream(StreamConfig(name=earlier.name, subjects=earlier.subjects,
                                         max_age=earlier.max_age_days * 86_400, duplicate_window=300))

        done = {p.stream: p.action for p in await provision(js, subjects, replicas=1)}

        assert done == {earlier.name: "updated", **{s.name: "created" for s in specs[1:]}}
        for spec in specs:
            config = (await js.stream_info(spec.name)).config
            assert config.max_msg_size == MAX_MESSAGE_BYTES, spec.name
            assert config.subjects == spec.subjects and (config.num_replicas or 1) == 1
        again = await provision(js, subjects, replicas=1)
        assert {p.action for p in again} == {"unchanged"}
    finally:
        for spec in specs:
            try:
                await js.delete_stream(spec.name)
            except nats.js.errors.NotFoundError:
                pass
        await nc.close()
