"""Serve a service's HTTP face (FastAPI) inside its own event loop, started and stopped with the service.

uvicorn runs as a task of the service: started after the broker connects, stopped first on shutdown. The
service process, not uvicorn, owns SIGINT/SIGTERM. The port may be `auto`: the OS picks a free one as the
socket is bound (no choose-then-bind race), and `url` says which.

uvicorn believes no X-Forwarded-* header (a service that sits behind a proxy decides itself whom to trust), and
its access log is replaced by `AccessLog`, which names the route, never the path as requested.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import ConfigurationError, HttpPort

log = logging.getLogger(__name__)
access_log = logging.getLogger(f"{__name__}.access")


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the service handles signals and stops us in its shutdown hook


class AccessLog:
    """One line per request, as uvicorn's access log but with the route's template for the path:
    `GET /v1/calendars/{token}.ics 200`. A path can carry a secret (a mentor's calendar token) or an id, and a
    query string anything at all; none of it belongs in a log. A path that matches no route is not written."""

    def __init__(self, app: ASGIApp, *, quiet: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.quiet = quiet
        """Routes whose answered requests (2xx) are logged at DEBUG only: the console's span receiver, which each
        service posts to every fraction of a second."""
        # each route as served, those of included routers too (FastAPI keeps an included router as one entry)
        self._routes: list[Any] = list(iter_route_contexts(getattr(app, "routes", [])))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            host, port = scope.get("client") or ("-", 0)
            route = self._route(scope)
            level = logging.DEBUG if route in self.quiet and 200 <= status < 300 else logging.INFO
            access_log.log(level, '%s:%d - "%s %s HTTP/%s" %d', host, port, scope["method"], route,
                           scope["http_version"], status)

    def _route(self, scope: Scope) -> str:
        """The template of the route that served the request (as the router picks it: the first full match, else
        the first whose path matched but not its method)."""
        matches = [(match, route) for route in self._routes if (match := route.matches(scope)[0]) is not Match.NONE]
        if not matches:
            return "(no route)"
        _, route = next((m for m in matches if m[0] is Match.FULL), matches[0])
        return str(getattr(route, "path", "(a route)"))


class HttpServer:
    """An ASGI app served on host:port by uvicorn, as a task in the running event loop."""

    def __init__(self, app: ASGIApp, *, host: str, port: HttpPort, name: str, port_setting: str,
                 what: str = "HTTP API", ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                 quiet: frozenset[str] = frozenset()) -> None:
        self._config = uvicorn.Config(AccessLog(app, quiet=quiet), host=host, port=0 if port == "auto" else port, lifespan="off",
                                      log_config=None, access_log=False, proxy_headers=False, server_header=False,
                                      timeout_graceful_shutdown=5, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
        self._server = _EmbeddedServer(self._config)
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port
        self._bound: int | None = None
        self._name, self._port_setting, self._what = name, port_setting, what

    @property
    def url(self) -> str | None:
        """Where the API is served (the port the OS chose, for `auto`); None when not serving."""
        if self._bound is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound}"

    async def start(self) -> None:
        """Listen (failing with a clear message if the port is taken), then serve in the background."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections: no 40 ms Nagle waits
        try:
            sock.bind((self.host, self._config.port))
        except OSError as exc:
            sock.close()
            where = f"{self.host} (any free port)" if self.port == "auto" else f"{self.host}:{self.port}"
            raise ConfigurationError(
                f"{self._name} cannot listen on {where} for its {self._what} ({exc.strerror}): set "
                f"{self._port_setting} to a free port or to auto (any free port), or to 0 to turn it off") from None
        sock.listen(128)
        bound = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"{self._name}:http")
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # re-raise why it could not start
        self._bound = bound
        if self._what == "HTTP API":
            log.info("%s HTTP API on %s (OpenAPI at %s/docs)", self._name, self.url, self.url)
        else:
            log.info("%s %s on %s", self._name, self._what, self.url)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("%s %s did not stop in time", self._name, self._what)
        self._task = None
        self._bound = None
