"""Logs as a container writes them (REROUTE_LOG_FORMAT=json): every line is one JSON object naming its service, the
lines about a referral carry its id and its trace, and no line holds the young person's or the referrer's details."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Probe, launch_cluster, mentor, referral, unique, unique_language
from tests.support.suite import RUN_ID, SERVICES, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
GIVEN, FAMILY, BORN = "Zephyrine", "Quillfeather", "2011-02-17"


@pytest.fixture(scope="module")
def json_cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    name = "jsonlogs"
    c = launch_cluster(nats_server[0], tmp_path_factory.mktemp("json-logs"), namespace=f"t{RUN_ID}{name}",
                       schema_prefix=f"t{RUN_ID}{name}",
                       per_service={s: {"REROUTE_LOG_FORMAT": "json"} for s in SERVICES})
    with running(c):
        yield c


def _lines(cluster: Cluster, service: str) -> list[str]:
    return [line for line in cluster.processes.log_file(service).read_text(encoding="utf-8").splitlines() if line]


def _records(cluster: Cluster, service: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(_lines(cluster, service), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{service}.log line {number} is not JSON: {line[:200]!r}") from None
    return records


async def test_json_logs_follow_a_referral_by_its_id_and_trace_and_hold_no_personal_data(json_cluster: Cluster) -> None:
    s, lang, agency = json_cluster.subjects, unique_language(), unique("yot")
    probe = await Probe.open(json_cluster.nats_url, s)
    try:
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        arid = unique("LOG")
        body = referral(arid, language=lang)
        body["young_person"].update(given_name=GIVEN, family_name=FAMILY, date_of_birth=BORN)
        await probe.submit(agency, body)
        accepted = await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == arid)
        rid = accepted[0]["referral_id"]
        await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == rid, timeout=30)
        headers = next(h for subj, e, h in probe.events if subj == s.accepted(agency) and e.get("referral_id") == rid)
        trace_id = headers["traceparent"].split("-")[1]
    finally:
        await probe.close()

    def about_it(service: str) -> list[dict[str, Any]]:
        return [r for r in _records(json_cluster, service) if r.get("referral_id") == rid]

    await wait_until(lambda: all(about_it(service) for service in SERVICES), timeout=20,
                     what=lambda: f"a line about {rid} in each service's log "
                                  f"({ {svc: len(about_it(svc)) for svc in SERVICES} })")
    for service in SERVICES:
        records = _records(json_cluster, service)
        assert records, f"{service} logged nothing"
        assert all(r["service"] == service and r["level"] and r["message"] for r in records), service
        for r in about_it(service):
            assert r["trace_id"] == trace_id, f"{service}: a line about {rid} is not on its trace: {r}"
            assert len(r["span_id"]) == 16
        text = "\n".join(_lines(json_cluster, service))
        for personal in (GIVEN, FAMILY, BORN, "Test Referrer", "referrer@example.org"):
            assert personal not in text, f"{service}'s log holds {personal!r}"


def test_an_unknown_log_format_is_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "REROUTE_LOG_FORMAT": "xml", "REROUTE_DATA_DIR": str(tmp_path), "NATS_URL": "nats://127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "services.risk"], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert "log_format" in done.stderr and "'text' or 'json'" in done.stderr, done.stderr
