"""A real Prometheus for the tests: Debian's `prometheus` and `promtool`, run by the test itself.

Never the Debian service on its default port: the test writes a configuration, picks a free port and keeps the
storage in a temporary directory. Without the binaries the tests are skipped, naming what to install; with
REROUTE_REQUIRE_PROMETHEUS=1 (CI's Prometheus stage) that is a failure instead, so a skip cannot pass for a run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from apps.devstack.local_nats import free_port

REQUIRE = "REROUTE_REQUIRE_PROMETHEUS"


def tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; skips (or, with REROUTE_REQUIRE_PROMETHEUS=1, fails) without it."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (Debian: apt-get install prometheus)"
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason}, and {REQUIRE}=1 says it must be")
    pytest.skip(reason)


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as answer:
            return json.loads(answer.read())

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` gives now: [{"metric": {labels}, "value": [t, "v"]}]."""
        body = self._get("/api/v1/query", query=promql)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value of `promql` now (None when it has no series)."""
        found = self.query(promql)
        assert len(found) <= 1, f"{promql} gave {len(found)} series: {found}"
        return float(found[0]["value"][1]) if found else None

    def targets_up(self) -> dict[str, str]:
        """scrape URL -> health ("up", "down", "unknown") of every active target."""
        body = self._get("/api/v1/targets")
        return {t["scrapeUrl"]: t["health"] for t in body["data"]["activeTargets"]}

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded alerting or recording rule, with its `health` and `query`."""
        return [r for g in self._get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False


@contextmanager
def running_prometheus(workdir: Path, targets: dict[str, str], *, interval: str = "1s",
                       rules: list[Path] | None = None) -> Iterator[Prometheus]:
    """Prometheus scraping each `targets` job (name -> base URL of its /metrics) every `interval`, evaluating the
    alert `rules` files."""
    binary = tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    scrape = [{"job_name": job, "metrics_path": "/metrics", "scrape_interval": interval,
               "static_configs": [{"targets": [url.split("://", 1)[1]]}]} for job, url in targets.items()]
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": interval, "evaluation_interval": interval},
                                  "rule_files": [str(r) for r in rules or []],
                                  "scrape_configs": scrape}))  # JSON is YAML
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
