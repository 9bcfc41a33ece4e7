"""An HTTP port setting takes a port, 0 (off) or auto (any free port); the server says which URL it bound."""

from __future__ import annotations

import socket

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from services.intake.settings import IntakeSettings
from shared.http import HttpServer
from shared.settings import ConfigurationError


@pytest.mark.parametrize(("value", "port"), [("auto", "auto"), (" Auto ", "auto"), ("0", 0), ("8081", 8081),
                                             ("65535", 65535)])
def test_a_port_setting_takes_a_port_0_or_auto(monkeypatch: pytest.MonkeyPatch, value: str, port: object) -> None:
    monkeypatch.setenv("REROUTE_INTAKE_HTTP_PORT", value)
    assert IntakeSettings().intake_http_port == port


@pytest.mark.parametrize("value", ["65536", "-1", "eighty", "", "8081.0", "automatic", "١٢"])
def test_any_other_port_setting_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REROUTE_INTAKE_HTTP_PORT", value)
    with pytest.raises(ValidationError, match="REROUTE_INTAKE_HTTP_PORT must be a port number 1-65535, 0 "
                                              r"\(off\) or auto"):
        IntakeSettings()


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


async def test_auto_serves_on_a_port_the_os_chose_and_says_which(caplog: pytest.LogCaptureFixture) -> None:
    server = HttpServer(_app(), host="127.0.0.1", port="auto", name="test", port_setting="REROUTE_TEST_PORT")
    assert server.url is None
    caplog.set_level("INFO", logger="shared.http")
    await server.start()
    try:
        assert server.url is not None and server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/hello")).json() == {"hello": "world"}
        assert f"test HTTP API on {server.url} " in caplog.text
    finally:
        await server.stop()
    assert server.url is None


async def test_a_taken_port_is_refused_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        server = HttpServer(_app(), host="127.0.0.1", port=port, name="test", port_setting="REROUTE_TEST_PORT")
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port} .*set REROUTE_TEST_PORT"):
            await server.start()
        assert server.url is None
