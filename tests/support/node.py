"""Node.js tools for the tests: an npm package installed once into the venv (`<venv>/reroute-node/<name>@<version>`)
and scripts run on it with node.

Without node or npm the test is skipped, naming what to install; with REROUTE_REQUIRE_NODE=1 (CI) that is a failure
instead, so a skip cannot pass for a run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRE = "REROUTE_REQUIRE_NODE"
TOOLS = Path(sys.prefix) / "reroute-node"


def _missing(reason: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason}, and {REQUIRE}=1 says it must be", pytrace=False)
    pytest.skip(reason)


def package(name: str, version: str) -> Path:
    """The `node_modules` directory holding `name@version` (installed by npm on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _missing("node and npm are not installed (Debian: apt-get install nodejs npm)")
    home = TOOLS / f"{name.replace('/', '+')}@{version}"
    modules = home / "node_modules"
    if not (modules / name / "package.json").is_file():
        home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--prefix", str(home), "--no-audit", "--no-fund", "--silent",
                               f"{name}@{version}"], capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            _missing(f"npm could not install {name}@{version}: {done.stderr.strip()[-500:]}")
    return modules


def run(script: Path, *args: str, modules: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`node script args…` with `modules` on its require path."""
    return subprocess.run(["node", str(script), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "NODE_PATH": str(modules)})
