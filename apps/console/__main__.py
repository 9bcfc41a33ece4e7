"""`python -m apps.console`: the web console, until SIGTERM or Ctrl-C (`reroute up` runs it beside the services).

It connects to NATS as the console (NATS_URL names its user), hears safeguarding alerts, serves HTTP on
REROUTE_CONSOLE_HOST:REROUTE_CONSOLE_PORT, and writes its address to <data dir>/console.url. Every hour (and as it
starts) it deletes the spans older than the retention period from its span store; it erases a young person's spans
from it when `reroute person erase` asks (apps/console/erasure.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from apps.console import receiver
from apps.console.app import create_app
from apps.console.client import ServicesClient, connect
from apps.console.erasure import SpanErasure
from apps.console.live import AlertFeed
from apps.console.settings import URL_FILE, ConsoleSettings
from shared.http import HttpServer
from shared.process import run
from shared.span_store import SpanStore
from shared.subjects import Subjects

log = logging.getLogger("apps.console")
PRUNE_EVERY_SECONDS = 3600


async def keep_spans_within_retention(store: SpanStore, days: float) -> None:
    """Until cancelled: the span files imported, then the spans older than `days` deleted, every hour."""
    while True:
        try:
            await asyncio.to_thread(store.import_files)
            gone = await asyncio.to_thread(store.prune, time.time_ns() - int(days * 86_400 * 10**9))
            if gone:
                log.info("span store: deleted %d spans older than %g days (the retention period)", gone, days)
        except Exception:
            log.exception("span store: could not import span files or delete old spans; trying again in an hour")
        await asyncio.sleep(PRUNE_EVERY_SECONDS)


async def serve(settings: ConsoleSettings) -> None:
    nc = await connect(settings)
    subjects = Subjects(settings.namespace)
    alerts = AlertFeed()
    await alerts.start(nc, subjects.alert("*"))
    app = create_app(settings, ServicesClient(nc, subjects), alerts)
    erasure = SpanErasure(app.state.console.spans)
    await erasure.start(nc, subjects)  # `reroute person erase` reaches this store wherever the console runs
    tls = {"ssl_certfile": str(settings.console_tls_cert), "ssl_keyfile": str(settings.console_tls_key)} \
        if settings.console_tls_cert and settings.console_tls_key else {}
    server = HttpServer(app, host=settings.console_host, port=settings.console_port, name="console",
                        port_setting="REROUTE_CONSOLE_PORT", what="web console", quiet=frozenset({receiver.PATH}),
                        **tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    retention = asyncio.create_task(keep_spans_within_retention(app.state.console.spans, settings.retention_days))
    url = settings.console_public_url or server.url or ""
    if settings.console_tls_cert:
        url = url.replace("http://", "https://", 1)
    (settings.data_dir / URL_FILE).write_text(url + "\n")
    try:
        await stop.wait()
    finally:
        (settings.data_dir / URL_FILE).unlink(missing_ok=True)
        retention.cancel()
        await server.stop()
        await erasure.stop()
        app.state.console.spans.close()
        await alerts.stop()
        await nc.close()


def main() -> None:
    run("console", ConsoleSettings, serve)


if __name__ == "__main__":
    main()
