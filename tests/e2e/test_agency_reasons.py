"""What an agency is told when its referral's sessions move, are cancelled or wait, through every door it has (its
events and its HTTP status view): what happened and what happens next, never a mentor's vetting or licence status,
which mentor it concerns, or an operator's name or note. Schedulers keep the full reason (scheduling's status reply,
`reroute status`)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.support.agency_view import assert_told_neutrally
from tests.support.cli import reroute
from tests.support.cluster import (
    Cluster,
    Probe,
    mentor,
    referral,
    register_agency,
    unique,
    unique_language,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
BARRED = {  # how a mentor comes to be barred from mentoring, and what schedulers are told of it
    "expired check": ({}, {"vetting": {"enhanced_check_expires": (date.today() - timedelta(days=1)).isoformat()}},
                      "enhanced check expired on"),
    "suspended licence": ({"kind": "rotl", "licence": {"return_by": "20:00"}},
                          {"kind": "rotl", "licence": {"return_by": "20:00", "suspended": True}},
                          "licence is suspended"),
}


async def _referred_over_http(probe: Probe, http: httpx.AsyncClient, cluster: Cluster, language: str,
                              ) -> tuple[str, str, str, str]:
    """An agency with an API key refers a young person over HTTPS; (agency, key, referral id, status URL) once
    scheduling has booked them."""
    agency = unique("yot")
    key = await register_agency(probe, agency)
    posted = await http.post("/v1/referrals", json=referral(unique("AR"), language=language),
                             headers={"Authorization": f"Bearer {key}"})
    assert posted.status_code == 202, posted.text
    rid = posted.json()["referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)
    return agency, key, rid, posted.json()["status_url"]


async def _agency_status(http: httpx.AsyncClient, url: str, key: str, want: str) -> dict[str, Any]:
    """The agency's HTTP status view, once it says `want`."""
    last: dict[str, Any] = {}

    async def reached() -> bool:
        answer = await http.get(url, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        last.update(answer.json())
        return bool(last["status"] == want)

    await wait_until(reached, timeout=15, every=0.2, what=lambda: f"status {want} (it is {last})")
    return last


@pytest.mark.parametrize("another_mentor", [True, False], ids=["moved", "waiting"])
@pytest.mark.parametrize("bar", list(BARRED))
async def test_a_mentor_who_may_no_longer_mentor_is_neither_named_nor_explained_to_the_agency(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient, bar: str, another_mentor: bool
) -> None:
    lang, first_id, second_id = unique_language(), unique("m-first"), unique("m-second")
    allowed, barred, detail = BARRED[bar]
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(first_id, language=lang, **allowed)]})
    agency, key, rid, status_url = await _referred_over_http(probe, http, cluster, lang)

    others = [mentor(second_id, language=lang)] if another_mentor else []
    imported = await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(first_id, language=lang, **barred), *others]})
    assert imported["cases_moved"] == 1, imported

    if another_mentor:
        moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]
        assert moved["mentor_id"] == second_id
        assert moved["reason"] == "the mentor is no longer available; a new mentor takes over"
        told = [moved["reason"]]
    else:
        cancelled = (await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid))[0]
        waiting = (await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid))[0]
        assert cancelled["reason"].startswith("the mentor is no longer available; no mentor available yet")
        assert waiting["reason"].startswith("no mentor available yet") and "keeps looking" in waiting["reason"]
        seen = await _agency_status(http, status_url, key, "waitlisted")
        assert seen["reason"] == cancelled["reason"], "why it waits, as the events said it"
        told = [cancelled["reason"], waiting["reason"], seen["reason"]]
    for reason in told:
        assert_told_neutrally(reason, first_id)

    kept = await probe.rpc("scheduling", "status", {"referral_id": rid})
    assert detail in kept["reason"] and first_id in kept["reason"], "schedulers keep the full reason"


async def test_a_closure_tells_the_agency_only_that_the_service_closed_it(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    lang = unique_language()
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    agency, key, rid, status_url = await _referred_over_http(probe, http, cluster, lang)

    await probe.rpc("scheduling", "close", {"referral_id": rid, "by": "Kim Operator",
                                            "reason": "Mentor's licence revoked after a recall"})

    cancelled = (await probe.wait_for(cluster.subjects.cancelled(agency), lambda e: e["referral_id"] == rid))[0]
    seen = await _agency_status(http, status_url, key, "closed")
    for reason in (cancelled["reason"], seen["reason"]):
        assert reason == "closed by the service; its remaining sessions are cancelled"
    shown = await asyncio.to_thread(reroute, cluster, cluster.data_dir, "status", rid)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Closed: closed by Kim Operator: Mentor's licence revoked after a recall" in shown.stdout, shown.stdout
    assert "The agency is told: closed by the service" in shown.stdout
