"""The traces page's arithmetic: traces summed up from their spans, and a referral's trace laid out as a waterfall."""

from __future__ import annotations

from apps.console.pages.traces import summaries, waterfalls
from shared.telemetry import StoredSpan

MS = 1_000_000


def span(trace: str, span_id: str, parent: str | None, service: str, start_ms: int, end_ms: int, *,
         status: str = "UNSET", referral: str | None = None, links: list[dict[str, str]] | None = None) -> StoredSpan:
    return StoredSpan(trace, span_id, parent, f"{service} work", service, start_ms * MS, end_ms * MS, status,
                      {"referral.id": referral} if referral else {}, links or [])


SPANS = [
    span("a" * 32, "1", None, "intake", 0, 10, referral="ref_aaa111"),
    span("a" * 32, "2", "1", "risk", 20, 50, referral="ref_aaa111"),
    span("a" * 32, "3", "2", "scheduling", 60, 100, referral="ref_aaa111", status="ERROR"),
    span("a" * 32, "4", "1", "intake", 5, 8),
    span("b" * 32, "5", None, "intake", 200, 201, links=[{"trace_id": "a" * 32, "span_id": "1"}]),
]


def test_each_trace_is_summed_up_newest_first_with_its_services_errors_and_referrals() -> None:
    newest, oldest = summaries(SPANS)
    assert newest.trace_id == "b" * 32 and newest.errors == 0 and newest.referral_ids == []
    assert oldest.name == "intake work" and oldest.services == ["intake", "risk", "scheduling"]
    assert (oldest.duration_ms, oldest.spans, oldest.errors, oldest.referral_ids) == (100.0, 4, 1, ["ref_aaa111"])


def test_a_waterfall_puts_each_span_under_its_parent_on_the_trace_s_own_time_line() -> None:
    own, linked = waterfalls(SPANS)
    assert [(b.span.span_id, b.depth) for b in own.bars] == [("1", 0), ("4", 1), ("2", 1), ("3", 2)]
    assert [(b.x, b.width) for b in own.bars] == [(0, 100), (50, 30), (200, 300), (600, 400)]
    assert own.duration_ms == 100.0 and own.linked == []
    assert linked.linked == ["a" * 32] and linked.bars[0].width == 1000
