"""The console's settings (REROUTE_CONSOLE_*, beside the NATS and data-dir settings every reroute process reads):
read once at start, refused at start when they would serve the console unsafely."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.proxies import Network, networks
from shared.settings import HttpPort, ServiceSettings

URL_FILE = "console.url"
"""Where the running console writes its address in the data dir (`reroute up` prints it)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConsoleSettings(ServiceSettings):
    """The web console: where it listens, how it is reached, and how long a log-in lasts."""

    console_host: str = Field(default="127.0.0.1", description=(
        "Address it listens on: loopback unless it is served over TLS (REROUTE_CONSOLE_TLS_CERT, or "
        "REROUTE_CONSOLE_PUBLIC_URL naming the https address of a TLS-terminating proxy in front of it)."))
    console_port: HttpPort = Field(default=8083, description="Its port; auto: any free port (written to console.url).")
    console_public_url: str | None = Field(default=None, description=(
        "The https address people reach it at, through a proxy that terminates TLS: its cookies are then Secure "
        "(and `__Host-` prefixed) and it sends Strict-Transport-Security."))
    console_tls_cert: Path | None = Field(default=None, description="Serve TLS itself: the certificate chain (PEM).")
    console_tls_key: Path | None = Field(default=None, description="...and its private key (PEM).")
    console_idle_minutes: float = Field(default=15, gt=0, le=24 * 60, description=(
        "A log-in ends after this long without a request (an open live page does not keep it alive)."))
    console_session_hours: float = Field(default=12, gt=0, le=7 * 24, description="A log-in ends after this long.")
    console_login_attempts: int = Field(default=10, ge=1, le=1000, description=(
        "Failed log-ins one client address (an IPv6 address's /64) may make in 5 minutes, then it waits (a log-in "
        "that succeeds is not counted, but holds a place while it is being checked; each person's own lock-out is "
        "intake's: five wrong passwords in a row)."))
    console_trusted_proxies: Annotated[list[Network], NoDecode] = Field(default=[], description=(
        "Addresses or networks (CIDR) of the reverse proxies in front of the console, comma-separated. Only a "
        "request from one of them has its client address read from X-Forwarded-For (for the log-in limit above); "
        "without it, behind a proxy everyone would share the proxy's address and its limit."))

    console_spans_token: SecretStr | None = Field(default=None, min_length=16, description=(
        "Receive the services' spans over OTLP/HTTP on POST /v1/traces (into the span store the Traces pages read) "
        "from senders that give this bearer token (the services' REROUTE_CONSOLE_SPANS_TOKEN, beside "
        "REROUTE_CONSOLE_SPANS_URL); unset: it receives none. `reroute up` makes one per run and points the services "
        "at the console."))
    console_trace_url: str | None = Field(default=None, description=(
        "Where a trace is seen in the deployment's tracing backend, with {trace_id} in it (Jaeger: "
        "https://jaeger.example.org/trace/{trace_id}): the Traces pages link each trace there."))
    retention_days: float = Field(default=365, ge=0, description=(
        "The referrals' retention period (REROUTE_RETENTION_DAYS, as intake reads it): spans older than this are "
        "deleted from the console's span store."))

    @field_validator("console_spans_token", mode="before")
    @classmethod
    def _spans_token(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # empty: unset (as compose passes it)

    @field_validator("console_trace_url")
    @classmethod
    def _trace_url(cls, value: str | None) -> str | None:
        value = value.strip() or None if value is not None else None  # empty: unset (as compose passes it)
        if value is not None and (not value.startswith(("https://", "http://")) or "{trace_id}" not in value):
            raise ValueError("REROUTE_CONSOLE_TRACE_URL must be an http(s) address with {trace_id} in it")
        return value

    @field_validator("console_trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> list[Network]:
        return networks(value, "REROUTE_CONSOLE_TRUSTED_PROXIES")

    @model_validator(mode="after")
    def _served_safely(self) -> ConsoleSettings:
        if (self.console_tls_cert is None) != (self.console_tls_key is None):
            raise ValueError("give both REROUTE_CONSOLE_TLS_CERT and REROUTE_CONSOLE_TLS_KEY, or neither")
        if self.console_public_url is not None and not self.console_public_url.startswith("https://"):
            raise ValueError("REROUTE_CONSOLE_PUBLIC_URL must be an https:// address (the console is served over TLS "
                             "or on loopback only)")
        if not is_loopback(self.console_host) and not self.tls:
            raise ValueError(f"REROUTE_CONSOLE_HOST={self.console_host} is not a loopback address: the console serves "
                             "children's data, so it listens beyond this machine only over TLS (set "
                             "REROUTE_CONSOLE_TLS_CERT and REROUTE_CONSOLE_TLS_KEY, or REROUTE_CONSOLE_PUBLIC_URL to "
                             "the https address of the proxy in front of it)")
        return self

    @property
    def tls(self) -> bool:
        """Whether people reach it over TLS (its own, or a proxy's): cookies are Secure then."""
        return self.console_tls_cert is not None or self.console_public_url is not None
