"""Logging for every service process: JSON lines for containers and log collectors, readable text on a terminal.

`REROUTE_LOG_FORMAT` chooses: `text` (the default: `reroute up` and a developer's terminal, and the files `reroute
up` keeps in `<data dir>/logs/`) or `json` (one object per line; the container image sets it). Explicit rather than
guessed from whether stderr is a terminal: a service's stderr is never a terminal under `reroute up` either, and
its logs there are read by people.

A JSON line holds `time` (UTC), `level`, `service`, `logger`, `message`, and where they apply `trace_id` and `span_id`
(the current span's, or those of the message or event the line is about), `referral_id` (a line about one referral)
and `exception`. Nothing is taken from a message body but a referral id, and messages name ids and outcomes, never
a person's name, birth date, address or free text (STYLE.md, habit 12).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

LogFormat = Literal["text", "json"]
_propagator = TraceContextTextMapPropagator()


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id, span_id = getattr(record, "trace_id", None), getattr(record, "span_id", None)
        if trace_id is None:
            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid:
                trace_id, span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
        if trace_id:
            line["trace_id"], line["span_id"] = trace_id, span_id
        if referral_id := getattr(record, "referral_id", None):
            line["referral_id"] = referral_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def about(*, span: trace.Span | None = None, headers: Mapping[str, str] | None = None,
          referral_id: str | None = None) -> dict[str, str]:
    """`extra=` for a line about one message or event: its trace and span (from `span`, else the W3C traceparent in
    `headers`) and its referral."""
    fields: dict[str, str] = {}
    ctx = span.get_span_context() if span is not None else None
    if (ctx is None or not ctx.is_valid) and headers:
        ctx = trace.get_current_span(_propagator.extract(dict(headers))).get_span_context()
    if ctx is not None and ctx.is_valid:
        fields["trace_id"], fields["span_id"] = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
    if referral_id:
        fields["referral_id"] = referral_id
    return fields


def configure_logging(service: str, level: str, fmt: LogFormat = "text") -> None:
    """The root logger writes to stderr in `fmt`; every other logger (FastStream's, uvicorn's) goes through it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else
                         logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
