"""Tracing set-up shared by all services, and the local span store `reroute trace` reads.

With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set, spans go out over OTLP/HTTP. Otherwise they
are appended as JSON lines to <data dir>/traces/<service>-<pid>.jsonl. Span attributes carry ids and
outcomes only: never a name, birth date, address or free text.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)
_propagator = TraceContextTextMapPropagator()
TRACES_DIR = "traces"


def setup_tracing(service_name: str, data_dir: Path) -> TracerProvider:
    """A tracer provider for this process, exporting over OTLP when configured, else to the data dir."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = JsonLinesSpanExporter(data_dir / TRACES_DIR / f"{service_name}-{os.getpid()}.jsonl")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


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
    """All spans of the trace(s) that touched this referral, in start order."""
    spans = list(read_spans(data_dir))
    trace_ids = {s.trace_id for s in spans if s.attributes.get("referral.id") == referral_id}
    return sorted((s for s in spans if s.trace_id in trace_ids), key=lambda s: s.start_ns)
