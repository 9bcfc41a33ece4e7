"""shared/telemetry.py on its own: how soon spans leave a service, where they go, and which traces belong to a
referral (its own, and the callers' traces linked to it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from shared.telemetry import (
    SCHEDULE_DELAY_MS,
    caller_links,
    console_receiver,
    extract_context,
    otlp_traces_endpoint,
    referral_trace,
    setup_tracing,
    spans_of_referral,
    traceparent,
)


def _delay(provider: object) -> float:
    processors = provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    (processor,) = processors
    assert isinstance(processor, BatchSpanProcessor)
    return float(processor._batch_processor._schedule_delay_millis)  # the SDK keeps no public accessor


def test_spans_leave_within_a_fifth_of_a_second_unless_the_standard_variable_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_BSP_SCHEDULE_DELAY", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    provider = setup_tracing("risk", tmp_path)
    assert _delay(provider) == SCHEDULE_DELAY_MS == 200
    provider.shutdown()
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "1500")
    provider = setup_tracing("risk", tmp_path)
    assert _delay(provider) == 1500
    provider.shutdown()


@pytest.mark.parametrize(("env", "url"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo.example.org/otlp/v1/traces"},
     "https://tempo.example.org/otlp/v1/traces"),
])
def test_the_otlp_endpoint_is_the_one_the_exporter_uses(env: dict[str, str], url: str | None) -> None:
    assert otlp_traces_endpoint(env) == url


CONSOLE = {"REROUTE_CONSOLE_SPANS_URL": "http://console:8083/v1/traces", "REROUTE_CONSOLE_SPANS_TOKEN": "t" * 32}


@pytest.mark.parametrize(("env", "receiver"), [
    (CONSOLE, ("http://console:8083/v1/traces", "t" * 32)),
    ({**CONSOLE, "REROUTE_CONSOLE_SPANS_TOKEN": ""}, None),  # an .env from before the token: span files, as before
    ({**CONSOLE, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, None),  # a tracing backend wins
    ({**CONSOLE, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo.example.org/v1/traces"}, None),
])
def test_a_deployments_spans_go_to_its_console_unless_a_tracing_backend_is_set(
        env: dict[str, str], receiver: tuple[str, str] | None) -> None:
    assert console_receiver(env) == receiver


def test_a_referrals_traces_are_its_own_and_the_callers_linked_to_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    provider = setup_tracing("intake", tmp_path)
    tracer = provider.get_tracer("test")
    first = tracer.start_span("POST /v1/referrals", attributes={"referral.id": "ref_1"})
    kept = traceparent(first)
    first.end()
    caller = tracer.start_span("agency's update")  # a trace of the caller's own
    context = referral_trace(kept)
    assert context is not None
    later = tracer.start_span("intake referral updated", context=context,
                              links=caller_links(caller, besides=context), attributes={"referral.id": "ref_1"})
    later.end()
    caller.add_link(later.get_span_context())
    caller.end()
    unrelated = tracer.start_span("another referral", attributes={"referral.id": "ref_2"})
    unrelated.end()
    provider.force_flush()

    spans = spans_of_referral(tmp_path, "ref_1")

    assert [s.name for s in spans] == ["POST /v1/referrals", "agency's update", "intake referral updated"]
    own = first.get_span_context().trace_id
    assert spans[2].trace_id == f"{own:032x}" and spans[2].parent_id == spans[0].span_id, "continues its trace"
    assert spans[2].links == [{"trace_id": spans[1].trace_id, "span_id": spans[1].span_id}]
    assert referral_trace(None) is None and referral_trace("not a traceparent") is None
    assert caller_links(trace.INVALID_SPAN, extract_context({})) == []
    provider.shutdown()
