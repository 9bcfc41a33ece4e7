"""The alert rules shipped in deploy/prometheus/ are valid and do what their unit tests say, checked by Debian's
promtool (skipped without it, a failure with REROUTE_REQUIRE_PROMETHEUS=1). That they name metrics the services
really export is checked against live services in tests/e2e/test_metrics_prometheus.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.prometheus import tool

pytestmark = pytest.mark.prometheus
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=RULES, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_rules_are_valid() -> None:
    checked = _promtool("check", "rules", "reroute-alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


def test_each_alert_fires_when_its_unit_tests_say_and_not_otherwise() -> None:
    tested = _promtool("test", "rules", "reroute-alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_example_configuration_loads_the_rules() -> None:
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
