"""The JSON log format: one object per line, with the trace of the span in force or of the event a line is about."""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.sdk.trace import TracerProvider

from shared.logs import JsonFormatter, about

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _line(record: logging.LogRecord) -> dict[str, object]:
    formatted = JsonFormatter("risk").format(record)
    assert "\n" not in formatted, "one record, one line"
    line: dict[str, object] = json.loads(formatted)
    return line


def _record(message: str, *args: object, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord("shared.outbox", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_line_names_its_service_and_carries_the_current_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        line = _line(_record("assessed %s", "ref_1"))
    ctx = span.get_span_context()
    assert line["service"] == "risk" and line["level"] == "INFO" and line["message"] == "assessed ref_1"
    assert (line["trace_id"], line["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert "referral_id" not in line


def test_a_line_about_an_event_carries_its_trace_and_referral_outside_any_span() -> None:
    line = _line(_record("published", **about(headers={"traceparent": TRACEPARENT}, referral_id="ref_2")))
    assert (line["trace_id"], line["span_id"], line["referral_id"]) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "ref_2")


def test_no_trace_no_trace_fields_and_a_traceback_stays_inside_the_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = _line(record)
    assert "trace_id" not in line and "span_id" not in line
    assert "ValueError: boom" in str(line["exception"])
    assert about(headers={"traceparent": "garbage"}) == {}
