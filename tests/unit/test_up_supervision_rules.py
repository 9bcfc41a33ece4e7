"""The rules `reroute up` supervises by: back-off between restarts, exit codes in words, its settings."""

from __future__ import annotations

import pytest

from apps.cli.up import UpSettings
from apps.devstack.processes import Backoff, describe_exit
from shared.settings import ConfigurationError


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
