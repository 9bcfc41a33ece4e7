"""Reading request-reply answers on the wire in tests: an error reply is checked against the one error shape."""

from __future__ import annotations

from typing import Any

from shared.contracts.rpc import ErrorReply, RpcError


def refusal(reply: dict[str, Any]) -> RpcError:
    """The error of a reply that must be one (a normal reply fails the test, showing what came instead)."""
    assert "error" in reply, f"expected an error reply, got {reply}"
    return ErrorReply.model_validate(reply).error
