"""`python -m apps.container.health SERVICE|nats`: a container's healthcheck; exit 0 when ready, else 1 saying why.

A service is healthy when its ping (the request-reply every service answers) says ready: asked over NATS as the
`health` user (REROUTE_HEALTH_NATS_URL), which may ask nothing else. With several replicas of a service the answer
is whichever replica's NATS picks, so this says whether the service is ready, not this container. NATS is healthy
when its own /healthz (JetStream included) answers ok on the container's local monitoring port.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request

import nats
import nats.errors

from shared.subjects import Subjects

TIMEOUT = 3.0


async def service_problem(service: str) -> str | None:
    url = os.environ.get("REROUTE_HEALTH_NATS_URL")
    if not url:
        return "REROUTE_HEALTH_NATS_URL is not set"
    try:
        nc = await nats.connect(url, inbox_prefix="_INBOX_health", connect_timeout=TIMEOUT, allow_reconnect=False,
                                max_reconnect_attempts=0, name=f"healthcheck-{service}")
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        return f"cannot reach NATS: {type(exc).__name__} {exc}"
    try:
        subject = Subjects(os.environ.get("REROUTE_NAMESPACE", "")).rpc(service, "ping")
        reply = await nc.request(subject, b"{}", timeout=TIMEOUT)
    except (TimeoutError, nats.errors.Error) as exc:
        return f"{service} did not answer its ping: {type(exc).__name__}"
    finally:
        await nc.close()
    health = json.loads(reply.data)
    if health.get("ready") is True:
        return None
    return f"{service} is not ready: {'; '.join(health.get('problems') or []) or health}"


def nats_problem() -> str | None:
    port = os.environ.get("REROUTE_NATS_MONITOR_PORT", "8222")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        return f"NATS /healthz: {exc}"
    return None if body.get("status") == "ok" else f"NATS /healthz: {body}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problem = nats_problem() if argv[0] == "nats" else asyncio.run(service_problem(argv[0]))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
