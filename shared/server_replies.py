"""What the NATS server itself publishes as an answer, recognised so that no consumer takes it for a message.

The reply subject of a message is its sender's to choose, and the server publishes its answer there with its own
authority, whatever the sender may publish: an agency allowed to publish only its own submissions can have a PubAck
land on another agency's submission subject or on `intake.recorded.*`, where a stream stores it (deploy/nats-auth.md,
*A reply subject is the sender's to choose*). Its body is always one of the server's own shapes, never the sender's
data: a PubAck (`{"stream": …, "seq": …}`, with `duplicate` or `domain`), a publish error (`{"error": {"code": …,
"err_code": …, "description": …}, …}`), a JetStream API response (`{"type": "io.nats.jetstream.api.v1.…", …}`), or
nothing at all (the answer to an acknowledgement). No submission or event of ours has any of these shapes: every
contract we consume forbids fields it does not name and names none of `stream`, `error` or `type`, so none of these
answers decodes as one. A consumer therefore asks only of a message that failed to decode
(`shared.messaging.drop_if_server_reply`), drops it unanswered, and pays nothing for the messages that decode.
"""

from __future__ import annotations

import json

SERVER_REPLY = "server_reply"
"""Why a consumer dropped a message unread: it was one of the server's own answers (a metric label)."""
API_RESPONSE_TYPE = "io.nats.jetstream.api.v1."
PUB_ACK_FIELDS = frozenset({"stream", "seq", "duplicate", "domain", "error", "batch", "count", "val"})
"""Every field a PubAck, or a publish's error, may have (nats-server 2.15: JSPubAckResponse)."""
_LONGEST = 64 * 1024
"""No answer the server sends is longer (a consumer's information is about 1 KiB): a longer body is not parsed."""


def is_server_reply(data: bytes) -> bool:
    """Whether `data` is an answer the NATS server sends (a PubAck, an error, a JetStream API response, or empty)."""
    if not data.strip():
        return True
    if len(data) > _LONGEST or not data.lstrip().startswith(b"{"):
        return False
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return False
    if not isinstance(body, dict):
        return False
    kind = body.get("type")
    if isinstance(kind, str) and kind.startswith(API_RESPONSE_TYPE):
        return True
    error = body.get("error")
    return body.keys() <= PUB_ACK_FIELDS and (
        ("stream" in body and "seq" in body) or (isinstance(error, dict) and "err_code" in error))
