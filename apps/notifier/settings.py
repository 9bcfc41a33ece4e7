"""The notifier's settings (REROUTE_SMTP_*, REROUTE_ALERT_*), beside the NATS and data-dir settings every reroute
process reads: read once at start, refused at start when an alert could not be sent to anyone."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpPort, ServiceSettings

_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+")


def addresses(value: str) -> list[str]:
    """A comma-separated list of email addresses, as REROUTE_ALERT_EMAILS takes them."""
    return [a.strip() for a in value.split(",") if a.strip()]


class NotifierSettings(ServiceSettings):
    """Where alert emails go and through which SMTP server; how often overdue alerts are looked for."""

    # An empty variable is an unset one: compose passes each REROUTE_SMTP_* from deploy/.env, filled in or not.
    model_config = SettingsConfigDict(env_ignore_empty=True, hide_input_in_errors=True)

    smtp_host: str | None = Field(default=None, description=(
        "SMTP server that sends the alert emails; unset: no emails at all (the notifier says so, loudly)."))
    smtp_port: int = Field(default=587, ge=1, le=65535, description="Its port (587 with STARTTLS, 465 with TLS).")
    smtp_user: str | None = Field(default=None, description="Log-in name at the SMTP server, when it asks for one.")
    smtp_password: SecretStr | None = Field(default=None, description="...and its password.")
    smtp_security: str = Field(default="starttls", description=(
        "starttls (upgrade the connection before logging in; the default), tls (TLS from the start, port 465), or "
        "none (a relay on this machine or a private network only: the email then crosses the network in clear)."))
    smtp_timeout_seconds: float = Field(default=20, gt=0, le=300, description="How long one SMTP conversation may take.")
    alert_email_from: str = Field(default="reroute@localhost", description="The sender of the alert emails.")
    alert_emails: str = Field(default="", description=(
        "The safeguarding leads' addresses, comma-separated: each new safeguarding alert is emailed to them."))
    alert_deputy_emails: str = Field(default="", description=(
        "The deputies' addresses, comma-separated: an alert still unacknowledged past its deadline is emailed to them, "
        "once."))
    console_url: str = Field(default="http://127.0.0.1:8083", description=(
        "The web console's address as the leads reach it: each email links to its alerts page."))
    escalation_check_seconds: float = Field(default=60, gt=0, le=3600, description=(
        "How often the notifier asks risk and scheduling for alerts unacknowledged past their deadline."))
    escalation_grace_minutes: float = Field(default=0, ge=0, le=7 * 24 * 60, description=(
        "How long past its deadline an unacknowledged alert waits before the deputies are emailed."))
    mail_retry_max_seconds: float = Field(default=300, gt=0, le=3600, description=(
        "The longest wait between two tries of an email the SMTP server did not accept (the wait doubles from 1 s); "
        "an alert's email is tried until it is sent."))
    notifier_ops_port: HttpPort = Field(default="auto", description=(
        "Port of the notifier's /healthz, /readyz and /metrics (readyz fails while emails are not being accepted); "
        "auto: any free port; 0: off."))

    @field_validator("smtp_security")
    @classmethod
    def _security(cls, value: str) -> str:
        if value.strip().lower() not in {"starttls", "tls", "none"}:
            raise ValueError("REROUTE_SMTP_SECURITY must be starttls, tls or none")
        return value.strip().lower()

    @field_validator("alert_emails", "alert_deputy_emails", "alert_email_from")
    @classmethod
    def _addresses(cls, value: str) -> str:
        wrong = [a for a in addresses(value) if not _ADDRESS.fullmatch(a)]
        if wrong:
            raise ValueError(f"not an email address: {', '.join(wrong)} (give addresses like dsl@example.org, "
                             "separated by commas)")
        return value

    @field_validator("console_url")
    @classmethod
    def _console(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("REROUTE_CONSOLE_URL must be the console's http(s):// address")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _someone(self) -> NotifierSettings:
        if self.smtp_host and not addresses(self.alert_emails):
            raise ValueError("REROUTE_SMTP_HOST is set but REROUTE_ALERT_EMAILS is empty: say who the safeguarding "
                             "leads are (their addresses, comma-separated)")
        if (self.smtp_user is None) != (self.smtp_password is None):
            raise ValueError("give both REROUTE_SMTP_USER and REROUTE_SMTP_PASSWORD, or neither")
        return self

    @property
    def leads(self) -> list[str]:
        return addresses(self.alert_emails)

    @property
    def deputies(self) -> list[str]:
        return addresses(self.alert_deputy_emails)

    @property
    def mail_off(self) -> str | None:
        """Why no email will be sent, in words for the operator; None when emails are on."""
        if not self.smtp_host:
            return ("REROUTE_SMTP_HOST is not set: safeguarding alerts are NOT emailed to anyone; a lead sees them only "
                    "on the console's alerts page or with `reroute alerts`")
        return None
