"""The one test that knows the shipped rules' weights: a snapshot of the parsed file, so a change is deliberate.

Every other risk test reads its expected points from the file itself (tests/support/shipped_rules.py); this one
fails when the file's content changes (comments and layout do not count), naming what changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.shipped_rules import RULES_FILE, shipped

ROOT = RULES_FILE.parents[3]
GOLDEN = Path(__file__).with_name("golden") / "sos-risk-needs.json"
UPDATE = "REROUTE_UPDATE_GOLDEN"
HOW_TO_UPDATE = (
    f"If the change is deliberate (weights signed off as the file's header asks): bump `version` in "
    f"{RULES_FILE.relative_to(ROOT)}, run `{UPDATE}=1 .venv/bin/pytest {Path(__file__).relative_to(ROOT)}` and "
    f"commit {GOLDEN.relative_to(ROOT)} with the rules."
)
ABSENT = "<absent>"


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two parsed rule sets differ, one `path: old -> new` line each."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += _differences(old.get(key, ABSENT), new.get(key, ABSENT), f"{path}.{key}")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=True)) for line in _differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path or '.'}: {old!r} -> {new!r}"]


def test_the_shipped_rules_match_their_golden_snapshot() -> None:
    current = json.loads(json.dumps(shipped()))  # the same types a JSON snapshot holds
    if os.environ.get(UPDATE):
        GOLDEN.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"rewrote {GOLDEN}: review its diff and commit it with the rules")
    assert GOLDEN.is_file(), f"no snapshot at {GOLDEN}. {HOW_TO_UPDATE}"
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    changed = _differences(golden, current)
    shown = "\n  ".join(changed[:30]) + (f"\n  ... and {len(changed) - 30} more" if len(changed) > 30 else "")
    assert not changed, f"{RULES_FILE} no longer matches {GOLDEN}:\n  {shown}\n{HOW_TO_UPDATE}"
