"""Intake's settings: the common ones plus its HTTP face and the keys that protect personal data."""

from __future__ import annotations

from pydantic import Field, SecretStr

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
        default=64 * 1024, ge=1024, description="HTTP request bodies larger than this are refused with 413."
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
        description="Key of the keyed hash that recognises a young person referred again. Unset: one is generated "
        "and kept in <data dir>/intake-matching.key. Never change it once referrals are stored.",
    )
