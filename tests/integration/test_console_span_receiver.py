"""The console as the services' OTLP receiver: the OpenTelemetry SDK's own OTLP/HTTP exporter posts spans to a console
served on a real port, and an operator finds them on the Traces pages (the console with a stand-in for intake's
log-in and `people.whoami`; the browser tests run it against the real services). Only a sender with the spans token
may post; anything else is a clear 4xx and stores nothing."""

from __future__ import annotations

import asyncio
import gzip
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from pydantic import SecretStr

from apps.console.app import create_app
from apps.console.client import Person, ServicesClient
from apps.console.live import AlertFeed
from apps.console.receiver import MAX_BODY
from apps.console.settings import ConsoleSettings
from shared.contracts.intake_rpc import ConsoleLogin
from shared.contracts.rpc import Role
from shared.http import HttpServer
from shared.span_store import SpanStore
from shared.telemetry import setup_tracing

TOKEN = "spans-" + "t" * 32


class Services:
    """Answers as intake would for one person, an operator unless told another role."""

    def __init__(self, role: Role = Role.OPERATOR) -> None:
        self.role = role

    async def call(self, endpoint: Any, request: Any, **_: Any) -> ConsoleLogin:
        return ConsoleLogin(person_id="olu", roles=[self.role], one_time=False, second_factor="done")

    async def whoami(self, person_id: str) -> Person:
        return Person(person_id, frozenset({self.role}))


@asynccontextmanager
async def console_as(tmp_path: Path, role: Role) -> AsyncIterator[str]:
    settings = ConsoleSettings(data_dir=tmp_path, console_spans_token=SecretStr(TOKEN),
                               console_trace_url="https://jaeger.example.org/trace/{trace_id}")
    server = HttpServer(create_app(settings, cast(ServicesClient, Services(role)), AlertFeed()), host="127.0.0.1",
                        port="auto", name="console", port_setting="REROUTE_CONSOLE_PORT", what="web console")
    await server.start()
    try:
        assert server.url
        yield server.url
    finally:
        await server.stop()


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[str]:
    async with console_as(tmp_path, Role.OPERATOR) as url:
        yield url


async def log_in(browser: httpx.AsyncClient) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await browser.get("/login")).text)
    assert token is not None
    logged = await browser.post("/login", data={"csrf_token": token[1], "person_id": "olu", "password": "x" * 12})
    assert logged.status_code == 303


def send(url: str, referral_id: str) -> str:
    """A referral's trace as a service makes it (intake's span, risk's failing child, an agency's linked request),
    exported by the SDK's OTLP/HTTP exporter; its trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": "intake"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"authorization": f"Bearer {TOKEN}"})))
    tracer = provider.get_tracer("test")
    caller = tracer.start_span("POST /v1/referrals/{arid}")
    with (tracer.start_as_current_span("intake accept", attributes={"referral.id": referral_id}) as root,
          tracer.start_as_current_span("risk assess", attributes={"referral.id": referral_id,
                                                                  "risk.tier": "high"}) as child):
        child.set_status(Status(StatusCode.ERROR, "rules file unreadable"))
    caller.add_link(root.get_span_context())
    caller.end()
    provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


async def test_spans_the_sdk_exports_to_the_console_are_on_its_traces_pages(console: str, tmp_path: Path) -> None:
    referral_id = f"ref_{uuid.uuid4().hex[:16]}"
    trace_id = await asyncio.to_thread(send, console, referral_id)

    stored = SpanStore.of(tmp_path).spans_of_referral(referral_id)
    assert [(s.name, s.service, s.status) for s in stored] == [
        ("POST /v1/referrals/{arid}", "intake", "UNSET"), ("intake accept", "intake", "UNSET"),
        ("risk assess", "intake", "ERROR")]
    assert stored[2].parent_id == stored[1].span_id and stored[2].attributes["risk.tier"] == "high"
    assert stored[0].links == [{"trace_id": trace_id, "span_id": stored[1].span_id}], "the agency's request, linked"

    async with httpx.AsyncClient(base_url=console) as browser:
        await log_in(browser)
        page = await browser.get("/traces/referral", params={"referral_id": referral_id})
        assert page.status_code == 200 and "risk assess" in page.text and "Error" in page.text
        assert f"https://jaeger.example.org/trace/{trace_id}" in page.text
        listed = (await browser.get("/traces")).text
        recent, _, failed = listed.split("<caption>")[1:4]
        assert referral_id in recent and referral_id in failed


async def test_a_scheduler_sees_a_referrals_waterfall_without_the_tracing_backends_link(tmp_path: Path) -> None:
    """The backend shows everything a span holds (status texts, events): its link is the operators' only."""
    referral_id = f"ref_{uuid.uuid4().hex[:16]}"
    async with console_as(tmp_path, Role.SCHEDULER) as url:
        trace_id = await asyncio.to_thread(send, url, referral_id)
        async with httpx.AsyncClient(base_url=url) as browser:
            await log_in(browser)
            page = await browser.get(f"/referrals/{referral_id}/trace")
    assert page.status_code == 200 and "risk assess" in page.text, page.text
    assert "jaeger.example.org" not in page.text and trace_id[:8] in page.text


async def test_a_service_in_a_deployment_sends_its_spans_to_the_console_named_in_its_settings(
        console: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compose and Kubernetes give each service REROUTE_CONSOLE_SPANS_URL and the token: with no tracing backend,
    setup_tracing sends its spans there, and writes no span file."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REROUTE_CONSOLE_SPANS_URL", f"{console}/v1/traces")
    monkeypatch.setenv("REROUTE_CONSOLE_SPANS_TOKEN", TOKEN)
    referral_id = f"ref_{uuid.uuid4().hex}"
    provider = setup_tracing("risk", tmp_path / "risk")
    with provider.get_tracer("test").start_as_current_span("risk assess", attributes={"referral.id": referral_id}):
        pass
    assert await asyncio.to_thread(provider.force_flush)
    provider.shutdown()
    assert [s.service for s in SpanStore.of(tmp_path).spans_of_referral(referral_id)] == ["risk"]
    assert not (tmp_path / "risk").exists()


async def test_only_the_services_with_the_token_may_post_spans_and_every_refusal_says_why(
        console: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        protobuf = {"Content-Type": "application/x-protobuf"}
        bearer = {**protobuf, "Authorization": f"Bearer {TOKEN}"}
        refused = [
            (await client.post("/v1/traces", content=b"", headers=protobuf), 401),
            (await client.post("/v1/traces", content=b"", headers={**protobuf, "Authorization": "Bearer wrong"}), 401),
            # a browser's cross-site form, with the session cookie it may have: no token, so no spans
            (await client.post("/v1/traces", data={"x": "1"}, headers={"Origin": "https://evil.example"}), 401),
            (await client.post("/v1/traces", json={"resourceSpans": []}, headers={"Authorization": f"Bearer {TOKEN}"}),
             415),
            (await client.post("/v1/traces", content=b"\xff" * 10, headers=bearer), 400),
            (await client.post("/v1/traces", content=b"x" * (MAX_BODY + 1), headers=bearer), 413),
            (await client.post("/v1/traces", content=gzip.compress(b"\0" * (MAX_BODY + 1)),
                               headers={**bearer, "Content-Encoding": "gzip"}), 413),
        ]
        assert [r.status_code for r, _ in refused] == [want for _, want in refused]
        assert all(r.json()["detail"] for r, _ in refused)
        assert refused[0][0].headers["www-authenticate"] == "Bearer"
        assert (await client.post("/v1/traces", content=b"", headers=bearer)).status_code == 200
    assert SpanStore.of(tmp_path).recent(10) == []


async def test_without_a_spans_token_the_console_receives_no_spans(tmp_path: Path) -> None:
    app = create_app(ConsoleSettings(data_dir=tmp_path), cast(ServicesClient, Services()), AlertFeed())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf",
                                                                       "Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404 and "REROUTE_CONSOLE_SPANS_TOKEN" in answer.json()["detail"]
