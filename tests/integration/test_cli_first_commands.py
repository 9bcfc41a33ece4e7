"""The first commands a new user types."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata


def test_version_prints_the_installed_version() -> None:
    done = subprocess.run([sys.executable, "-m", "apps.cli.main", "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"reroute {metadata.version('reroute')}"
