"""Mentor feeds as real calendar apps meet them: polled with HEAD and conditional GETs, read by parsers that are
not the library that writes the feed, a re-plan of the same slot shown as an update of the same event, and a
venue only where the mentor opted in and the place is the organisation's own staffed premises."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import vobject

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.suite import make_cluster, running

pytestmark = pytest.mark.e2e


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names in lower case) and body."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


async def request(url: str, method: str = "GET", headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(_request, url, method, headers)


async def booked_mentor(cluster: Cluster, probe: Probe, **mentor_fields: Any) -> tuple[str, dict[str, Any], str]:
    """A new mentor with one scheduled case: (mentor id, the sessions.scheduled event, the agency)."""
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("CAL"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang, **mentor_fields)]})
    await probe.submit(agency, referral(arid, language=lang, indicators=["peers_offending"]))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    return mentor_id, booked, agency


async def test_calendar_apps_poll_with_head_and_conditional_requests(cluster: Cluster, probe: Probe) -> None:
    mentor_id, booked, _ = await booked_mentor(cluster, probe)
    links = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})

    for url in (links["ics_url"], links["json_url"]):
        status, headers, body = await request(url)
        assert status == 200 and body
        etag, modified = headers["etag"], headers["last-modified"]
        head_status, head_headers, head_body = await request(url, "HEAD")
        assert (head_status, head_body) == (200, b""), "HEAD answers with the headers only"
        assert head_headers["etag"] == etag and int(head_headers["content-length"]) == len(body)

        assert (await request(url, headers={"If-None-Match": etag}))[0] == 304
        assert (await request(url, headers={"If-None-Match": '"stale", ' + etag}))[0] == 304
        assert (await request(url, headers={"If-Modified-Since": modified}))[0] == 304
        earlier = format_datetime(parsedate_to_datetime(modified).replace(year=2020), usegmt=True)
        assert (await request(url, headers={"If-Modified-Since": earlier}))[0] == 200
        # If-None-Match wins: a client holding another version gets the feed, whatever its date says
        assert (await request(url, headers={"If-None-Match": '"other"', "If-Modified-Since": modified}))[0] == 200
        assert (await request(url, headers={"If-Modified-Since": "not a date"}))[0] == 200

    etag = (await request(links["ics_url"]))[1]["etag"]
    session = booked["sessions"][0]["session_id"]
    await probe.rpc("scheduling", "session", {"session_id": session, "action": "cancel", "reason": "Exams"})
    status, headers, _ = await request(links["ics_url"], headers={"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag, "a change makes the client's copy stale"


async def test_a_replan_onto_the_same_slot_updates_the_event_instead_of_adding_a_copy(
    cluster: Cluster, probe: Probe
) -> None:
    mentor_id, booked, agency = await booked_mentor(cluster, probe)
    rid = booked["referral_id"]
    links = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})
    await probe.rpc("risk", "override", {"referral_id": rid, "tier": "very_high", "by": "Ana", "reason": "Threat"})
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]

    before = {s["session_id"]: s for s in booked["sessions"]}
    after = {s["session_id"]: s for s in moved["sessions"]}
    kept = before.keys() & after.keys()
    assert kept, "the same mentor at the same time keeps the session (the first one, at least, stays put)"
    assert not kept & set(moved["cancelled"]), "a kept session is not also reported cancelled"
    for sid in kept:
        assert (after[sid]["start"], after[sid]["end"]) == (before[sid]["start"], before[sid]["end"])

    events = vobject.readOne((await request(links["ics_url"]))[2].decode()).vevent_list
    by_uid = {e.uid.value: e for e in events}
    for sid in kept:
        event = by_uid[f"{sid}@reroute"]
        assert event.status.value == "CONFIRMED" and int(event.sequence.value) >= 1, "updated, SEQUENCE bumped"
    live_times = [e.dtstart.value for e in events if e.status.value != "CANCELLED"]
    cancelled_times = {e.dtstart.value for e in events if e.status.value == "CANCELLED"}
    assert len(live_times) == len(set(live_times)), "no two live events at one time"
    assert not cancelled_times & set(live_times), "no cancelled copy beside a live event at the same time"


async def test_venues_show_only_where_the_mentor_opted_in_and_only_staffed_premises(
    cluster: Cluster, probe: Probe
) -> None:
    mentor_id, booked, _ = await booked_mentor(cluster, probe)
    office = booked["sessions"][0]["venue"]
    assert office and office.endswith("office"), booked["sessions"][0]

    plain = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})
    body = (await request(plain["ics_url"]))[2]
    assert not [e for e in vobject.readOne(body.decode()).vevent_list if hasattr(e, "location")]
    assert office.encode() not in body, "without the mentor's opt-in no place is named"
    assert all("venue" not in s for s in json.loads((await request(plain["json_url"]))[2])["sessions"])

    opted = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id, "show_venues": True})
    events = vobject.readOne((await request(opted["ics_url"]))[2].decode()).vevent_list
    assert {e.location.value for e in events if hasattr(e, "location")} == {office}
    assert (await request(plain["ics_url"]))[0] == 404, "issuing a new link revoked the old one"


@pytest.fixture
def alone(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of the test's own: registering a venue in a borough replaces the default office there for every
    mentor of that borough, which would change other tests' bookings."""
    with running(make_cluster(nats_server, tmp_path_factory.mktemp("venues"), f"venues{uuid.uuid4().hex[:6]}",
                              isolated=True)) as c:
        yield c


@pytest.fixture
async def alone_probe(alone: Cluster) -> AsyncIterator[Probe]:
    p = await Probe.open(alone.nats_url, alone.subjects)
    try:
        yield p
    finally:
        await p.close()


async def test_a_venue_that_is_not_staffed_premises_is_never_named(alone: Cluster, alone_probe: Probe) -> None:
    cluster, probe = alone, alone_probe
    venue_id, borough = unique("hall"), "Hackney"
    await probe.rpc("scheduling", "venues.import", {"venues": [
        {"id": venue_id, "name": f"Community hall {venue_id}", "borough": borough, "staffed": False}]})
    mentor_id, booked, _ = await booked_mentor(cluster, probe, venues=[venue_id])
    assert booked["sessions"][0]["venue"] == f"Community hall {venue_id}"
    opted = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id, "show_venues": True})
    body = (await request(opted["ics_url"]))[2]
    assert venue_id.encode() not in body and b"LOCATION" not in body


@pytest.fixture(scope="module")
def icaljs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ical.js (Mozilla's parser, as in Thunderbird) installed from npm into a scratch directory."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("Node.js and npm are not installed: the ical.js check of the feed needs them")
    where = tmp_path_factory.mktemp("icaljs")
    done = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(where),
                           "ical.js@2"], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"npm could not install ical.js: {done.stderr[-2000:]}"
    yield where


READ_WITH_ICALJS = """
const ICAL = require("ical.js");
let text = "";
process.stdin.on("data", (chunk) => (text += chunk));
process.stdin.on("end", () => {
  const calendar = new ICAL.Component(ICAL.parse(text));
  for (const zone of calendar.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(new ICAL.Timezone(zone));
  }
  const events = calendar.getAllSubcomponents("vevent").map((v) => {
    const e = new ICAL.Event(v);
    return { uid: e.uid, sequence: e.sequence, status: v.getFirstPropertyValue("status"),
             start: e.startDate.toJSDate().toISOString(), end: e.endDate.toJSDate().toISOString(),
             tzid: e.startDate.zone.tzid, summary: e.summary };
  });
  console.log(JSON.stringify(events));
});
"""


async def test_the_feed_reads_the_same_in_two_independent_parsers(
    cluster: Cluster, probe: Probe, icaljs: Path
) -> None:
    mentor_id, booked, _ = await booked_mentor(cluster, probe)
    links = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})
    body = (await request(links["ics_url"]))[2]

    run = await asyncio.to_thread(
        subprocess.run, ["node", "-e", READ_WITH_ICALJS], check=False, input=body.decode(), capture_output=True,
        text=True, cwd=icaljs, env={"NODE_PATH": str(icaljs / "node_modules"), "PATH": "/usr/bin:/bin",
                                                  # far from London, so a time read as floating would show
                                                  "TZ": "America/New_York"}, timeout=60)
    assert run.returncode == 0, run.stderr
    from_icaljs = {e["uid"]: e for e in json.loads(run.stdout)}
    from_vobject = {e.uid.value: e for e in vobject.readOne(body.decode()).vevent_list}

    expected = {f"{s['session_id']}@reroute": s for s in booked["sessions"]}
    assert set(from_icaljs) == set(from_vobject) == set(expected)
    for uid, session in expected.items():
        start = datetime.fromisoformat(session["start"])
        assert from_icaljs[uid]["start"] == start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"), \
            "ical.js resolves the Europe/London local time to the instant booked"
        assert from_icaljs[uid]["tzid"] == "Europe/London" and from_icaljs[uid]["status"] == "CONFIRMED"
        assert from_vobject[uid].dtstart.value == start, "so does vobject"
        assert "Europe/London" in repr(from_vobject[uid].dtstart.value.tzinfo), "in the feed's own VTIMEZONE"
