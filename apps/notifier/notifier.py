"""What the notifier does: email each new safeguarding alert to the leads, and each alert still unacknowledged past
its deadline to the deputies, once.

New alerts come from the SAFEGUARDING stream through a durable consumer of its own (`notifier-alert`), so an alert
raised while the notifier was down is emailed when it is back; a message is acknowledged only once the SMTP server
has accepted the email, and an email the server does not accept is tried again, the wait doubling up to
REROUTE_MAIL_RETRY_MAX_SECONDS, for as long as it takes (readyz and the metrics say so meanwhile). Overdue alerts are
asked of risk and scheduling (`alerts.list`) every REROUTE_ESCALATION_CHECK_SECONDS; each one escalated is recorded
in a JetStream key-value bucket, so a restart does not send it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from apps.notifier import mail
from apps.notifier.settings import NotifierSettings
from shared.contracts.risk import SafeguardingAlert
from shared.contracts.rpc import ErrorCode, Health, ServiceError, decode_reply
from shared.contracts.safeguarding_rpc import ALERTS, AlertsRequest, SafeguardingAlertView
from shared.server_replies import SERVER_REPLY, is_server_reply
from shared.subjects import Subjects

log = logging.getLogger(__name__)
NAME = "notifier"
FETCH = 16
ACK_WAIT_SECONDS = 120
"""Longer than one SMTP conversation may take, so an email being sent is not handed to another replica meanwhile."""


def retry_delay(deliveries: int, most: float) -> float:
    """The wait before trying an email again after its `deliveries`-th try failed: 1 s, 2 s, 4 s… up to `most`."""
    return float(min(most, 2 ** min(max(deliveries - 1, 0), 16)))


def overdue(alerts: list[SafeguardingAlertView], *, now: datetime, grace: timedelta) -> list[SafeguardingAlertView]:
    """The unacknowledged alerts whose deadline passed more than `grace` ago."""
    return [a for a in alerts if a.acknowledged_at is None and a.deadline + grace < now]


def escalation_key(alert_id: str) -> str:
    """The bucket key of an escalated alert (a key may not hold the `:` an alert id has)."""
    return hashlib.sha256(alert_id.encode()).hexdigest()


@dataclass
class MailHealth:
    """Whether emails are being accepted, as readyz and the metrics report it."""

    failing_since: datetime | None = None
    last_error: str = ""
    problems: dict[str, str] = field(default_factory=dict)

    def sent(self) -> None:
        self.failing_since, self.last_error = None, ""

    def failed(self, exc: BaseException, now: datetime) -> None:
        self.failing_since = self.failing_since or now
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]


class Notifier:
    """One notifier replica: its consumer of new alerts, its round of overdue ones, and its health."""

    def __init__(self, settings: NotifierSettings, nc: Client, *, registry: CollectorRegistry,
                 send: Callable[[EmailMessage], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.subjects = Subjects(settings.namespace)
        self.send = send or mail.Mailer(settings).send
        self.health_state = MailHealth()
        self.sent = Counter("reroute_notifier_emails_sent", "Emails the SMTP server accepted, by kind.", ["kind"],
                            registry=registry)
        self.failures = Counter("reroute_notifier_email_failures", "Emails the SMTP server did not accept (each try), "
                                "by kind.", ["kind"], registry=registry)
        self.failing = Gauge("reroute_notifier_emails_failing_seconds", "How long emails have not been accepted (0: "
                             "they are).", registry=registry)
        self.failing.set_function(self._failing_seconds)
        self.dropped = Counter("reroute_notifier_messages_dropped", "Messages on the alert subjects dropped unread, "
                               "by reason (server_reply: the NATS server's own answer, aimed there by a client as its "
                               "reply subject).", ["reason"], registry=registry)
        self.rounds = Counter("reroute_notifier_escalation_rounds", "Rounds that asked every service for overdue "
                              "alerts and escalated each new one.", registry=registry)
        self.kv: KeyValue | None = None

    def _failing_seconds(self) -> float:
        since = self.health_state.failing_since
        return (datetime.now(UTC) - since).total_seconds() if since else 0.0

    def health(self) -> Health:
        problems = list(self.health_state.problems.values())
        if (off := self.settings.mail_off) is not None:
            problems.append(off)
        if self.health_state.failing_since is not None:
            problems.append(f"emails are not being accepted since {self.health_state.failing_since:%Y-%m-%d %H:%M:%S} "
                            f"UTC ({self.health_state.last_error}); alerts wait and are tried again")
        if not self.nc.is_connected:
            problems.append("not connected to NATS")
        return Health(service=NAME, pid=os.getpid(), live=True, ready=not problems, problems=problems)

    # --- new alerts: the leads --------------------------------------------------------------------------------

    async def consume(self, stop: asyncio.Event) -> None:
        """Email each new alert to the leads; acknowledge it once the SMTP server has accepted the email."""
        s = self.subjects
        sub = await self.js.pull_subscribe(
            s.alert("*"), durable=s.durable(NAME, "alert"), stream=s.safeguarding_stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.EXPLICIT,
                                  ack_wait=ACK_WAIT_SECONDS, max_deliver=-1, filter_subject=s.alert("*")))
        while not stop.is_set():
            try:
                msgs = await sub.fetch(FETCH, timeout=2)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("cannot fetch alerts: %s; trying again", exc)
                await asyncio.sleep(1)
                continue
            accepting = True
            for msg in msgs:
                if accepting:
                    accepting = await self._new_alert(msg)
                else:  # the server refused the one before: the rest wait too, rather than each time out in turn
                    await msg.nak(delay=retry_delay(msg.metadata.num_delivered, self.settings.mail_retry_max_seconds))

    async def _new_alert(self, msg: Msg) -> bool:
        """Email one alert; False when the SMTP server did not accept it (it is then tried again later)."""
        if is_server_reply(msg.data):  # no alert: the server's answer, aimed here by a client (shared/server_replies.py)
            self.dropped.labels(SERVER_REPLY).inc()
            await msg.ack()
            return True
        try:
            alert = SafeguardingAlert.model_validate_json(msg.data)
        except ValidationError:
            log.error("a message on %s does not fit the safeguarding alert contract; not emailed (stream sequence "
                      "%s)", msg.subject, msg.metadata.sequence.stream)
            await msg.term()
            return True
        email = mail.new_alert(alert_id=alert.event_id, referral_id=alert.referral_id, rule_id=alert.rule_id,
                               actions=alert.actions, deadline=alert.deadline, raised_by=None,
                               settings=self.settings)
        if await self._send(email, kind="alert", alert_id=alert.event_id):
            await msg.ack()
            return True
        await msg.nak(delay=retry_delay(msg.metadata.num_delivered, self.settings.mail_retry_max_seconds))
        return False

    async def _send(self, email: EmailMessage, *, kind: str, alert_id: str) -> bool:
        try:
            await self.send(email)
        except Exception as exc:  # noqa: BLE001  # whatever the SMTP side says, the alert waits and is tried again
            self.failures.labels(kind).inc()
            self.health_state.failed(exc, datetime.now(UTC))
            log.error("email about alert %s (%s) not accepted: %s: %s; it is tried again", alert_id, kind,
                      type(exc).__name__, exc)
            return False
        self.sent.labels(kind).inc()
        self.health_state.sent()
        log.info("emailed alert %s (%s) to %d address(es)", alert_id, kind,
                 len(self.settings.leads if kind == "alert" else self.settings.deputies))
        return True

    # --- overdue alerts: the deputies -------------------------------------------------------------------------

    async def escalate_rounds(self, stop: asyncio.Event) -> None:
        """Every REROUTE_ESCALATION_CHECK_SECONDS, escalate each alert newly overdue."""
        if not self.settings.deputies:
            self.health_state.problems["deputies"] = ("REROUTE_ALERT_DEPUTY_EMAILS is empty: alerts unacknowledged "
                                                      "past their deadline are escalated to nobody")
            log.error(self.health_state.problems["deputies"])
            return
        while not stop.is_set():
            await self.escalate_round()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.escalation_check_seconds)
            except TimeoutError:
                pass

    async def escalate_round(self) -> None:
        kv = await self._bucket()
        now = datetime.now(UTC)
        grace = timedelta(minutes=self.settings.escalation_grace_minutes)
        complete = True
        for service in ALERTS.services:
            try:
                alerts = await self._open_alerts(service)
            except (ServiceError, nats.errors.Error, TimeoutError) as exc:
                self.health_state.problems[f"ask {service}"] = (f"cannot ask {service} for overdue alerts: {exc}")
                log.warning("cannot ask %s for overdue alerts: %s; asking again next round", service, exc)
                complete = False
                continue
            self.health_state.problems.pop(f"ask {service}", None)
            for alert in overdue(alerts, now=now, grace=grace):
                if not await self._escalate(kv, alert):
                    return  # the SMTP server refused it: the others wait for the next round too
        if complete:
            self.rounds.inc()

    async def _open_alerts(self, service: str) -> list[SafeguardingAlertView]:
        request = AlertsRequest(acknowledged_days=0, limit=5000)
        try:
            reply = await self.nc.request(self.subjects.rpc(service, ALERTS.verb), request.model_dump_json().encode(),
                                          timeout=10)
        except nats.errors.NoRespondersError:
            raise ServiceError(ErrorCode.UNAVAILABLE, f"{service} is not running") from None
        return decode_reply(ALERTS, reply.data).alerts

    async def _escalate(self, kv: KeyValue, alert: SafeguardingAlertView) -> bool:
        key = escalation_key(alert.alert_id)
        try:
            await kv.get(key)
            return True  # escalated already (by this replica before a restart, or another)
        except nats.js.errors.KeyNotFoundError:
            pass
        email = mail.escalation(alert_id=alert.alert_id, referral_id=alert.referral_id, rule_id=alert.rule_id,
                                actions=alert.actions, deadline=alert.deadline, raised_by=alert.service,
                                settings=self.settings)
        if not await self._send(email, kind="escalation", alert_id=alert.alert_id):
            return False
        # recorded after the server accepted it: a crash in between sends it once more, never zero times
        await kv.put(key, json.dumps({"alert_id": alert.alert_id, "escalated_at": datetime.now(UTC).isoformat(),
                                      "to": len(self.settings.deputies)}).encode())
        return True

    async def _bucket(self) -> KeyValue:
        if self.kv is None:
            bucket = self.subjects.escalations_bucket
            try:
                self.kv = await self.js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                self.kv = await self.js.create_key_value(KeyValueConfig(
                    bucket=bucket, history=1, ttl=400 * 24 * 3600,
                    replicas=self.settings.stream_replicas,  # R3 on a three-node cluster, as the streams are
                    description="Safeguarding alerts the notifier has escalated to the deputies, each once."))
        return self.kv


async def supervise(name: str, loop: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run `loop` until `stop`; a failure (NATS away, a bug) is logged and the loop starts again after a pause."""
    while not stop.is_set():
        try:
            await loop()
            return
        except Exception:
            log.exception("the notifier's %s stopped; starting it again in 5 s", name)
        try:
            await asyncio.wait_for(stop.wait(), timeout=5)
        except TimeoutError:
            pass
