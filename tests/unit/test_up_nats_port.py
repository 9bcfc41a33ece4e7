"""`reroute up`'s own NATS: the port a data dir keeps across starts, and the reload its log confirms."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.cli.up import ReloadLog, kept_port, stable_port
from apps.devstack.local_nats import port_free


@pytest.mark.parametrize("content", ["0", "99999", "-5", "80", "port", "", "4222.5"])
def test_a_port_file_that_holds_no_usable_port_is_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / "nats.port").write_text(content)
    assert kept_port(tmp_path / "nats.port") is None


def test_a_kept_port_is_read_back(tmp_path: Path) -> None:
    (tmp_path / "nats.port").write_text("24680\n")
    assert kept_port(tmp_path / "nats.port") == 24680
    assert kept_port(tmp_path / "missing") is None


def test_a_new_port_is_free_and_below_the_ephemeral_range() -> None:
    port = stable_port()
    assert 20000 <= port <= 32767 and port_free(port)


def test_the_reload_is_read_only_from_what_the_log_gained_since(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.write_text("[INF] Reloaded server configuration\n")  # an earlier reload says nothing of this one
    watching = ReloadLog(log)
    assert watching.said() is None
    with log.open("a") as f:
        f.write("[INF] Reloaded server configuration\n")
    assert watching.said() is True


def test_a_failed_reload_and_a_log_started_afresh_are_seen(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.write_text("x" * 1000)
    failed = ReloadLog(log)
    with log.open("a") as f:
        f.write("[ERR] Failed to reload server configuration: bad\n")
    assert failed.said() is False
    afresh = ReloadLog(log)
    log.write_text("[INF] Reloaded server configuration\n")  # shorter than where it was: read from its start
    assert afresh.said() is True
