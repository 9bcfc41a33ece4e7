"""The emails the notifier sends, and sending them over SMTP.

An email leaves the organisation's systems and sits in mailboxes and on phones, so it carries no personal data of a
child: only the referral id, the rule, the actions, the deadline and a link to the console, where a safeguarding lead
who logs in finds the rest."""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from apps.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


LONDON = ZoneInfo("Europe/London")


def _when(at: datetime) -> str:
    """A time as the leads read it: London's (GMT or BST, named)."""
    return f"{at.astimezone(LONDON):%a %d %b %Y %H:%M %Z}"


def _body(*, opening: str, alert_id: str, referral_id: str, rule_id: str, actions: list[str], deadline: datetime,
          raised_by: str | None, console_url: str) -> str:
    lines = [opening, "",
             f"Rule:      {rule_id}",
             f"Referral:  {referral_id}",
             f"Actions:   {', '.join(actions) or '(none listed)'}",
             f"Deadline:  {_when(deadline)}",
             *([f"Raised by: {raised_by}"] if raised_by else []),
             f"Alert id:  {alert_id}", "",
             f"Open the alert and acknowledge it: {console_url}/alerts",
             f"(or: reroute alerts ack {alert_id})", "",
             ("This email holds no personal details on purpose: who the young person is, and the referrer's contact "
             "details, are on the console's alerts page for a safeguarding lead who logs in.")]
    return "\n".join(lines) + "\n"


def _message(*, sender: str, to: list[str], subject: str, body: str, alert_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, ", ".join(to), subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain="reroute.invalid")
    message["X-Reroute-Alert"] = alert_id  # lets a mail rule file them; the id is the event's, no personal data
    message.set_content(body)
    return message


def new_alert(*, alert_id: str, referral_id: str, rule_id: str, actions: list[str], deadline: datetime,
              raised_by: str | None, settings: NotifierSettings) -> EmailMessage:
    """The email to the safeguarding leads when an alert is raised."""
    body = _body(opening="A safeguarding alert was raised. Its actions are due by the deadline below.",
                 alert_id=alert_id, referral_id=referral_id, rule_id=rule_id, actions=actions, deadline=deadline,
                 raised_by=raised_by, console_url=settings.console_url)
    return _message(sender=settings.alert_email_from, to=settings.leads, alert_id=alert_id, body=body,
                    subject=f"[reroute] Safeguarding alert {rule_id}: due by {_when(deadline)}")


def escalation(*, alert_id: str, referral_id: str, rule_id: str, actions: list[str], deadline: datetime,
               raised_by: str, settings: NotifierSettings) -> EmailMessage:
    """The email to the deputies when nobody has acknowledged an alert by its deadline."""
    body = _body(opening=("ESCALATION: nobody has acknowledged this safeguarding alert, and its deadline has passed. "
                          "It was emailed to the safeguarding leads when it was raised. Please take it up now."),
                 alert_id=alert_id, referral_id=referral_id, rule_id=rule_id, actions=actions, deadline=deadline,
                 raised_by=raised_by, console_url=settings.console_url)
    return _message(sender=settings.alert_email_from, to=settings.deputies, alert_id=alert_id, body=body,
                    subject=f"[reroute] OVERDUE, not acknowledged: safeguarding alert {rule_id} (due {_when(deadline)})")


def smtp_tls_context() -> ssl.SSLContext:
    """What the SMTP server's certificate is checked against: the trust store SSL_CERT_FILE names (in a container, the
    stack's own CA, for NATS) and the system's own, so a public mail server is trusted beside a private relay."""
    context = ssl.create_default_context()
    system = ssl.get_default_verify_paths()
    if system.openssl_cafile and os.path.isfile(system.openssl_cafile):
        context.load_verify_locations(cafile=system.openssl_cafile)
    if system.openssl_capath and os.path.isdir(system.openssl_capath):
        context.load_verify_locations(capath=system.openssl_capath)
    return context


def _version(path: str | None) -> tuple[int, int, int] | None:
    """What tells a rewritten or replaced file from the one read (None: no file there)."""
    try:
        found = os.stat(path) if path is not None else None
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_ino, found.st_size) if found is not None else None


class Mailer:
    """Hands an email to the configured SMTP server; returns once the server has accepted it, raises otherwise."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._cafile = ssl.get_default_verify_paths().cafile  # SSL_CERT_FILE's (else the system's), if there is one
        self._read = _version(self._cafile)
        # Built once, not per email (loading the trust stores is most of a context's cost), and again when the CA
        # file changes (a rotated CA, checked as each email is sent), so a rotation needs no restart.
        self.tls = (smtp_tls_context()
                    if settings.smtp_host is not None and settings.smtp_security != "none" else None)

    def _current_tls(self) -> ssl.SSLContext | None:
        """The TLS context, built again from the CA file if it changed since it was read; a file that cannot be read
        or is no CA leaves the context as it was, said once (the CA in use may still vouch for the server)."""
        if self.tls is None or (now := _version(self._cafile)) == self._read:
            return self.tls
        self._read = now
        try:
            ssl.create_default_context(cafile=self._cafile)  # raises where it is no CA: the trust store would skip it
            self.tls = smtp_tls_context()
            log.info("read the changed CA file %s again for the SMTP server's certificate", self._cafile)
        except (OSError, ssl.SSLError) as exc:
            log.error("the CA file %s changed but cannot be used (%s); still checking the SMTP server's certificate "
                      "against the CA read before", self._cafile, exc)
        return self.tls

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.smtp_host is not None
        context = self._current_tls()
        smtp: smtplib.SMTP = (smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds,
                                               context=context)
                              if s.smtp_security == "tls" else
                              smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds))
        with smtp:
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user is not None and s.smtp_password is not None:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            refused = smtp.send_message(message)
        if refused:  # the others have it, so it is not sent again; the refused are named, to fix the address
            log.error("the SMTP server refused these recipients of alert %s: %s", message["X-Reroute-Alert"],
                      ", ".join(f"{to} ({code})" for to, (code, _) in refused.items()))
