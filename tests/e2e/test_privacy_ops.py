"""A subject access request and an erasure, end to end, through the CLI as an operator would run them (the erasure
reaching the referral's spans too)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from apps.console.settings import URL_FILE
from shared.span_store import SpanStore
from shared.telemetry import TRACES_DIR, spans_of_referral
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.replies import refusal
from tests.support.waiting import wait_until, wait_until_sync

pytestmark = pytest.mark.e2e


@contextmanager
def running_console(cluster: Cluster, data_dir: Path) -> Iterator[None]:
    """The web console as a process of its own on the cluster's NATS, with `data_dir` its own; once it says where it
    serves (console.url), it answers requests too."""
    env = {**os.environ, "NATS_URL": cluster.nats_url, "REROUTE_NAMESPACE": cluster.namespace,
           "REROUTE_DATA_DIR": str(data_dir), "REROUTE_CONSOLE_PORT": "auto"}
    log = (data_dir / "console.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "apps.console"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_sync(lambda: (data_dir / URL_FILE).exists() or proc.poll() is not None, timeout=30, every=0.1,
                        what="the console's address in console.url")
        assert proc.poll() is None, (data_dir / "console.log").read_text()
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return reroute(cluster, cluster.data_dir, *args)  # the services' own data dir, as an operator on that host


async def test_export_gathers_every_service_and_erase_removes_the_person_everywhere(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("SAR")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    body = referral(arid, language=lang)
    body["young_person"]["given_name"] = "Zephyrine"
    await probe.submit(agency, body)
    accepted = (await probe.wait_for(cluster.subjects.recorded(agency), lambda e: e["agency_referral_id"] == arid))[0]
    rid, person = accepted["referral_id"], accepted["person_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

    out = tmp_path / "sar.json"
    exported = await asyncio.to_thread(_cli, cluster, "person", "export", person, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    doc = json.loads(out.read_text())
    assert doc["intake"]["referrals"][0]["referral"]["young_person"]["given_name"] == "Zephyrine"
    assert doc["risk"]["assessments"][0]["referral_id"] == rid
    assert doc["scheduling"]["sessions"] and doc["scheduling"]["cases"][0]["referral_id"] == rid

    await wait_until(lambda: bool(spans_of_referral(cluster.data_dir, rid)), timeout=5, every=0.1,
                     what="the referral's spans in the span files")
    # a console with its own data dir (its volume in compose or Kubernetes), holding the referral's spans too
    console_dir = tmp_path / "console"
    shutil.copytree(cluster.data_dir / TRACES_DIR, console_dir / TRACES_DIR)
    elsewhere = tmp_path / "cli"  # a CLI with no span store of its own: only the console can erase them

    erased = await asyncio.to_thread(reroute, cluster, elsewhere, "person", "erase", person, "--yes")
    assert erased.returncode == 1, erased.stdout + erased.stderr  # no console answers: nothing says the spans went
    for service in ("risk", "scheduling"):
        assert f"{service}: erased (1 referrals" in erased.stdout
    assert re.search(r"spans: not erased: The console service is not running.*run this again once the console runs",
                     erased.stdout), erased.stdout
    assert "intake: not erased yet" in erased.stdout

    with running_console(cluster, console_dir):
        again = await asyncio.to_thread(_cli, cluster, "person", "erase", person, "--yes")  # the erase, repeated
        assert again.returncode == 0, again.stdout + again.stderr
        assert re.search(r"intake: erased \(1 referrals, [1-9]\d* stream messages\)", again.stdout), again.stdout
        assert re.search(r"spans: erased \(1 referrals, [1-9]\d* spans\)", again.stdout), again.stdout
        assert SpanStore.of(console_dir).spans_of_referral(rid) == []  # the console's own store, over NATS
    assert spans_of_referral(cluster.data_dir, rid) == [] == SpanStore.of(cluster.data_dir).spans_of_referral(rid)

    assert refusal(await probe.rpc("intake", "status", {"referral_id": rid})).code == "not_found"
    assert refusal(await probe.rpc("risk", "assessment", {"referral_id": rid})).code == "not_found"
    assert refusal(await probe.rpc("scheduling", "status", {"referral_id": rid})).code == "not_found"
    again = await asyncio.to_thread(_cli, cluster, "person", "export", person)
    assert again.returncode == 1 and "no young person" in again.stdout


async def test_a_schedulers_calendar_shows_first_names_only_on_request_and_each_look_up_is_logged(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("FN"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang)]})
    body = referral(arid, language=lang)
    body["young_person"]["given_name"] = "Oluwaseun"
    await probe.submit(agency, body)
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

    plain = await probe.rpc("scheduling", "calendar", {"mentor_id": mentor_id, "days": 30})
    named = await probe.rpc("scheduling", "calendar", {"mentor_id": mentor_id, "days": 30, "names_for": "kim"})

    assert all(s["first_name"] is None for s in plain["sessions"])
    assert {s["first_name"] for s in named["sessions"]} == {"Oluwaseun"}
    person = (await probe.rpc("intake", "status", {"referral_id": rid}))
    assert person["referral_id"] == rid
    sar = await probe.rpc("intake", "person.export", {"person_id": probe.matching(
        cluster.subjects.recorded(agency), lambda e: e["referral_id"] == rid)[0]["person_id"]})
    log = sar["data"]["personal_data_access_log"]
    assert log and log[0]["asked_by"] == "kim" and mentor_id in log[0]["purpose"]


async def test_closed_referrals_are_purged_after_the_retention_period(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("RET")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)
    assert "by" in refusal(await probe.rpc("scheduling", "close", {"referral_id": rid})).message
    await probe.rpc("scheduling", "close", {"referral_id": rid, "reason": "Moved away", "by": "Kim"})
    cancelled = (await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid))[0]
    assert cancelled["reason"] == "closed by the service; its remaining sessions are cancelled"
    assert (await probe.rpc("scheduling", "status", {"referral_id": rid}))["reason"] == "closed by Kim: Moved away"

    kept = await probe.rpc("intake", "purge", {"days": 30})
    assert (await probe.rpc("intake", "status", {"referral_id": rid}))["referral_id"] == rid, "not yet past retention"
    purged = await probe.rpc("intake", "purge", {"days": 0})

    assert kept["purged"] == 0 and purged["purged"] >= 1
    assert refusal(await probe.rpc("intake", "status", {"referral_id": rid})).code == "not_found"
    assert refusal(await probe.rpc("risk", "assessment", {"referral_id": rid})).code == "not_found"
    assert refusal(await probe.rpc("scheduling", "status", {"referral_id": rid})).code == "not_found"
