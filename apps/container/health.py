"""`python -m apps.container.health SERVICE|nats|console|notifier`: a container's healthcheck; exit 0 when ready, else 1 saying why.

A service is healthy when it says it is ready. With REROUTE_OPS_PORT set to a port number (as in a container), that
is this replica's own `/readyz` on 127.0.0.1 (shared/ops.py). Otherwise its ping (the request-reply every service
answers) is asked over NATS as the `health` user (REROUTE_HEALTH_NATS_URL), which may ask nothing else; with several
replicas the answer is then whichever replica NATS picks. NATS is healthy when its own /healthz (JetStream included)
answers ok on the container's local monitoring port; the web console when its /healthz answers on
REROUTE_CONSOLE_PORT (plain HTTP on 127.0.0.1: TLS is the proxy's); the notifier when its own /readyz on
REROUTE_NOTIFIER_OPS_PORT says it is ready (emails configured and accepted, NATS connected).
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


def ops_problem(port: int) -> str | None:
    """This replica's own readiness, from /readyz on its ops port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=TIMEOUT) as answer:
            json.loads(answer.read())
        return None
    except urllib.error.HTTPError as exc:  # 503: not ready, with the problems
        try:
            problems = json.loads(exc.read()).get("problems") or []
        except ValueError:
            problems = [f"HTTP {exc.code}"]
        return f"not ready: {'; '.join(problems) or exc.code}"
    except (OSError, ValueError) as exc:
        return f"/readyz on port {port}: {exc}"


def nats_problem() -> str | None:
    port = os.environ.get("REROUTE_NATS_MONITOR_PORT", "8222")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        return f"NATS /healthz: {exc}"
    return None if body.get("status") == "ok" else f"NATS /healthz: {body}"


def console_problem() -> str | None:
    port = os.environ.get("REROUTE_CONSOLE_PORT", "8083")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT):
            return None
    except OSError as exc:
        return f"console /healthz on port {port}: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    ops_port = os.environ.get("REROUTE_OPS_PORT", "")
    if argv[0] == "nats":
        problem = nats_problem()
    elif argv[0] == "console":
        problem = console_problem()
    elif argv[0] == "notifier":
        port = os.environ.get("REROUTE_NOTIFIER_OPS_PORT", "")
        problem = ops_problem(int(port)) if port.isdigit() and int(port) > 0 else "REROUTE_NOTIFIER_OPS_PORT is not a port"
    elif ops_port.isdigit() and int(ops_port) > 0:
        problem = ops_problem(int(ops_port))
    else:
        problem = asyncio.run(service_problem(argv[0]))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
