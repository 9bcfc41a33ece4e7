"""What the JetStream streams hold, read as an operator would (one message at a time, nothing consumed)."""

from __future__ import annotations

import json
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.subjects import Subjects


async def stored_messages(js: JetStreamContext, stream: str, subject: str) -> list[tuple[int, dict[str, Any]]]:
    """(sequence, body) of every message `stream` holds on `subject`, in stream order."""
    found: list[tuple[int, dict[str, Any]]] = []
    seq = 0
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
        except NotFoundError:
            return found
        seq = msg.seq or seq + 1
        found.append((seq, json.loads(msg.data or b"{}")))


async def raw_held(js: JetStreamContext, s: Subjects, agency: str) -> int:
    """How many of an agency's raw submissions and updates wait in the submissions stream."""
    state = (await js.stream_info(s.submissions_stream, subjects_filter=s.about_referrals(agency))).state
    return sum((state.subjects or {}).values())
