"""A real SMTP server for tests (aiosmtpd) on a port of the test's own, keeping every email it accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.waiting import wait_until


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        """Its headers and its decoded body (not the quoted-printable form, which may split a word)."""
        headers = "\n".join(f"{k}: {v}" for k, v in self.message.items())
        return f"{headers}\n\n{self.message.get_content()}"

    @property
    def alert_id(self) -> str:
        return str(self.message["X-Reroute-Alert"])


@dataclass
class Sink:
    """A real SMTP server on 127.0.0.1:`port`, keeping every email it accepts; stopped and started at will."""

    port: int
    mails: list[Mail] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = message_from_bytes(content, policy=default)
        assert isinstance(message, EmailMessage)
        self.mails.append(Mail(list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self, **options: Any) -> None:
        """Start serving; `options` go to aiosmtpd's Controller (`tls_context` for STARTTLS, `ssl_context` for TLS)."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def about(self, alert_id: str, *, to: list[str]) -> list[Mail]:
        return [m for m in self.mails if m.alert_id == alert_id and m.to == to]

    async def wait(self, alert_id: str, *, to: list[str], why: Callable[[], str] = lambda: "") -> Mail:
        """The first email about `alert_id` to exactly `to`, once it has arrived."""
        await wait_until(lambda: bool(self.about(alert_id, to=to)), timeout=30,
                         what=lambda: f"an email about {alert_id} to {to} ({why()})")
        return self.about(alert_id, to=to)[0]
