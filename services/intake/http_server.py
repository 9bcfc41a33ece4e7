"""Serving intake's HTTP API from inside the service's own event loop, and the request-size limit.

uvicorn runs as a task of the FastStream application: started after the broker connects, stopped on
shutdown. The service process, not uvicorn, owns SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import ConfigurationError

log = logging.getLogger(__name__)


class BodySizeLimit:
    """Refuses a request body over `max_bytes` with 413: at once by Content-Length, else while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"detail": self._message()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body over {self.max_bytes} bytes: send referrals one at a time (or raise the limit)"


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the service handles signals and stops us in its shutdown hook


class HttpServer:
    """An ASGI app served on host:port by uvicorn, as a task in the running event loop."""

    def __init__(self, app: ASGIApp, *, host: str, port: int) -> None:
        self._config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None,
                                      server_header=False, timeout_graceful_shutdown=5)
        self._server = _EmbeddedServer(self._config)
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port

    async def start(self) -> None:
        """Listen (failing with a clear message if the port is taken), then serve in the background."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections: no 40 ms Nagle waits
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigurationError(
                f"intake cannot listen on {self.host}:{self.port} for its HTTP API ({exc.strerror}): set "
                "REROUTE_INTAKE_HTTP_PORT to a free port, or to 0 to turn the HTTP API off") from None
        sock.listen(128)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="intake:http")
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # re-raise why it could not start
        log.info("intake HTTP API on http://%s:%d (OpenAPI at /docs)", self.host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("intake HTTP API did not stop in time")
        self._task = None
