"""Serve a service's HTTP face (FastAPI) inside its own event loop, started and stopped with the service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the service (FastStream) owns SIGINT/SIGTERM and stops us in order


class HttpServer:
    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        self._server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                              access_log=False))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start (port in use, say)
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await asyncio.wait([self._task], timeout=10)
