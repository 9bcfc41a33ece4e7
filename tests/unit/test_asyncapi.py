"""The AsyncAPI document in docs/ is the one FastStream generates from the contracts today."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_asyncapi_document_matches_the_contracts(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.json"
    done = subprocess.run([sys.executable, "-m", "faststream", "docs", "gen", "shared.asyncapi:app", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == json.loads((ROOT / "docs" / "asyncapi.json").read_text()), (
        "regenerate: .venv/bin/faststream docs gen shared.asyncapi:app --out docs/asyncapi.json")
