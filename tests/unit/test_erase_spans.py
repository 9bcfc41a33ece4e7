"""`reroute person erase`'s span pass (apps/cli/main.py `erase_spans`) against a console that answers from its own
span store: each store is erased once, whether the console shares the CLI's data dir (`reroute up`), keeps its own
(a volume in compose or Kubernetes), or does not run (the data dir's span files alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from apps.cli.client import CliError, ServiceClient
from apps.cli.main import erase_spans
from apps.console.erasure import SpanErasure
from shared.span_store import SpanStore
from shared.telemetry import StoredSpan

REFERRAL = "ref_eee555"


class Console:
    """Answers `spans.erase` as the console does, from its store; or not at all, when none runs."""

    def __init__(self, store: SpanStore | None) -> None:
        self.store = store

    async def call(self, endpoint: Any, request: Any, **_: Any) -> Any:
        if self.store is None:
            raise CliError("The console service is not running.")
        return endpoint.reply.model_validate_json(await SpanErasure(self.store).answer(
            request.model_dump_json().encode()))


def with_spans(data_dir: Path) -> SpanStore:
    store = SpanStore.of(data_dir)
    store.add([StoredSpan("ab" * 16, "cd" * 8, None, "intake accept", "intake", 1, 2, "OK", {"referral.id": REFERRAL})])
    return store


@pytest.mark.parametrize(("console_dir", "stores", "spans"), [("cli", 1, 1), ("console", 2, 2), (None, 1, 1)])
async def test_each_span_store_is_erased_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, console_dir: str | None,
                                              stores: int, spans: int) -> None:
    local = with_spans(tmp_path / "cli")
    console = with_spans(tmp_path / console_dir) if console_dir else None
    erased: list[Path] = []
    erase = SpanStore.erase

    def erasing(store: SpanStore, ids: list[str]) -> int:
        erased.append(store.path)
        return erase(store, ids)

    monkeypatch.setattr(SpanStore, "erase", erasing)
    result = await erase_spans(cast(ServiceClient, Console(console)), [REFERRAL], SpanStore.of(tmp_path / "cli"))

    assert result == {"referrals": 1, "spans": spans}
    assert len(erased) == stores == len(set(erased)), erased
    assert local.spans_of_referral(REFERRAL) == [] and (console is None or console.spans_of_referral(REFERRAL) == [])
