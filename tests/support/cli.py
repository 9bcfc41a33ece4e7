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


def cli_rows(text: str) -> list[list[str]]:
    """The body rows of the rich tables in a command's output, cell by cell, stripped (header, rules and other lines
    left out). A line whose first cell is empty carries on the row above (a cell wrapped onto more lines): its parts
    are joined to that row's cells with a space."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        line = line.rstrip()
        if not (line.startswith("│") and line.endswith("│") and len(line) > 1):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if rows and not cells[0] and len(cells) == len(rows[-1]):
            rows[-1] = [" ".join(filter(None, (above, more))) for above, more in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows
