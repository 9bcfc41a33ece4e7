"""The batch round places a young person the online order stranded, and never moves a confirmed session; it keeps a
booked young person with their mentor unless moving them places someone waiting or their mentor can no longer keep
them, and then only to as many sessions, as regular; and it books what it planned when a planned time's room has
gone, and a chain of moves whatever order the cases are read in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.scheduling.agency_reasons import MENTOR_UNAVAILABLE, REPLANNED
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.suite import make_cluster, running

pytestmark = pytest.mark.e2e
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of this test's own: the round re-plans every waiting case the services hold, and other tests'
    waiting cases would take part in it, and the counts it reports are the round's, not this test's."""
    c = make_cluster(nats_server, tmp_path_factory.mktemp("batch-round"), f"round{uuid.uuid4().hex[:6]}", isolated=True)
    with running(c):
        yield c


async def _accepted(probe: Probe, cluster: Cluster, agency: str, arid: str) -> str:
    found = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    return str(found[0]["referral_id"])


async def _referred(probe: Probe, cluster: Cluster, agency: str, language: str, outcome: str) -> str:
    """A referral in `language`, once `outcome` (its subject) says what scheduling made of it."""
    arid = unique("R")
    await probe.submit(agency, referral(arid, language=language))
    rid = await _accepted(probe, cluster, agency, arid)
    await probe.wait_for(outcome, lambda e: e["referral_id"] == rid)
    return rid


@pytest.mark.parametrize("confirmed", [False, True])
async def test_the_round_frees_the_only_mentor_who_speaks_a_second_referrals_language(
    cluster: Cluster, probe: Probe, confirmed: bool
) -> None:
    common, rare, agency = unique_language(), unique_language(), unique("yot")
    both, one = unique("a"), unique("b")  # ids sort so the online order picks `both` first
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(both, language=common, max_caseload=1, languages=[common, rare]),
        mentor(one, language=common, max_caseload=1)]})
    first, second = unique("R1"), unique("R2")
    await probe.submit(agency, referral(first, language=common))
    rid1 = await _accepted(probe, cluster, agency, first)
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid1))[0]
    assert booked["mentor_id"] == both
    await probe.submit(agency, referral(second, language=rare))
    rid2 = await _accepted(probe, cluster, agency, second)
    await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid2)
    if confirmed:
        await probe.rpc("scheduling", "session", {"session_id": booked["sessions"][0]["session_id"],
                                                  "action": "confirm"})

    report = await probe.rpc("scheduling", "plan", {})

    if confirmed:
        assert report["placed"] == 0 and report["moved"] == 0, "a confirmed session never moves"
        assert (await probe.rpc("scheduling", "status", {"referral_id": rid1}))["mentor_id"] == both
        return
    assert report["placed"] >= 1 and report["moved"] >= 1
    placed = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid2))[0]
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid1))[0]
    assert placed["mentor_id"] == both
    assert moved["previous_mentor_id"] == both and moved["mentor_id"] == one


def _days(event: dict[str, Any]) -> list[date]:
    return [datetime.fromisoformat(s["start"]).astimezone(LONDON).date() for s in event["sessions"]]


async def test_the_round_keeps_a_booked_young_person_with_their_mentor_though_another_scores_higher(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency = unique_language(), unique("yot")
    current, nearer = unique("m"), unique("m")  # `nearer` lives in the young person's borough: it scores 5 more
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(current, language=lang, boroughs=["Camden", "Hackney"])]})
    rid = await _referred(probe, cluster, agency, lang, cluster.subjects.scheduled(agency))
    booked = await probe.rpc("scheduling", "status", {"referral_id": rid})
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(nearer, language=lang)]})

    report = await probe.rpc("scheduling", "plan", {})

    assert (report["placed"], report["moved"]) == (0, 0), "nobody waits: nothing is worth a new mentor"
    status = await probe.rpc("scheduling", "status", {"referral_id": rid})
    assert status["mentor_id"] == current
    assert [s["session_id"] for s in status["sessions"]] == [s["session_id"] for s in booked["sessions"]]
    assert not probe.matching(cluster.subjects.rescheduled(agency))


async def test_the_round_moves_a_booked_young_person_to_a_lower_score_when_that_places_someone_waiting(
    cluster: Cluster, probe: Probe
) -> None:
    common, rare, agency = unique_language(), unique_language(), unique("yot")
    near, far = unique("m"), unique("m")  # `near` lives in the young people's borough, and alone speaks `rare`
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(near, language=common, max_caseload=1, languages=[common, rare]),
        mentor(far, language=common, max_caseload=1, boroughs=["Camden", "Hackney"])]})
    booked = await _referred(probe, cluster, agency, common, cluster.subjects.scheduled(agency))
    assert (await probe.rpc("scheduling", "status", {"referral_id": booked}))["mentor_id"] == near
    waiting = await _referred(probe, cluster, agency, rare, cluster.subjects.waitlisted(agency))

    report = await probe.rpc("scheduling", "plan", {})

    assert (report["placed"], report["moved"]) == (1, 1), report
    assert (report["moved_to_make_room"], report["moved_mentor_cannot_keep"]) == (1, 0), report
    placed = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == waiting))[0]
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == booked))[0]
    assert placed["mentor_id"] == near
    assert (moved["previous_mentor_id"], moved["mentor_id"], moved["reason"]) == (near, far, REPLANNED)
    status = await probe.rpc("scheduling", "status", {"referral_id": booked})
    assert status["reason"] == "moved by the batch round to make room for another young person"


async def test_the_round_moves_a_young_person_whose_mentor_can_no_longer_keep_them(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency = unique_language(), unique("yot")
    cut, other = unique("m"), unique("m")  # `cut` lives in the young people's borough: the online match picks it
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(cut, language=lang, max_caseload=2), mentor(other, language=lang, boroughs=["Camden", "Hackney"])]})
    rids = [await _referred(probe, cluster, agency, lang, cluster.subjects.scheduled(agency)) for _ in range(2)]
    assert {(await probe.rpc("scheduling", "status", {"referral_id": r}))["mentor_id"] for r in rids} == {cut}
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(cut, language=lang, max_caseload=1)]})

    report = await probe.rpc("scheduling", "plan", {})

    assert (report["moved"], report["moved_to_make_room"], report["moved_mentor_cannot_keep"]) == (1, 0, 1), report
    mentors = {r: (await probe.rpc("scheduling", "status", {"referral_id": r}))["mentor_id"] for r in rids}
    assert sorted(mentors.values()) == sorted([cut, other])
    [moved_rid] = [r for r, m in mentors.items() if m == other]
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == moved_rid))[0]
    assert (moved["previous_mentor_id"], moved["reason"]) == (cut, MENTOR_UNAVAILABLE)
    status = await probe.rpc("scheduling", "status", {"referral_id": moved_rid})
    assert status["reason"] == (f"moved by the batch round: {cut} can no longer keep them "
                                "(places for 1 of the 2 young people they have)")


@pytest.mark.parametrize("away", ["never", "the weeks after the first session", "the first follow-up's day"])
async def test_the_round_moves_a_booked_young_person_only_to_as_many_sessions_on_the_same_cadence(
    cluster: Cluster, probe: Probe, away: str
) -> None:
    # The round wants to move the booked young person: their mentor alone speaks the waiting one's language.
    lang, rare, agency, arid = unique_language(), unique_language(), unique("yot"), unique("R")
    current, other = unique("m"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(current, language=lang, max_caseload=1, languages=[lang, rare])]})
    await probe.submit(agency, referral(arid, language=lang))
    rid = await _accepted(probe, cluster, agency, arid)
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    first, *follow_ups = _days(booked)
    assert booked["mentor_id"] == current and follow_ups
    waiting = await _referred(probe, cluster, agency, rare, cluster.subjects.waitlisted(agency))
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(other, language=lang)]})
    leave = {"the weeks after the first session": (first + timedelta(days=1), first + timedelta(days=45)),
             # and the day after, should the round start the programme a day later: as many sessions, one off the day
             "the first follow-up's day": (follow_ups[0], follow_ups[0] + timedelta(days=1))}.get(away)
    if leave is not None:
        await probe.rpc("scheduling", "mentors.leave", {"mentor_id": other, "first_day": leave[0].isoformat(),
                                                        "last_day": leave[1].isoformat()})

    report = await probe.rpc("scheduling", "plan", {})

    status = await probe.rpc("scheduling", "status", {"referral_id": rid})
    if away == "never":  # as many sessions, as regular: the move goes ahead and the waiting young person is placed
        assert (report["placed"], report["moved"]) == (1, 1), report
        assert status["mentor_id"] == other
        moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]
        assert len(moved["sessions"]) == len(booked["sessions"])
        return
    # with `other` the programme would have fewer sessions, or as many but fewer on the cadence: the young person
    # stays where they are, and the waiting one waits
    assert (report["placed"], report["moved"]) == (0, 0), report
    assert status["mentor_id"] == current
    assert [s["session_id"] for s in status["sessions"]] == [s["session_id"] for s in booked["sessions"]]
    assert not probe.matching(cluster.subjects.rescheduled(agency))
    assert (await probe.rpc("scheduling", "status", {"referral_id": waiting}))["status"] == "waitlisted"


async def test_the_round_books_its_plan_when_a_planned_time_has_no_room_left(cluster: Cluster, probe: Probe) -> None:
    # One session a day, at a one-room hub: the plan's times ignore rooms, so the first day's is another's.
    at_nine = [{"day": d, "start": "09:00", "end": "10:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
    hub, agency, borough = unique("hub"), unique("yot"), "Havering"
    await probe.rpc("scheduling", "venues.import", {"venues": [
        {"id": hub, "name": "One-room hub", "borough": borough, "rooms": 1}]})
    other, common, rare = unique_language(), unique_language(), unique_language()
    elsewhere, both, one = unique("m"), unique("a"), unique("b")  # ids sort so the online order picks `both` first
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(m, language=common, borough=borough, max_caseload=1, availability=at_nine, venues=[hub],
               languages=languages)
        for m, languages in ((elsewhere, [other]), (both, [common, rare]), (one, [common]))]})
    taken_arid, first, second = unique("R0"), unique("R1"), unique("R2")
    await probe.submit(agency, referral(taken_arid, language=other, borough=borough))
    taken = await _accepted(probe, cluster, agency, taken_arid)
    holds = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == taken))[0]
    await probe.rpc("scheduling", "session", {"session_id": holds["sessions"][0]["session_id"], "action": "confirm"})
    await probe.submit(agency, referral(first, language=common, borough=borough))
    rid1 = await _accepted(probe, cluster, agency, first)
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid1))[0]
    assert booked["mentor_id"] == both and _days(booked)[0] > _days(holds)[0]  # the hub's first morning is taken
    await probe.submit(agency, referral(second, language=rare, borough=borough))
    rid2 = await _accepted(probe, cluster, agency, second)
    await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid2)

    report = await probe.rpc("scheduling", "plan", {})

    assert (report["placed"], report["moved"]) == (1, 1), report
    placed = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid2))[0]
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid1))[0]
    assert placed["mentor_id"] == both and moved["mentor_id"] == one
    hub_mornings = [*_starts(holds), *_starts(placed), *_starts(moved)]
    assert len(hub_mornings) == len(set(hub_mornings)), "the hub's one room is never double-booked"
    assert len(moved["sessions"]) == len(booked["sessions"])


async def test_the_round_books_a_chain_of_moves_whatever_order_the_cases_are_read_in(
    cluster: Cluster, probe: Probe
) -> None:
    # Placing `waiting` takes `a`, whose young person moves to `b`, whose young person moves to `c`; the cases are
    # read in the order they came, so the first move is tried before the one that makes room for it.
    first_language, second_language, rare = unique_language(), unique_language(), unique_language()
    agency, a, b, c = unique("yot"), unique("a"), unique("b"), unique("c")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(a, language=first_language, max_caseload=1, languages=[first_language, rare]),
        mentor(b, language=first_language, max_caseload=1, languages=[first_language, second_language])]})
    scheduled, waitlisted = cluster.subjects.scheduled(agency), cluster.subjects.waitlisted(agency)
    rids = {"with a": await _referred(probe, cluster, agency, first_language, scheduled),
            "with b": await _referred(probe, cluster, agency, second_language, scheduled),
            "waiting": await _referred(probe, cluster, agency, rare, waitlisted)}
    assert (await probe.rpc("scheduling", "status", {"referral_id": rids["with a"]}))["mentor_id"] == a
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(c, language=second_language, max_caseload=1)]})

    report = await probe.rpc("scheduling", "plan", {})

    assert (report["placed"], report["moved"]) == (1, 2), report
    mentors = {name: (await probe.rpc("scheduling", "status", {"referral_id": rid}))["mentor_id"]
               for name, rid in rids.items()}
    assert mentors == {"waiting": a, "with a": b, "with b": c}


def _starts(event: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(s["start"]) for s in event["sessions"]]
