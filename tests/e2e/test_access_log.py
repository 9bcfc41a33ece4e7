"""The services' HTTP access logs, end to end: a calendar feed's token never reaches scheduling's log."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from tests.support.cluster import Cluster, Probe, mentor, unique, unique_language
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


async def test_a_calendar_feed_token_is_not_written_to_the_log(cluster: Cluster, probe: Probe) -> None:
    mentor_id = unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=unique_language())]})
    links = await probe.rpc("scheduling", "calendar.feed", {"mentor_id": mentor_id})
    token = links["ics_url"].rsplit("/", 1)[1].removesuffix(".ics")
    log = cluster.processes.log_file("scheduling")

    def feed_requests_logged() -> int:
        return log.read_text(errors="replace").count('"GET /v1/calendars/')

    before = feed_requests_logged()
    assert await asyncio.to_thread(_get, links["ics_url"]) == 200
    assert await asyncio.to_thread(_get, links["json_url"]) == 200
    await wait_until(lambda: feed_requests_logged() >= before + 2, timeout=10, every=0.1,
                     what="scheduling's access log lines for the two feed requests")

    text = log.read_text(errors="replace")
    assert token not in text
    assert '"GET /v1/calendars/{token}.ics HTTP/1.1" 200' in text
