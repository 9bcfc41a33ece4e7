"""The services' HTTP access log names the route, never the path as requested (which can carry a secret)."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from shared.http import AccessLog


def _app() -> FastAPI:
    app = FastAPI()

    @app.put("/v1/calendars/{mentor_id}.ics")
    def replace(mentor_id: str) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/v1/calendars/{token}.ics")
    def feed(token: str) -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def test_the_route_is_logged_not_the_token_or_the_query(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=AccessLog(_app()), client=("192.0.2.4", 5123))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.INFO, logger="shared.http.access"):
            found = await client.get("/v1/calendars/s3cr3t-token.ics?secret=also")
            missing = await client.get("/v1/calendars/s3cr3t-token/typo")
            wrong_method = await client.post("/v1/calendars/s3cr3t-token.ics")
            other_route = await client.put("/v1/calendars/s3cr3t-token.ics")

    assert [r.status_code for r in (found, missing, wrong_method, other_route)] == [200, 404, 405, 200]
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.http.access"]
    assert lines == [
        '192.0.2.4:5123 - "GET /v1/calendars/{token}.ics HTTP/1.1" 200',
        '192.0.2.4:5123 - "GET (no route) HTTP/1.1" 404',
        '192.0.2.4:5123 - "POST /v1/calendars/{mentor_id}.ics HTTP/1.1" 405',
        '192.0.2.4:5123 - "PUT /v1/calendars/{mentor_id}.ics HTTP/1.1" 200',
    ]
    assert "s3cr3t" not in caplog.text and "also" not in caplog.text


async def test_a_quiet_routes_answered_requests_are_logged_at_debug_and_its_refusals_as_any(
        caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=AccessLog(_app(), quiet=frozenset({"/v1/calendars/{mentor_id}.ics"})))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.INFO, logger="shared.http.access"):
            await client.put("/v1/calendars/m1.ics")  # answered: DEBUG, not shown
            await client.post("/v1/calendars/m1.ics")  # refused (405): shown
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.http.access"]
    assert [line.split(" - ")[1] for line in lines] == ['"POST /v1/calendars/{mentor_id}.ics HTTP/1.1" 405']
