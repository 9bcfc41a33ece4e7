"""Traces: the recent ones, the slowest and those with errors, and one referral's traces as a waterfall across
intake, risk and scheduling. Read from the console's indexed span store (shared/span_store.py): the spans the services
post to its OTLP receiver (apps/console/receiver.py), and the span files they write to <data dir>/traces when no
console receives them, imported as each page is opened (`reroute trace` reads the same).

Who sees what (docs/security.md, *The web console*):
- **Operators** (this area's guard) have every page here: the lists, which range over every referral's traces and
  over traces of no referral, any one trace by its id, and one referral's traces by its id, with where the spans are
  kept on the server.
- **Whoever may open a referral's page** (its area's guard: schedulers; apps/console/pages/referrals.py) may open
  that referral's waterfall from it, `/referrals/<id>/trace`, served by `referral_waterfall` under that area's guard,
  not this one's: each route keeps one guard, and the lists and one trace by id stay operators'. It shows them no
  more than the page they came from: the referral's own traces and the callers' traces linked to them (an agency's
  request, which may carry the agency's other referrals: a scheduler may open each of those too), without any
  referral id but this one.
- **What a waterfall shows**, to either: each span's name (chosen by the code: fixed words, a service, a NATS subject,
  an HTTP route's template, an outcome), service, start, duration, whether it ended in error, and its
  `reroute.outcome` when that is a code word (`OUTCOME`). No other attribute reaches the template (`Bar` carries the
  span without them), and there is no error text to show: the store keeps no span's status description, events or
  recorded exceptions (the receiver and the span files' exporter drop them, shared/telemetry.py), so a fault's
  message, which could quote a submission, never gets here. Spans carry pseudonymous ids and outcomes, never a child's
  name, birth date, address or free text (STYLE.md), and a span posted with one in those places shows none of it
  (tests/browser/test_console_abuse.py).
- In a deployment with a tracing backend (`console_trace_url`), each waterfall links its traces there, as for
  operators: the backend's own log-in decides who sees them there.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from apps.console.areas import Area, area
from apps.console.auth import Me, MySession
from apps.console.client import Person
from apps.console.rendering import LONDON, render
from apps.console.sessions import Session
from apps.console.state import state_of
from shared.contracts.rpc import Role
from shared.span_store import SpanStore
from shared.telemetry import StoredSpan, otlp_traces_endpoint

AREA = area("traces", "Traces", {Role.OPERATOR})
LISTED = 20
"""Traces in each list of the page."""
REFERRAL_ID = re.compile(r"ref_[0-9a-f]{6,32}")
TRACE_ID = re.compile(r"[0-9a-f]{32}")
OUTCOME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A span's `reroute.outcome` as the services write it (`accepted`, `already_closed`, `not_found`): anything else, free
text say, is not shown."""


@dataclass(frozen=True)
class TraceSummary:
    """One trace in a line: its first span's name, the services it crossed, when, how long, and its errors."""

    trace_id: str
    name: str
    services: list[str]
    start_ns: int
    duration_ms: float
    spans: int
    errors: int
    referral_ids: list[str]


@dataclass(frozen=True)
class Bar:
    """One span of a waterfall: its depth in its tree, and where its bar starts and ends (0 to 1000 of the whole);
    `span` without its attributes (a page shows none but the outcome)."""

    span: StoredSpan
    depth: int
    offset_ms: float
    x: int
    width: int
    outcome: str


@dataclass(frozen=True)
class Waterfall:
    trace_id: str
    duration_ms: float
    bars: list[Bar]
    linked: list[str]
    """Other traces its spans link to (an agency's request, say)."""


def summaries(spans: Iterable[StoredSpan]) -> list[TraceSummary]:
    """Every trace of these spans, newest first."""
    by_trace: dict[str, list[StoredSpan]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    found = []
    for trace_id, members in by_trace.items():
        members.sort(key=lambda s: s.start_ns)
        ids = {s.span_id for s in members}
        root = next((s for s in members if s.parent_id not in ids), members[0])
        start, end = members[0].start_ns, max(s.end_ns for s in members)
        found.append(TraceSummary(
            trace_id=trace_id, name=root.name, services=sorted({s.service for s in members}), start_ns=start,
            duration_ms=(end - start) / 1e6, spans=len(members), errors=sum(s.status == "ERROR" for s in members),
            referral_ids=sorted({str(s.attributes["referral.id"]) for s in members if "referral.id" in s.attributes})))
    return sorted(found, key=lambda t: t.start_ns, reverse=True)


def waterfalls(spans: list[StoredSpan]) -> list[Waterfall]:
    """Each trace of these spans as a waterfall, in the order the traces started: every span under its parent, the
    children in start order, each bar placed on the trace's own time line."""
    by_trace: dict[str, list[StoredSpan]] = {}
    for s in sorted(spans, key=lambda s: s.start_ns):
        by_trace.setdefault(s.trace_id, []).append(s)
    found = []
    for trace_id, members in by_trace.items():
        ids = {s.span_id for s in members}
        children: dict[str | None, list[StoredSpan]] = {}
        for s in members:
            children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
        start, end = members[0].start_ns, max(s.end_ns for s in members)
        whole = max(end - start, 1)
        bars: list[Bar] = []

        def add(span: StoredSpan, depth: int, *, start: int = start, whole: int = whole, bars: list[Bar] = bars,
                children: dict[str | None, list[StoredSpan]] = children) -> None:
            x = round((span.start_ns - start) * 1000 / whole)
            bars.append(Bar(replace(span, attributes={}), depth, (span.start_ns - start) / 1e6, x,
                            max(2, min(1000 - x, round((span.end_ns - span.start_ns) * 1000 / whole))),
                            outcome_of(span)))
            for child in children.get(span.span_id, []):
                add(child, depth + 1)

        for root in children.get(None, []):
            add(root, 0)
        linked = sorted({link["trace_id"] for s in members for link in s.links} - {trace_id})
        found.append(Waterfall(trace_id, whole / 1e6, bars, linked))
    return found


def outcome_of(span: StoredSpan) -> str:
    """The span's outcome when it is a code word (`OUTCOME`), else nothing."""
    outcome = span.attributes.get("reroute.outcome")
    return outcome if isinstance(outcome, str) and OUTCOME.fullmatch(outcome) else ""


def started(start_ns: int) -> str:
    """When a span started, as people here read it, to the second."""
    return datetime.fromtimestamp(start_ns / 1e9, UTC).astimezone(LONDON).strftime("%a %d %b %H:%M:%S")


def _store(request: Request) -> SpanStore:
    return state_of(request).spans


def _context(request: Request, *, shown_in: Area = AREA) -> dict[str, Any]:
    where: Path = _store(request).path
    return {"area": shown_in, "otlp": otlp_traces_endpoint(), "where": where, "files": where.parent, "started": started,
            "trace_url": state_of(request).settings.console_trace_url}


def lists(store: SpanStore) -> tuple[list[TraceSummary], list[TraceSummary], list[TraceSummary]]:
    """The recent traces, the slowest and those with errors, LISTED of each (new span files imported first)."""
    store.import_files()
    recent, slowest, failed = store.recent(LISTED), store.slowest(LISTED), store.failed(LISTED)
    by_id = {t.trace_id: t for t in summaries(store.spans_of_traces([*recent, *slowest, *failed]))}
    return ([by_id[t] for t in recent if t in by_id], [by_id[t] for t in slowest if t in by_id],
            [by_id[t] for t in failed if t in by_id])


def of_referral(store: SpanStore, referral_id: str) -> list[StoredSpan]:
    store.import_files()
    return store.spans_of_referral(referral_id)


@AREA.router.get("")
async def recent(request: Request, me: Me, session: MySession) -> Response:
    """The recent traces, the slowest, and those with errors."""
    latest, slowest, failed = await asyncio.to_thread(lists, _store(request))
    return render(request, "traces/page.html", session=session, recent=latest, slowest=slowest, failed=failed,
                  **_context(request))


async def referral_waterfall(request: Request, me: Person, session: Session, referral_id: str, *,
                             shown_in: Area) -> Response:
    """Every trace of one referral (its own, and the callers' traces linked to it) as waterfalls, on a page of
    `shown_in`, whose guard let `me` in: the operators' links (every trace, one by id, where spans are kept) only for
    those who may open them."""
    spans = await asyncio.to_thread(of_referral, _store(request), referral_id)
    return render(request, "traces/waterfall.html", session=session, title=f"Trace of referral {referral_id}",
                  referral_id=referral_id, all_traces=me.may(AREA.roles),
                  problem=None if spans else f"No spans of {referral_id} here.", falls=waterfalls(spans),
                  status_code=200 if spans else 404, **_context(request, shown_in=shown_in))


@AREA.router.get("/referral")
async def referral(request: Request, me: Me, session: MySession, referral_id: str = "") -> Response:
    """Every trace of one referral, found by its id."""
    referral_id = referral_id.strip()
    if not REFERRAL_ID.fullmatch(referral_id):
        return render(request, "traces/waterfall.html", session=session, status_code=400, title=None,
                      all_traces=True, problem="Give a referral id, such as ref_1a2b3c4d5e6f7a8b.", falls=[],
                      **_context(request))
    return await referral_waterfall(request, me, session, referral_id, shown_in=AREA)


@AREA.router.get("/{trace_id}")
async def one_trace(request: Request, me: Me, session: MySession, trace_id: str) -> Response:
    """One trace as a waterfall."""
    if not TRACE_ID.fullmatch(trace_id):
        return render(request, "traces/waterfall.html", session=session, status_code=404, title=None,
                      all_traces=True, problem="That is not a trace id (32 hexadecimal digits).", falls=[],
                      **_context(request))
    spans = await asyncio.to_thread(_store(request).spans_of_traces, [trace_id])
    return render(request, "traces/waterfall.html", session=session, title=f"Trace {trace_id}", all_traces=True,
                  problem=None if spans else f"No spans of trace {trace_id} here.", falls=waterfalls(spans),
                  status_code=200 if spans else 404, **_context(request))
