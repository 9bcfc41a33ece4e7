"""Reading referral and mentor files for bulk commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from shared.cli.client import CliError


def read_referrals(path: Path) -> list[bytes]:
    """Referral bodies from a JSON list or NDJSON file, each re-encoded as it came (bad rows included)."""
    text = _read(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}: not valid JSON ({exc})") from None
        return [json.dumps(item).encode() for item in items]
    return [line.strip().encode() for line in text.splitlines() if line.strip()]


def read_mentors(path: Path) -> list[dict[str, Any]]:
    text = _read(path)
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: cannot be read as {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise CliError(f"{path}: expected a list of mentors")
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
