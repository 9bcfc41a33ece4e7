"""How every process starts (shared/process.py): a bad setting ends a service and an app alike at once, exit 2, with
one line naming the setting and what is wrong with it, never its value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["services.risk", "apps.console", "apps.notifier"])
def test_a_bad_setting_refuses_start_naming_it_and_not_its_value(tmp_path: Path, module: str) -> None:
    env = {**os.environ, "REROUTE_DATA_DIR": str(tmp_path / "data"), "NATS_URL": "nats://127.0.0.1:1",
           "REROUTE_LOG_FORMAT": "json-s3cret"}
    done = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60,
                          check=False, cwd=Path(__file__).parents[2])
    name = module.split(".")[1]
    assert done.returncode == 2, done.stderr
    assert f"{name} cannot start: log_format: Input should be 'text' or 'json'" in done.stderr, done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr, done.stderr
