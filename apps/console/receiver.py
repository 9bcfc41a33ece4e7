"""The console as the services' OTLP/HTTP receiver: POST /v1/traces with a protobuf ExportTraceServiceRequest, as the
OpenTelemetry exporters send it (opentelemetry-exporter-otlp-proto-http), stored in the console's span store
(shared/span_store.py), which the Traces pages and `reroute trace` read.

Who may post: a sender with the bearer token REROUTE_CONSOLE_SPANS_TOKEN (`SpansSender`); `reroute up` makes one per
run and gives it to the services in that variable, beside REROUTE_CONSOLE_SPANS_URL (as compose and Kubernetes do,
shared/telemetry.py). A browser never sends it by itself, so the
route needs no session and no CSRF token; without the setting the console receives nothing. Bodies are bounded
(MAX_BODY, compressed or not); anything else is a 4xx that says what was wrong."""

from __future__ import annotations

import asyncio
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import Response
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from apps.console.auth import SpansSender
from apps.console.state import state_of
from shared.telemetry import StoredSpan

PREFIX = "/v1/"
"""OTLP/HTTP's paths: a sender is answered in its protocol (never a page), even at a path the console does not serve."""
PATH = f"{PREFIX}traces"
PROTOBUF = "application/x-protobuf"
MAX_BODY = 4 * 1024 * 1024
"""The largest request, after decompression: a full batch of the SDK's exporter (512 spans) is about a tenth."""
_STATUS = {Status.STATUS_CODE_UNSET: "UNSET", Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}

router = APIRouter()


def stored_spans(request: ExportTraceServiceRequest) -> list[StoredSpan]:
    """The spans of an OTLP request, as the span store and the span files keep them; a span without a valid trace or
    span id is refused (400)."""
    found = []
    for resource_spans in request.resource_spans:
        service = next((str(_value(a.value)) for a in resource_spans.resource.attributes if a.key == "service.name"),
                       "?")
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                if len(s.trace_id) != 16 or len(s.span_id) != 8 or len(s.parent_span_id) not in (0, 8):
                    raise HTTPException(400, f"span {s.name!r} has no valid trace id (16 bytes) or span id (8 bytes)")
                found.append(StoredSpan(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex() or None,
                    name=s.name, service=service, start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    status=_STATUS.get(s.status.code, "UNSET"), attributes={a.key: _value(a.value) for a in s.attributes},
                    links=[{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()} for link in s.links]))
    return found


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(v, kind)
    if kind == "array_value":
        return [_value(item) for item in v.array_value.values]
    return None if kind is None else str(getattr(v, kind))


async def _body(request: Request, encoding: str) -> bytes:
    """The request's body, refused (413) past MAX_BODY before or after decompression."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise HTTPException(413, f"At most {MAX_BODY} bytes of spans in one request.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"At most {MAX_BODY} bytes of spans in one request.")
    if encoding in ("", "identity"):
        return bytes(body)
    if encoding != "gzip":
        raise HTTPException(415, f"Content-Encoding {encoding!r}: send gzip or none.")
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflate.decompress(bytes(body), MAX_BODY + 1)
    except zlib.error:
        raise HTTPException(400, "The body is not gzip.") from None
    if len(plain) > MAX_BODY or inflate.unconsumed_tail:
        raise HTTPException(413, f"At most {MAX_BODY} bytes of spans in one request, uncompressed.")
    return plain


@router.post(PATH, dependencies=[Depends(SpansSender())])
async def receive_spans(request: Request, content_type: Annotated[str, Header()] = "",
                        content_encoding: Annotated[str, Header()] = "") -> Response:
    """Spans from a service's OTLP exporter, into the span store."""
    if content_type.split(";")[0].strip().lower() != PROTOBUF:
        raise HTTPException(415, f"Send OTLP spans as {PROTOBUF} (Content-Type {content_type!r}).")
    body = await _body(request, content_encoding.strip().lower())
    try:
        spans = stored_spans(ExportTraceServiceRequest.FromString(body))
    except DecodeError:
        raise HTTPException(400, "The body is not an OTLP ExportTraceServiceRequest.") from None
    await asyncio.to_thread(state_of(request).spans.add, spans)
    return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)
