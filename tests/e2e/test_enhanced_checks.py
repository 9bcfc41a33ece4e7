"""Mentoring children is regulated activity: a mentor with no enhanced check in force takes no case, and a case
held by one (a mentor imported before checks were required, or whose check ran out) is handed on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from services.scheduling.tables import MentorRow
from tests.support.cluster import Cluster, Probe, mentor, ready, referral, service_engine, unique, unique_language
from tests.support.suite import drop_schemas, make_cluster

pytestmark = pytest.mark.e2e


async def test_a_mentor_without_a_check_takes_no_case_until_one_is_recorded(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("V")
    unchecked = {k: v for k, v in mentor(unique("m"), language=lang).items() if k != "vetting"}

    imported = await probe.rpc("scheduling", "mentors.import", {"mentors": [unchecked]})
    assert imported["without_check"] == [unchecked["id"]]
    listed = {m["id"]: m["problems"] for m in (await probe.rpc("scheduling", "mentors.list", {}))["mentors"]}
    assert any("no enhanced check recorded" in p for p in listed[unchecked["id"]])

    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid)
    assert not probe.matching(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)

    checked = {**unchecked, "vetting": {"enhanced_check_expires": "2030-12-31"}}
    assert (await probe.rpc("scheduling", "mentors.import", {"mentors": [checked]}))["without_check"] == []
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    assert booked["mentor_id"] == unchecked["id"]


async def test_a_case_held_by_a_mentor_without_a_check_is_handed_on_when_scheduling_starts(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    """As after an upgrade: the stored mentor has no check (the old code allowed it), and no one re-imports."""
    cluster = await ready(make_cluster(nats_server, tmp_path, "vetting", isolated=True))
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    try:
        lang, agency, arid = unique_language(), unique("yot"), unique("V")
        first, second = mentor(unique("m"), language=lang), mentor(unique("m"), language=lang, max_caseload=0)
        await probe.rpc("scheduling", "mentors.import", {"mentors": [first, second]})
        await probe.submit(agency, referral(arid, language=lang))
        rid = (await probe.wait_for(cluster.subjects.accepted(agency)))[0]["referral_id"]
        booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
        assert booked["mentor_id"] == first["id"]
        await probe.rpc("scheduling", "mentors.import", {"mentors": [{**second, "max_caseload": 10}]})

        cluster.processes.stop("scheduling")
        engine = service_engine(cluster, "scheduling")
        with engine.begin() as conn:  # what an install made before checks were required holds
            row = col(MentorRow.mentor_id) == first["id"]
            record = json.loads(conn.execute(select(col(MentorRow.record)).where(row)).scalar_one())
            record.pop("vetting")
            conn.execute(update(MentorRow).where(row).values(record=json.dumps(record)))
        engine.dispose()
        cluster.processes.start("scheduling")
        await cluster.wait_ready(("scheduling",), timeout=60)

        moved = (await probe.wait_for(cluster.subjects.rescheduled(agency),
                                      lambda e: e["referral_id"] == rid, timeout=30))[0]
        assert (moved["previous_mentor_id"], moved["mentor_id"]) == (first["id"], second["id"])
        assert moved["reason"] == "the mentor is no longer available; a new mentor takes over"
    finally:
        await probe.close()
        cluster.processes.stop_all()
        drop_schemas(cluster)
