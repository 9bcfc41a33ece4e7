"""Settings shared by every service and the CLI; read from the environment once, at start-up."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

NATS_URL_FILE = "nats.url"
CREDENTIALS_FILE = "nats-credentials.json"
ENV_PREFIX = "REROUTE_"


def _http_port(value: object, info: ValidationInfo) -> int | Literal["auto"]:
    """A port number 1-65535, 0 (off) or `auto` (any free port, chosen by the OS when the service binds it)."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text == "auto":
        return "auto"
    port = value if isinstance(value, int) and not isinstance(value, bool) else None
    if text is not None and text.isascii() and text.isdigit():
        port = int(text)
    if port is not None and 0 <= port <= 65535:
        return port
    variable = f"{ENV_PREFIX}{info.field_name or 'port'}".upper()
    raise PydanticCustomError("http_port", "{variable} must be a port number 1-65535, 0 (off) or auto",
                              {"variable": variable})


HttpPort = Annotated[int | Literal["auto"], BeforeValidator(_http_port)]
"""An HTTP port setting: a number 1-65535, 0 (the HTTP face is off) or `auto` (any free port, chosen by the OS as
the socket is bound; `HttpServer.url` says which, and the service logs it)."""


def keep_files_private(data_dir: Path | None = None) -> None:
    """Files this process creates are its user's alone (0600, directories 0700), and the data dir is closed to
    others: it holds children's data (databases, logs, traces, keys). Call first thing in every entry point."""
    os.umask(0o077)
    if data_dir is None or not data_dir.is_dir():
        return
    try:
        data_dir.chmod(0o700)
    except PermissionError:  # not this user's directory (a Kubernetes volume is root's, shared through fsGroup)
        if data_dir.stat().st_mode & 0o007:
            print(f"warning: {data_dir} is open to other users and this user may not close it: chmod o-rwx it",
                  file=sys.stderr)


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class ServiceSettings(BaseSettings):
    """Settings common to the three services. Environment variables are prefixed `REROUTE_` unless noted."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(default=Path(".reroute"), description="Where SQLite files, traces and the local NATS live.")
    nats_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NATS_URL", "REROUTE_NATS_URL"),
        description="NATS server; when unset, the one `reroute up` started (recorded in the data dir).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "REROUTE_DATABASE_URL"),
        description="PostgreSQL URL; when unset each service keeps a SQLite file in the data dir.",
    )
    namespace: str = Field(
        default="",
        description="Prefix for subjects, streams and database schemas, to run isolated copies on one server.",
    )
    db_schema_prefix: str | None = Field(
        default=None,
        description="PostgreSQL only: schemas are <prefix>_<service> (default: the namespace, else just <service>).",
    )
    inbox_prefix: str = Field(default="_INBOX", description="Reply-subject prefix (per user on a secured server).")
    http_host: str = Field(default="127.0.0.1", description="Address the services' HTTP faces listen on.")
    ops_port: HttpPort = Field(default="auto", description=(
        "Port of the service's probes (/healthz, /readyz) and /metrics; auto (the default) takes any free port, "
        "chosen as it binds (logged, and in its ping); 0 turns it off. Fix it (9464, say) in a container, where each "
        "service has a network address of its own; it listens on REROUTE_HTTP_HOST."))
    batch_size: int = Field(default=256, ge=1, le=10_000, description="Messages fetched per batch.")
    max_deliver: int = Field(default=5, ge=1, description="Deliveries before a failing message is dead-lettered.")
    log_level: str = Field(default="INFO")
    log_format: Literal["text", "json"] = Field(default="text", description=(
        "text: one readable line per record (a terminal, `reroute up`'s log files); json: one JSON object per line "
        "with service, trace and span ids and the referral id where there is one (containers; the image sets it)."))
    stream_replicas: int = Field(default=1, ge=1, le=5, description=(
        "Replicas of each JetStream stream when `reroute streams provision` creates or updates it (3 on a "
        "three-node cluster); never lowered on an existing stream."))

    @field_validator("namespace", "db_schema_prefix")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", value):
            raise ValueError("namespace must be lower-case letters, digits and _ (at most 31), starting with a letter")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return upper

    def nats_servers(self) -> list[str]:
        """The NATS servers to try, in order: NATS_URL may list several, comma-separated (a cluster), so a
        service starts and stays connected while any one of them is up."""
        return [url.strip() for url in self.resolved_nats_url().split(",") if url.strip()]

    def resolved_nats_url(self) -> str:
        """NATS_URL, else the server `reroute up` recorded in the data dir."""
        if self.nats_url:
            return self.nats_url
        recorded = self.data_dir / NATS_URL_FILE
        if recorded.exists():
            return recorded.read_text().strip()
        raise ConfigurationError(
            f"No NATS server known: set NATS_URL, or start one with `reroute up` (looked for {recorded})."
        )
