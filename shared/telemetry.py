"""Tracing set-up shared by all services, and the local span store `reroute trace` reads.

With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set, spans go out over OTLP/HTTP only: writing the
local files as well would cost the pipeline about a fifth of its throughput again (../shared/perf-notes.md), so
`reroute trace` names the backend instead. Without a backend, with REROUTE_CONSOLE_SPANS_URL and its token set (a
deployment's console), they go to the console's OTLP receiver. Otherwise they are appended as JSON lines to
<data dir>/traces/<service>-<pid>.jsonl. Either way they leave the process within OTEL_BSP_SCHEDULE_DELAY, 200 ms
unless set (the SDK's default of 5 s left `reroute trace` blind for seconds after an outcome; under load the
exporter sends full batches whatever the delay, so a shorter one costs nothing measurable).

A referral is one trace: every later piece of work on it (an update, a repeat, an override and what follows
from them) is started as a child of the context it was first accepted under (`referral_trace`), which each
service keeps beside the referral, and links to the caller's own trace when it has one (an agency's HTTP request,
say). Span attributes carry ids and outcomes only: never a name, birth date, address or free text.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)
_propagator = TraceContextTextMapPropagator()
TRACES_DIR = "traces"
SCHEDULE_DELAY_MS = 200
"""How soon a finished span is exported when OTEL_BSP_SCHEDULE_DELAY is not set."""


def setup_tracing(service_name: str, data_dir: Path) -> TracerProvider:
    """A tracer provider for this process, exporting over OTLP when configured, else to the data dir."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if otlp_traces_endpoint() is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    elif (console := console_receiver()) is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url, token = console
        exporter = OTLPSpanExporter(endpoint=url, headers={"authorization": f"Bearer {token}"})
    else:
        exporter = JsonLinesSpanExporter(data_dir / TRACES_DIR / f"{service_name}-{os.getpid()}.jsonl")
    delay = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else SCHEDULE_DELAY_MS  # None: the SDK reads it
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    return provider


def otlp_traces_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """Where spans are sent over OTLP/HTTP (as the exporter works it out from the standard variables), or None when
    they are written to the data dir."""
    env = os.environ if environ is None else environ
    if url := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return url
    if url := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return url.rstrip("/") + "/v1/traces"
    return None


def console_receiver(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The console's OTLP receiver and its token, where a deployment's services send their spans when no tracing
    backend is set (REROUTE_CONSOLE_SPANS_URL, REROUTE_CONSOLE_SPANS_TOKEN: compose and Kubernetes set both, always);
    None when either is empty or a backend is set (OTEL_EXPORTER_OTLP_*): the backend wins."""
    env = os.environ if environ is None else environ
    url, token = env.get("REROUTE_CONSOLE_SPANS_URL", "").strip(), env.get("REROUTE_CONSOLE_SPANS_TOKEN", "").strip()
    if not url or not token or otlp_traces_endpoint(env) is not None:
        return None
    return url, token


def traceparent(span: trace.Span) -> str | None:
    """The W3C traceparent of `span`, to keep beside a referral as its trace (`referral_trace`); None for a span
    that is not recorded."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def referral_trace(stored: str | None) -> Context | None:
    """The context to start later work on a referral in: its kept traceparent; None when none was kept (a referral
    from before versions that keep it), and the work then starts a trace of its own."""
    if not stored:
        return None
    ctx = _propagator.extract({"traceparent": stored})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def caller_links(*callers: trace.Span | Context | None, besides: Context | None = None) -> list[trace.Link]:
    """Links to the callers' own traces (an agency's request, the consumer span a message arrived in), when they
    are not the referral's trace (`besides`) already: the OpenTelemetry way to say "caused by" across traces."""
    skip = trace.get_current_span(besides).get_span_context().trace_id if besides is not None else None
    links = []
    for caller in callers:
        span = caller if isinstance(caller, trace.Span) else trace.get_current_span(caller)
        ctx = span.get_span_context()
        if ctx.is_valid and ctx.trace_id != skip:
            links.append(trace.Link(ctx))
    return links


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried on NATS headers (W3C traceparent), or an empty one."""
    return _propagator.extract(dict(headers or {}))


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to a JSON-lines file (one writer per process)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_span_record(s), separators=(",", ":")) for s in spans]
        try:
            with self._lock, self._path.open("a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        except OSError:
            log.exception("could not write spans to %s", self._path)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None, "an ended SDK span always has a context"
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "name": span.name,
        "service": span.resource.attributes.get("service.name", "?"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [{"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
                  for link in span.links],
    }


@dataclass(frozen=True)
class StoredSpan:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    links: list[dict[str, str]] = field(default_factory=list)
    """Spans of other traces this one was caused by or belongs with (`trace_id`, `span_id`)."""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def read_spans(data_dir: Path) -> Iterator[StoredSpan]:
    """Every span stored in the data dir (skipping a torn last line of a file being written)."""
    for path in sorted((data_dir / TRACES_DIR).glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    yield StoredSpan(**json.loads(line))
                except (ValueError, TypeError):
                    continue


def spans_of_referral(data_dir: Path, referral_id: str) -> list[StoredSpan]:
    """All spans of every trace that touched this referral (its own, and the callers' traces that link to it:
    an agency's requests, say), in start order."""
    spans = list(read_spans(data_dir))
    trace_ids = {s.trace_id for s in spans if s.attributes.get("referral.id") == referral_id}
    trace_ids |= {s.trace_id for s in spans if any(link["trace_id"] in trace_ids for link in s.links)}
    return sorted((s for s in spans if s.trace_id in trace_ids), key=lambda s: s.start_ns)
