"""A test's own NATS user on a server with users: it watches every subject and plays any party, so that a test can
observe what the users under test do. Never part of a deployment (shared/nats_auth.py has no such user)."""

from __future__ import annotations

from shared.nats_auth import NatsUser

OBSERVER = "observer"


def observer_user(password_hash: str) -> NatsUser:
    """May publish and subscribe to everything and answer requests (what the operator account once could)."""
    return NatsUser(user=OBSERVER, password=password_hash, publish=[">"], subscribe=[">"], allow_responses=True)
