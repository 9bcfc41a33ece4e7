"""The reroute CLI as an operator runs it: a separate process against a test cluster's services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.cluster import Cluster


def reroute(cluster: Cluster, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `reroute ARGS...` on the cluster's NATS and namespace with `data_dir` as its data dir; never raises on a
    non-zero exit (tests assert on returncode, stdout and stderr). Wide enough that rich does not wrap lines."""
    env = {**os.environ, "NATS_URL": cluster.nats_url, "REROUTE_NAMESPACE": cluster.namespace,
           "REROUTE_DATA_DIR": str(data_dir), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "apps.cli.main", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=90)
