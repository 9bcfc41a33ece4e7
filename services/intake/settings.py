"""Intake's settings: the common ones plus its HTTP face and the keys that protect personal data."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from shared.proxies import Network, networks
from shared.settings import HttpPort, ServiceSettings


class IntakeSettings(ServiceSettings):
    """Environment variables `REROUTE_INTAKE_*` on top of the shared `REROUTE_*` ones."""

    intake_http_port: HttpPort = Field(
        default=8081, description="Port of the agencies' HTTP API; 0 turns the HTTP API off; auto takes any free "
        "port, chosen as it binds (the service logs the URL)."
    )
    intake_http_host: str = Field(
        default="127.0.0.1", description="Address the HTTP API listens on (0.0.0.0 to accept outside connections)."
    )
    intake_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024,
        description="Submissions larger than this are refused: 413 over HTTP, referrals.rejected over NATS."
    )
    intake_public_url: str | None = Field(
        default=None, description="The API's public base URL (e.g. https://api.example.org/reroute), from which "
        "replies' status_url and Location are built; unset, they are paths (/v1/referrals/...). Never the Host "
        "header, which the caller chooses.",
    )
    intake_trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default=[], description="Addresses or networks (CIDR) of the reverse proxies in front of the API, "
        "comma-separated. Only a request from one of them has its client address read from X-Forwarded-For; "
        "every other request is counted by the address it connected from.",
    )
    intake_auth_failures_per_minute: int = Field(
        default=20, ge=1, le=10_000, description="Failed API key attempts a client address may make in a burst and "
        "then per minute; over that its failures get 429 with Retry-After (a right key is still served).",
    )
    retention_days: float = Field(
        default=365, ge=0, description="Closed referrals are purged from every service this many days after closing."
    )
    purge_every_hours: float = Field(default=6, ge=0, description="How often to purge; 0: only on request.")
    intake_encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) encrypting personal data at rest, comma-separated (the first encrypts, all "
        "decrypt, so keys can be rotated). Unset: one is generated and kept in <data dir>/intake-encryption.key.",
    )
    intake_matching_key: SecretStr | None = Field(
        default=None,
        description="Key(s) of the keyed hash that recognises a young person referred again, comma-separated: the "
        "first hashes, older ones still recognise the people stored under them until `reroute keys rematch` has "
        "moved them to the first. Unset: one is generated and kept in <data dir>/intake-matching.key.",
    )

    @field_validator("intake_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in {"http", "https"} or not url.netloc or url.query or url.fragment:
            raise ValueError("REROUTE_INTAKE_PUBLIC_URL must be an http(s) URL without a query, like "
                             "https://api.example.org or https://example.org/reroute")
        return value.rstrip("/")

    @field_validator("intake_trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> list[Network]:
        return networks(value, "REROUTE_INTAKE_TRUSTED_PROXIES")
