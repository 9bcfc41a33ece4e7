"""The rule set the risk service ships with (`REROUTE_RULES_FILE` chooses another)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_RULES = Path(__file__).with_name("rules") / "sos-risk-needs.yaml"
