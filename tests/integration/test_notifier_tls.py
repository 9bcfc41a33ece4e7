"""The notifier's emails over TLS (STARTTLS, and TLS from the start) to a real SMTP server (aiosmtpd): the TLS context
a Mailer builds once serves each email it sends, and checks the server's certificate against the CA file that
SSL_CERT_FILE names, read again when it is rotated."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from apps.container import certs
from apps.devstack.local_nats import free_port
from apps.notifier import mail
from apps.notifier.settings import NotifierSettings
from tests.support.smtp import Sink


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_each_email_goes_over_tls_to_a_server_the_ca_file_vouches_for(
    security: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    for made in (tmp_path / "ours", tmp_path / "other"):
        made.mkdir()
        certs.make(made, names=["localhost"], now=now)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "ours" / "server.crt", tmp_path / "ours" / "server.key")
    sink = Sink(free_port())
    sink.start(**({"tls_context": server, "require_starttls": True} if security == "starttls" else
                  {"ssl_context": server}))
    settings = NotifierSettings(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_security=security,
                                alert_emails="dsl@example.org")

    def alert(alert_id: str) -> EmailMessage:
        return mail.new_alert(alert_id=alert_id, referral_id="ref_1", rule_id="E01_immediate_danger",
                              actions=["call_999"], deadline=now + timedelta(hours=1), raised_by=None,
                              settings=settings)

    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ours" / "ca.crt"))
        trusting = mail.Mailer(settings)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other" / "ca.crt"))
        await trusting.send(alert("ev-1"))
        await trusting.send(alert("ev-2"))  # accepted once `send` returns
        with pytest.raises(ssl.SSLCertVerificationError):
            await mail.Mailer(settings).send(alert("ev-3"))
    finally:
        sink.stop()
    assert [m.alert_id for m in sink.mails] == ["ev-1", "ev-2"]


async def test_a_rotated_ca_file_is_read_again_at_the_next_email_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    for made in (tmp_path / "old", tmp_path / "new"):
        made.mkdir()
        certs.make(made, names=["localhost"], now=now)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "new" / "server.crt", tmp_path / "new" / "server.key")  # the relay's new one
    sink = Sink(free_port())
    sink.start(ssl_context=server)
    settings = NotifierSettings(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_security="tls",
                                alert_emails="dsl@example.org")
    trusted = tmp_path / "ca.crt"
    trusted.write_bytes((tmp_path / "old" / "ca.crt").read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    alert = mail.new_alert(alert_id="ev-1", referral_id="ref_1", rule_id="E01_immediate_danger", actions=["call_999"],
                           deadline=now + timedelta(hours=1), raised_by=None, settings=settings)
    mailer = mail.Mailer(settings)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await mailer.send(alert)
        rotated = tmp_path / "ca.crt.new"  # as a secret's rotation puts it: a new file renamed over the old
        rotated.write_bytes((tmp_path / "new" / "ca.crt").read_bytes())
        rotated.replace(trusted)
        await mailer.send(alert)
        trusted.write_text("not a certificate\n")  # a bad rotation: the CA read before still serves
        await mailer.send(alert)
    finally:
        sink.stop()
    assert [m.alert_id for m in sink.mails] == ["ev-1", "ev-1"]
