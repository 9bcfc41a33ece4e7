"""Mentor calendar feeds: iCalendar behind a revocable token, changes carried by SEQUENCE, no personal data."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from icalendar import Calendar

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.replies import refusal

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def fetch(url: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(_get, url)


async def test_the_feed_round_trips_a_reschedule_and_a_cancellation_and_holds_no_personal_data(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("CAL"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang)]})
    await probe.submit(agency, referral(arid, language=lang, indicators=["peers_offending"]))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    links = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})

    status, body = await fetch(links["ics_url"])
    assert status == 200
    feed = Calendar.from_ical(body)
    events = {str(e["UID"]): e for e in feed.walk("VEVENT")}
    assert {f"{s['session_id']}@reroute" for s in booked["sessions"]} == set(events)
    assert all(int(e["SEQUENCE"]) == 0 for e in events.values())
    assert feed.walk("VTIMEZONE") and str(feed.walk("VTIMEZONE")[0]["TZID"]) == "Europe/London"
    for text in ("Jordan", "Testperson", "2010-05-17", "knife", "referrer@example.org"):
        assert text.encode() not in body, f"{text} must not be in a calendar feed"
    assert rid.encode() in body, "a case reference is"

    cancelled = booked["sessions"][1]["session_id"]
    await probe.rpc("scheduling", "session", {"session_id": cancelled, "action": "cancel", "reason": "Exams"})
    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "very_high", "by": "Ana", "reason": "Threat"})
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]

    after = Calendar.from_ical((await fetch(links["ics_url"]))[1])
    events = {str(e["UID"]): e for e in after.walk("VEVENT")}
    assert str(events[f"{cancelled}@reroute"]["STATUS"]) == "CANCELLED"
    assert int(events[f"{cancelled}@reroute"]["SEQUENCE"]) == 1
    for sid in moved["cancelled"]:
        assert str(events[f"{sid}@reroute"]["STATUS"]) == "CANCELLED" and int(events[f"{sid}@reroute"]["SEQUENCE"]) >= 1
    assert all(f"{s['session_id']}@reroute" in events for s in moved["sessions"])

    json_status, _ = await fetch(links["json_url"])
    assert json_status == 200
    await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id, "revoke": True})
    assert (await fetch(links["ics_url"]))[0] == 404


async def test_no_feed_for_a_mentor_on_temporary_licence(cluster: Cluster, probe: Probe) -> None:
    mentor_id = unique("rotl")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(mentor_id, language="en", kind="rotl", licence={"return_by": "17:00", "exclusion_zones": []})]})
    refused = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})
    assert refusal(refused).code == "refused" and "temporary licence" in refusal(refused).message
