"""What an agency reads of a session's time, off the wire and over HTTP: Europe/London local time with its offset
(the contract's promise), the same instant the calendar shows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.cluster import Cluster, Probe, intake_url, mentor, referral, register_agency, unique, unique_language
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
LONDON = ZoneInfo("Europe/London")


def in_london(text: str) -> bool:
    """Whether an ISO 8601 time is written as London's local time with London's offset at that instant."""
    when = datetime.fromisoformat(text)
    return not text.endswith("Z") and when.utcoffset() == when.astimezone(LONDON).utcoffset()


async def test_session_times_reach_the_agency_in_london_time(cluster: Cluster, probe: Probe) -> None:
    lang, agency = unique_language(), unique("yot")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    key = await register_agency(probe, agency)
    status: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        posted = await http.post("/v1/referrals", json=referral(unique("T"), language=lang))
        assert posted.status_code == 202, posted.text
        scheduled = (await probe.wait_for(cluster.subjects.scheduled(agency),
                                          lambda e: e["referral_id"] == posted.json()["referral_id"]))[0]

        async def scheduled_over_http() -> bool:
            status.update((await http.get(posted.json()["status_url"])).json())
            return status.get("status") == "scheduled"

        await wait_until(scheduled_over_http, timeout=15, every=0.2, what=lambda: f"status scheduled ({status})")

    for session in scheduled["sessions"]:
        assert in_london(session["start"]) and in_london(session["end"]), session
    assert in_london(status["first_session"]), status
    first = datetime.fromisoformat(scheduled["sessions"][0]["start"])
    assert datetime.fromisoformat(status["first_session"]) == first, "the same instant through both doors"
