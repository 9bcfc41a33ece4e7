"""`python -m apps.notifier` (`reroute notify`): email safeguarding alerts to the leads and escalate overdue ones to
the deputies, until SIGTERM or Ctrl-C (`reroute up` runs it beside the services).

It connects to NATS as the notifier (NATS_URL names its user) and serves /healthz, /readyz and /metrics on
REROUTE_HTTP_HOST:REROUTE_NOTIFIER_OPS_PORT. Without REROUTE_SMTP_HOST it sends nothing and says so, loudly."""

from __future__ import annotations

import asyncio
import logging
import signal

import nats
from prometheus_client import CollectorRegistry

from apps.notifier.notifier import Notifier, supervise
from apps.notifier.settings import NotifierSettings
from shared.http import HttpServer
from shared.ops import ops_app
from shared.process import run

log = logging.getLogger("apps.notifier")


async def serve(settings: NotifierSettings) -> None:
    async def said(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    nc = await nats.connect(settings.nats_servers(), name="reroute-notifier", inbox_prefix=settings.inbox_prefix,
                            max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=said)
    registry = CollectorRegistry()
    notifier = Notifier(settings, nc, registry=registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ops = HttpServer(ops_app(notifier.health, registry), host=settings.http_host, port=settings.notifier_ops_port,
                     name="notifier", port_setting="REROUTE_NOTIFIER_OPS_PORT", what="notifier probes")
    await ops.start()
    tasks: list[asyncio.Task[None]] = []
    if (why := settings.mail_off) is not None:
        log.error("EMAILS ARE OFF: %s. Set REROUTE_SMTP_HOST and REROUTE_ALERT_EMAILS to have each alert emailed.", why)
    else:
        log.info("emailing new safeguarding alerts to %d lead address(es) through %s:%d; overdue ones to %d deputy "
                 "address(es), checked every %g s", len(settings.leads), settings.smtp_host, settings.smtp_port,
                 len(settings.deputies), settings.escalation_check_seconds)
        tasks = [asyncio.create_task(supervise("alert emails", lambda: notifier.consume(stop), stop)),
                 asyncio.create_task(supervise("escalations", lambda: notifier.escalate_rounds(stop), stop))]
    try:
        await stop.wait()
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
        await ops.stop()
        await nc.close()


def main() -> None:
    run("notifier", NotifierSettings, serve)


if __name__ == "__main__":
    main()
