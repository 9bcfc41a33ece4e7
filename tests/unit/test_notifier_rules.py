"""The notifier's own decisions, without I/O: which alerts are overdue, how long a failed email waits, and settings
that could send an alert to nobody refused at start with what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from apps.notifier.notifier import overdue, retry_delay
from apps.notifier.settings import NotifierSettings
from shared.contracts.safeguarding_rpc import SafeguardingAlertView

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _alert(alert_id: str, *, deadline: datetime, acknowledged: bool = False) -> SafeguardingAlertView:
    return SafeguardingAlertView(
        alert_id=alert_id, service="risk", referral_id="ref_1", agency_id="demo", rule_id="E01_immediate_danger",
        actions=["call_999"], raised_at=deadline - timedelta(hours=1), deadline=deadline, overdue=False,
        acknowledged_by="dana" if acknowledged else None, acknowledged_at=NOW if acknowledged else None, note=None)


def test_only_unacknowledged_alerts_past_deadline_and_grace_are_overdue() -> None:
    alerts = [_alert("late", deadline=NOW - timedelta(minutes=11)),
              _alert("in grace", deadline=NOW - timedelta(minutes=9)),
              _alert("due later", deadline=NOW + timedelta(hours=1)),
              _alert("taken up", deadline=NOW - timedelta(hours=2), acknowledged=True)]
    assert [a.alert_id for a in overdue(alerts, now=NOW, grace=timedelta(minutes=10))] == ["late"]
    assert [a.alert_id for a in overdue(alerts, now=NOW, grace=timedelta(0))] == ["late", "in grace"]


@pytest.mark.parametrize(("deliveries", "most", "wait"), [(1, 300, 1), (2, 300, 2), (5, 300, 16), (12, 300, 300),
                                                          (1000, 60, 60), (3, 1, 1)])
def test_a_failed_email_waits_longer_each_try_up_to_the_most(deliveries: int, most: float, wait: float) -> None:
    assert retry_delay(deliveries, most) == wait


def test_an_smtp_server_without_leads_is_refused_saying_what_to_set() -> None:
    with pytest.raises(ValidationError, match="REROUTE_ALERT_EMAILS is empty: say who the safeguarding leads are"):
        NotifierSettings(smtp_host="smtp.example.org")


def test_a_malformed_address_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="not an email address: dsl.example.org"):
        NotifierSettings(smtp_host="smtp.example.org", alert_emails="lead@example.org, dsl.example.org")


def test_no_smtp_server_means_emails_are_off_and_says_so() -> None:
    assert "safeguarding alerts are NOT emailed" in (NotifierSettings().mail_off or "")
    on = NotifierSettings(smtp_host="smtp.example.org", alert_emails="a@example.org,b@example.org ")
    assert on.mail_off is None and on.leads == ["a@example.org", "b@example.org"]


def test_mail_settings_left_empty_in_the_compose_env_file_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.yml passes every REROUTE_SMTP_* from deploy/.env, filled in or not: an empty one is no setting
    (no log-in with an empty name, the default port), and a host with leads still turns emails on."""
    for name in ("REROUTE_SMTP_USER", "REROUTE_SMTP_PASSWORD", "REROUTE_SMTP_PORT", "REROUTE_SMTP_SECURITY",
                 "REROUTE_ALERT_EMAIL_FROM", "REROUTE_ALERT_DEPUTY_EMAILS"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("REROUTE_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("REROUTE_ALERT_EMAILS", "dsl@example.org")
    read = NotifierSettings()
    assert (read.smtp_user, read.smtp_password, read.smtp_port, read.smtp_security) == (None, None, 587, "starttls")
    assert read.mail_off is None and read.leads == ["dsl@example.org"]
