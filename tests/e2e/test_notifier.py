"""Safeguarding alerts reach a person when nobody is looking at a page: the notifier (`python -m apps.notifier`, its
own process) against the real services and NATS, and a real SMTP server (aiosmtpd) on a port of the test's own.

A new referral raising E01 (immediate: overdue at once) and E02 is emailed to the leads, with no personal data in
the email; E01, unacknowledged past its deadline, is emailed to the deputy exactly once, and not again after the
notifier restarts; alerts raised while it was down are emailed when it is back; an acknowledged alert is not
escalated; with the SMTP server down at first, readyz says so, and the emails go once it is back."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.devstack.local_nats import free_port
from apps.devstack.processes import NOTIFIER, ServiceProcesses
from tests.support.cluster import Cluster, Probe, referral, unique, unique_language
from tests.support.smtp import Sink
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e]
LEADS, DEPUTY = ["dsl@example.org", "dsl2@example.org"], ["deputy@example.org"]
E01, E02 = "E01_immediate_danger", "E02_threat_to_life_warning"


@dataclass
class Notifier:
    """The notifier process, as `reroute up` runs it, pointed at the test's services and SMTP server."""

    processes: ServiceProcesses
    ops_port: int

    def start(self) -> None:
        self.processes.start(NOTIFIER)

    def stop(self) -> None:
        self.processes.stop(NOTIFIER)

    def log(self) -> str:
        path = self.processes.log_file(NOTIFIER)
        return path.read_text() if path.exists() else ""

    def readyz(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/readyz", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def notifier(cluster: Cluster, data_dir: Path, sink: Sink) -> Notifier:
    ops_port = free_port()
    env = {"NATS_URL": cluster.nats_url, "REROUTE_NAMESPACE": cluster.namespace, "REROUTE_DATA_DIR": str(data_dir),
           "REROUTE_SMTP_HOST": "127.0.0.1", "REROUTE_SMTP_PORT": str(sink.port), "REROUTE_SMTP_SECURITY": "none",
           "REROUTE_ALERT_EMAILS": ", ".join(LEADS), "REROUTE_ALERT_DEPUTY_EMAILS": ",".join(DEPUTY),
           "REROUTE_CONSOLE_URL": "https://console.example.org", "REROUTE_ESCALATION_CHECK_SECONDS": "0.3",
           "REROUTE_MAIL_RETRY_MAX_SECONDS": "1", "REROUTE_NOTIFIER_OPS_PORT": str(ops_port)}
    return Notifier(ServiceProcesses(env, log_dir=data_dir / "logs"), ops_port)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink(free_port())
    try:
        yield s
    finally:
        s.stop()


@dataclass
class Referred:
    referral_id: str
    alerts: dict[str, str]
    """Rule id -> alert id."""
    personal: list[str]
    """What the referral says about the young person and the referrer that no email may carry."""


async def refer(cluster: Cluster, probe: Probe) -> Referred:
    """A referral with a weapon-use intent and a threat-to-life warning: E01 (deadline immediate) and E02."""
    agency, arid = unique("police"), unique("NOTIFY")
    family, given = unique("Okonkwo").replace("-", ""), unique("Tayo").replace("-", "")
    body = referral(arid, language=unique_language(), indicators=["threat_to_life_warning", "intent_to_use_weapon"])
    body["young_person"] |= {"given_name": given, "family_name": family, "date_of_birth": "2010-03-14"}
    body["referrer"] = {"name": "Priya Referrer", "role": "YOT case manager", "email": "priya.referrer@example.org"}
    await probe.submit(agency, body)
    accepted = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid,
                                    timeout=30)
    rid = accepted[0]["referral_id"]
    raised = await probe.wait_for(cluster.subjects.alert(agency), lambda e: e["referral_id"] == rid, count=2,
                                  timeout=30)
    alerts = {a["rule_id"]: a["event_id"] for a in raised}
    assert set(alerts) == {E01, E02}
    return Referred(rid, alerts, [family, given, "2010-03-14", "14/03/2010", "Priya", "priya.referrer", arid])


async def consumer_exists(probe: Probe, cluster: Cluster) -> bool:
    js = probe.nc.jetstream()
    try:
        await js.consumer_info(cluster.subjects.safeguarding_stream, "notifier-alert")
    except Exception:  # noqa: BLE001  # not made yet
        return False
    return True


@asynccontextmanager
async def notifier_running(cluster: Cluster, probe: Probe, sink: Sink, data_dir: Path) -> AsyncIterator[Notifier]:
    """The notifier started and reading alerts (its consumer made); stopped when the block ends."""
    n = notifier(cluster, data_dir, sink)
    n.start()
    try:
        await wait_until(lambda: consumer_exists(probe, cluster), timeout=30, what=lambda: f"the notifier's consumer "
                         f"(log: {n.log()})")
        yield n
    finally:
        n.stop()


async def emailed(sink: Sink, alert_id: str, to: list[str], n: Notifier) -> None:
    await sink.wait(alert_id, to=to, why=n.log)


async def test_alerts_reach_the_leads_and_an_overdue_one_the_deputy_once(
    cluster: Cluster, probe: Probe, sink: Sink, tmp_path: Path
) -> None:
    sink.start()
    async with notifier_running(cluster, probe, sink, tmp_path) as n:
        a = await refer(cluster, probe)
        for rule in (E01, E02):
            await emailed(sink, a.alerts[rule], LEADS, n)
        lead_mail = sink.about(a.alerts[E01], to=LEADS)[0]
        assert a.referral_id in lead_mail.text and E01 in lead_mail.text and "call_999" in lead_mail.text
        assert "https://console.example.org/alerts" in lead_mail.text

        await emailed(sink, a.alerts[E01], DEPUTY, n)
        escalated = sink.about(a.alerts[E01], to=DEPUTY)[0]
        assert "ESCALATION" in escalated.text and "OVERDUE" in str(escalated.message["Subject"])
        assert a.referral_id in escalated.text and "https://console.example.org/alerts" in escalated.text

        # down: two more referrals; one of them acknowledged by a lead before the notifier is back
        n.stop()
        b, c = await refer(cluster, probe), await refer(cluster, probe)
        acked = await probe.rpc("risk", "alerts.ack", {"alert_id": b.alerts[E01], "by": "dana", "note": "called"})
        assert acked["alert"]["acknowledged_by"] == "dana"
        n.start()
        await emailed(sink, c.alerts[E01], DEPUTY, n)
        for referred in (b, c):  # raised while it was down: emailed now
            for alert_id in referred.alerts.values():
                await emailed(sink, alert_id, LEADS, n)

    # the round that escalated c's E01 listed a's first (the earlier deadline): recorded, so not sent again
    assert len(sink.about(a.alerts[E01], to=DEPUTY)) == 1, "escalated once, not again after the restart"
    assert len(sink.about(c.alerts[E01], to=DEPUTY)) == 1
    assert sink.about(b.alerts[E01], to=DEPUTY) == [], "an acknowledged alert is not escalated"
    for referred in (a, b, c):
        for alert_id in referred.alerts.values():
            assert len(sink.about(alert_id, to=LEADS)) == 1, "each alert emailed to the leads once"
        for mail in (m for m in sink.mails if referred.referral_id in m.text):
            for personal in referred.personal:
                assert personal.lower() not in mail.text.lower(), f"an email carries {personal!r}"


async def test_an_alert_raised_while_the_smtp_server_is_down_is_emailed_once_it_is_back(
    cluster: Cluster, probe: Probe, sink: Sink, tmp_path: Path
) -> None:
    async with notifier_running(cluster, probe, sink, tmp_path) as n:
        d = await refer(cluster, probe)
        await wait_until(lambda: any(d.referral_id in line and "(alert) not accepted" in line
                                     for line in n.log().splitlines()), timeout=30,
                         what=lambda: f"a failed try (log: {n.log()})")
        status, health = n.readyz()
        assert status == 503 and any("emails are not being accepted" in p for p in health["problems"]), health
        # what the shipped alert rule (RerouteAlertEmailsFailing) watches is there, and counts the failure
        rules = (Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "reroute-alerts.yml").read_text()
        watched = set(re.findall(r"\breroute_notifier_[a-z_]+", rules))
        assert watched == {"reroute_notifier_emails_failing_seconds"}, watched
        await wait_until(lambda: _metric(n, "reroute_notifier_emails_failing_seconds ") > 0, timeout=10,
                         what="the failing gauge counting up")

        sink.start()
        for alert_id in d.alerts.values():
            await emailed(sink, alert_id, LEADS, n)
        await wait_until(lambda: n.readyz()[0] == 200, timeout=30, what=lambda: f"ready again: {n.readyz()}")
    assert all(len(sink.about(alert_id, to=LEADS)) == 1 for alert_id in d.alerts.values())


def _metric(n: Notifier, line_start: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{n.ops_port}/metrics", timeout=5) as response:
        page = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(line_start))


async def test_the_servers_answer_aimed_at_an_alert_subject_is_dropped_and_the_next_alert_emailed(
    cluster: Cluster, probe: Probe, sink: Sink, tmp_path: Path
) -> None:
    """Any client may name `safeguarding.alert.<agency>` as the reply subject of its own JetStream publish, and the
    server then stores its PubAck there: the notifier neither emails it nor logs it as a broken alert; it counts it
    and goes on to the next real alert."""
    sink.start()
    async with notifier_running(cluster, probe, sink, tmp_path) as n:
        s, aimed_at = cluster.subjects, unique("police")
        await probe.nc.publish(s.submitted(aimed_at), b"{}", reply=s.alert(aimed_at))

        async def stored() -> bool:
            return await probe.stored_count(s.alert(aimed_at)) == 1

        await wait_until(stored, timeout=10, what=f"the server's answer stored on {s.alert(aimed_at)}")
        a = await refer(cluster, probe)
        for alert_id in a.alerts.values():
            await emailed(sink, alert_id, LEADS, n)
        assert _metric(n, 'reroute_notifier_messages_dropped_total{reason="server_reply"}') == 1
        assert "does not fit the safeguarding alert contract" not in n.log()
        assert not any(aimed_at in m.text for m in sink.mails)
