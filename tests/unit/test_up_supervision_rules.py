"""The rules `reroute up` supervises by: back-off between restarts, exit codes in words, its settings, where the
services send their spans."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from apps.cli.up import LocalStack, UpSettings
from apps.devstack.processes import CONSOLE, SERVICES, Backoff, describe_exit
from shared.settings import ConfigurationError, ServiceSettings
from shared.telemetry import console_receiver


def test_back_off_doubles_up_to_its_cap_and_starts_again_after_a_good_run() -> None:
    backoff = Backoff(first=1, cap=30, healthy_after=60)

    quick_failures = [backoff.next(ran_for=2) for _ in range(7)]
    after_a_good_run = backoff.next(ran_for=60)

    assert quick_failures == [1, 2, 4, 8, 16, 30, 30]
    assert after_a_good_run == 1
    assert backoff.next(ran_for=5) == 2


def test_exit_codes_name_the_signal() -> None:
    assert describe_exit(1) == "1"
    assert describe_exit(-9) == "-9 (SIGKILL)"
    assert describe_exit(-15) == "-15 (SIGTERM)"


def test_up_settings_default_and_refuse_a_hung_bound_shorter_than_a_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REROUTE_UP_PING_SECONDS", raising=False)
    monkeypatch.delenv("REROUTE_UP_HUNG_AFTER_SECONDS", raising=False)
    defaults = UpSettings.load()
    monkeypatch.setenv("REROUTE_UP_PING_SECONDS", "10")
    monkeypatch.setenv("REROUTE_UP_HUNG_AFTER_SECONDS", "5")
    with pytest.raises(ConfigurationError, match="at least REROUTE_UP_PING_SECONDS"):
        UpSettings.load()
    monkeypatch.setenv("REROUTE_UP_PING_SECONDS", "0")
    with pytest.raises(ConfigurationError, match="REROUTE_UP_PING_SECONDS"):
        UpSettings.load()

    assert (defaults.ping_seconds, defaults.hung_after_seconds) == (5, 30)


def test_reroute_up_points_the_services_at_its_console_as_compose_and_kubernetes_do(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One way to name the console: REROUTE_CONSOLE_SPANS_URL and its token, which a tracing backend overrides."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "REROUTE_CONSOLE_HOST",
                 "REROUTE_CONSOLE_TLS_CERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REROUTE_CONSOLE_PORT", "8093")
    stack = LocalStack(ServiceSettings(data_dir=tmp_path), Console())
    given: dict[str, dict[str, str]] = {name: {} for name in (*SERVICES, CONSOLE)}

    url = stack._spans_to_console(given)

    assert url == "http://127.0.0.1:8093/v1/traces"
    for name in SERVICES:
        assert console_receiver(given[name]) == (url, given[CONSOLE]["REROUTE_CONSOLE_SPANS_TOKEN"])
        assert not any(variable.startswith("OTEL_") for variable in given[name])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")
    assert stack._spans_to_console({name: {} for name in (*SERVICES, CONSOLE)}) is None
