"""Each hard constraint, through the real services: the mentor who would break it is never booked."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.agency_view import assert_told_neutrally
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language

pytestmark = pytest.mark.e2e
LONDON = ZoneInfo("Europe/London")
TODAY = datetime.now(LONDON).date()
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def rotl(**licence: Any) -> dict[str, Any]:
    return {"kind": "rotl", "licence": {"return_by": "20:00", "exclusion_zones": [], **licence}}


# (label, mentor changes, referral changes, words expected in the waitlist reason schedulers see)
REFUSED = [
    ("expired check", {"vetting": {"enhanced_check_expires": (TODAY - timedelta(days=1)).isoformat()}}, {},
     "expired enhanced check"),
    ("suspended licence", rotl(suspended=True), {}, "suspended licence"),
    ("licence not yet valid", rotl(valid_from=(TODAY + timedelta(days=40)).isoformat()), {}, "no free slot"),
    ("licence ended", rotl(valid_to=(TODAY - timedelta(days=1)).isoformat()), {}, "no free slot"),
    ("no permitted day", {**rotl(days=["mon"]), "availability": [{"day": "tue", "start": "09:00", "end": "17:00"}]},
     {}, "no free slot"),
    ("return time with travel", {**rotl(return_by="17:00", travel_minutes=90),
                                 "availability": [{"day": d, "start": "14:30", "end": "15:30"} for d in ALL_DAYS]},
     {}, "no free slot"),
    ("licence window start", {**rotl(window_start="16:00"),
                              "availability": [{"day": d, "start": "09:00", "end": "15:00"} for d in ALL_DAYS]},
     {}, "no free slot"),
    ("rotl on a high tier", rotl(), {"indicators": ["weapon_carrying"]}, "only low and medium tiers"),
    ("new volunteer on a high tier", {"kind": "volunteer"}, {"indicators": ["weapon_carrying"]},
     "only low and medium tiers"),
    ("risk-weighted points", {"max_caseload": 5, "max_points": 1.0}, {"indicators": ["weapon_carrying"]},
     "risk-weighted load"),
    ("conflict register", {"conflicts": ["Hackney"]}, {}, "conflict-register match"),
    ("exclusion zone", rotl(exclusion_zones=["Dalston"]), {"unsafe_areas": ["Dalston"]}, "exclusion zone"),
    ("requested gender", {"gender": "male"}, {"preferences": {"mentor_gender": "female"}}, "not female"),
    ("staffed venue ends by 19:00", {"availability": [{"day": d, "start": "18:30", "end": "20:00"} for d in ALL_DAYS]},
     {"indicators": ["weapon_carrying"]}, "no free slot"),
    ("young person's availability", {"availability": [{"day": "mon", "start": "09:00", "end": "12:00"}]},
     {"availability": [{"day": "tue", "start": "16:00", "end": "18:00"}]}, "no free slot"),
    ("whole horizon on leave by date override",
     {"availability": [{"day": d, "start": "09:00", "end": "12:00"} for d in ALL_DAYS],
      "date_overrides": [{"date": (TODAY + timedelta(days=i)).isoformat(), "windows": []} for i in range(31)]},
     {}, "no free slot"),
]


@pytest.mark.parametrize(("label", "mentor_changes", "referral_changes", "reason"), REFUSED,
                         ids=[r[0] for r in REFUSED])
async def test_a_mentor_who_would_break_a_hard_constraint_is_never_booked(
    cluster: Cluster, probe: Probe, label: str, mentor_changes: dict[str, Any], referral_changes: dict[str, Any],
    reason: str,
) -> None:
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("HC"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang, **mentor_changes)]})
    await probe.submit(agency, referral(arid, language=lang, **referral_changes))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    waitlisted = (await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid))[0]
    status = await probe.rpc("scheduling", "status", {"referral_id": rid})
    assert reason in status["reason"], (label, status["reason"])
    assert waitlisted["reason"] == status["agency_reason"] and waitlisted["reason"].startswith("no mentor available yet")
    assert_told_neutrally(waitlisted["reason"], mentor_id)
    assert not probe.matching(cluster.subjects.scheduled(agency))


async def test_a_staffed_only_case_gets_a_staffed_venue_and_ends_by_seven(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("ST")
    mentor_id = unique("m")
    drop_in, centre = unique("drop-in"), unique("centre")
    await probe.rpc("scheduling", "venues.import", {"venues": [
        {"id": drop_in, "name": "Barnet drop-in", "borough": "Barnet", "staffed": False},
        {"id": centre, "name": "Barnet youth centre", "borough": "Barnet", "staffed": True, "rooms": 2}]})
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(mentor_id, language=lang, borough="Barnet", venues=[drop_in, centre])]})
    await probe.submit(agency, referral(arid, language=lang, borough="Barnet", indicators=["weapon_carrying"]))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    scheduled = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    for s in scheduled["sessions"]:
        assert datetime.fromisoformat(s["end"]).astimezone(LONDON).time() <= datetime.strptime("19:00", "%H:%M").time()
        assert s["venue"] == "Barnet youth centre", "never the unstaffed drop-in"


async def test_leave_moves_only_the_sessions_it_touches_keeping_their_ids(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("LV"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang)]})
    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]
    second = booked["sessions"][1]
    day = datetime.fromisoformat(second["start"]).astimezone(LONDON).date()

    r = await probe.rpc("scheduling", "mentors.leave", {"mentor_id": mentor_id, "first_day": day.isoformat(),
                                                        "last_day": day.isoformat()})
    assert r["moved"] == 1 and r["cancelled"] == 0
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]
    assert [s["session_id"] for s in moved["sessions"]] == [second["session_id"]]
    new_day = datetime.fromisoformat(moved["sessions"][0]["start"]).astimezone(LONDON).date()
    assert new_day != day and 0 < (new_day - day).days < 7
    assert "on leave" in moved["reason"]
    status = await probe.rpc("scheduling", "status", {"referral_id": rid})
    untouched = {s["session_id"]: s["start"] for s in status["sessions"]}
    for s in booked["sessions"]:
        if s["session_id"] != second["session_id"]:
            same = datetime.fromisoformat(untouched[s["session_id"]]) == datetime.fromisoformat(s["start"])
            assert same, "other sessions stay where they were"
    assert [h["session_id"] for h in status["history"]] == [s["session_id"] for s in status["sessions"]], \
        "every session, with what became of it (none attended, missed or cancelled yet)"
    week = await probe.rpc("scheduling", "calendar", {"mentor_id": mentor_id, "start": day.isoformat(), "days": 7})
    assert week["leave"] == [{"first_day": day.isoformat(), "last_day": day.isoformat()}], "the leave on its week"


@pytest.mark.parametrize("change", ["expired check", "suspended licence"])
async def test_a_mentor_who_can_no_longer_mentor_hands_their_cases_on(
    cluster: Cluster, probe: Probe, change: str
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("MV")
    first = mentor(unique("first"), language=lang, **(rotl() if change == "suspended licence" else {}))
    await probe.rpc("scheduling", "mentors.import", {"mentors": [first]})
    await probe.submit(agency, referral(arid, language=lang))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid)
    second = mentor(unique("second"), language=lang)
    if change == "expired check":
        first["vetting"] = {"enhanced_check_expires": (date.today() - timedelta(days=1)).isoformat()}
    else:
        first["licence"]["suspended"] = True

    result = await probe.rpc("scheduling", "mentors.import", {"mentors": [first, second]})

    assert result["cases_moved"] == 1
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency), lambda e: e["referral_id"] == rid))[0]
    assert moved["previous_mentor_id"] == first["id"] and moved["mentor_id"] == second["id"]
    listed = {m["id"]: m["problems"] for m in (await probe.rpc("scheduling", "mentors.list", {}))["mentors"]}
    assert listed[first["id"]]


async def test_a_conflict_group_named_in_the_referral_keeps_the_mentor_away(cluster: Cluster, probe: Probe) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("CG")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(unique("m"), language=lang, conflicts=["Northside Crew"])]})
    await probe.submit(agency, referral(arid, language=lang, conflict_groups=["northside crew"]))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    waitlisted = (await probe.wait_for(cluster.subjects.waitlisted(agency), lambda e: e["referral_id"] == rid))[0]
    assert "conflict-register match" in (await probe.rpc("scheduling", "status", {"referral_id": rid}))["reason"]
    assert "safety checks" in waitlisted["reason"]
    assert_told_neutrally(waitlisted["reason"], "northside")


async def test_a_preferred_gender_is_scored_not_required(cluster: Cluster, probe: Probe) -> None:
    lang, agency = unique_language(), unique("yot")
    woman, man = unique("b-woman"), unique("a-man")  # the man sorts first: only the preference picks the woman
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(man, language=lang, gender="male"), mentor(woman, language=lang, gender="female")]})
    prefer = {"mentor_gender": "female", "mentor_gender_required": False}
    await probe.submit(agency, referral(first := unique("PG"), language=lang, preferences=prefer))
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == first))[0][
        "referral_id"]
    assert (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0][
        "mentor_id"] == woman
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(woman, language=lang, gender="female", max_caseload=1)]})
    await probe.submit(agency, referral(second := unique("PG"), language=lang, preferences=prefer))
    rid2 = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == second))[0][
        "referral_id"]
    scheduled = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid2))[0]
    assert scheduled["mentor_id"] == man, "with the preferred mentor full, another gender still gets the case"


async def _outcome(cluster: Cluster, probe: Probe, agency: str, body: dict[str, Any], subject: str) -> dict[str, Any]:
    """Submit a referral and wait for its event on `subject` (scheduled or waitlisted)."""
    arid = body["agency_referral_id"]
    await probe.submit(agency, body)
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    return (await probe.wait_for(subject, lambda e: e["referral_id"] == rid))[0]


async def test_routes_go_round_unsafe_areas_and_exclusion_zones_or_the_mentor_is_not_booked(
    cluster: Cluster, probe: Probe,
) -> None:
    lang, agency = unique_language(), unique("yot")
    southwark, city = unique("sw-centre"), unique("city-centre")
    staff, prisoner = unique("m"), unique("m")
    await probe.rpc("scheduling", "venues.import", {"venues": [
        {"id": southwark, "name": "Southwark centre", "borough": "Southwark"},
        {"id": city, "name": "City centre", "borough": "City of London"}]})
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(staff, language=lang, max_caseload=1, venues=[southwark]),
        mentor(prisoner, language=lang, max_caseload=1, venues=[city], **rotl(
            return_by="20:00", exclusion_zones=["Southwark", "Westminster"], establishment_borough="Lambeth"))]})

    # Hackney to Southwark without entering the City; the rotl mentor is kept out by the young person's
    # unsafe City, where their only venue is.
    scheduled, waitlisted = cluster.subjects.scheduled(agency), cluster.subjects.waitlisted(agency)
    first = await _outcome(cluster, probe, agency, referral(
        unique("RT"), language=lang, unsafe_areas=["City of London"]), scheduled)
    assert first["mentor_id"] == staff, first
    sessions = (await probe.rpc("scheduling", "calendar", {"mentor_id": staff, "days": 60}))["sessions"]
    assert sessions and {s["venue"] for s in sessions} == {"Southwark centre"}
    assert {tuple(s["route"]) for s in sessions} == {("Hackney", "Tower Hamlets", "Southwark")}

    # The rotl mentor's journey from the establishment goes round their exclusion zones.
    second = await _outcome(cluster, probe, agency, referral(unique("RT"), language=lang), scheduled)
    assert second["mentor_id"] == prisoner, second
    theirs = (await probe.rpc("scheduling", "calendar", {"mentor_id": prisoner, "days": 60}))["sessions"]
    assert theirs and all(not {"Southwark", "Westminster"} & set(s["mentor_route"]) for s in theirs)
    assert theirs[0]["mentor_route"][0] == "Lambeth" and theirs[0]["mentor_route"][-1] == "City of London"

    # Every way out of Hackney is unsafe: a free mentor's venue in Southwark cannot be reached, so nobody is booked.
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang, venues=[southwark])]})
    boxed_in = ["City of London", "Tower Hamlets", "Newham", "Islington", "Haringey", "Waltham Forest"]
    third = await _outcome(cluster, probe, agency, referral(unique("RT"), language=lang, unsafe_areas=boxed_in),
                           waitlisted)
    assert "no safe venue or safe route to one" in third["reason"], third
    said = (await probe.rpc("scheduling", "status", {"referral_id": third["referral_id"]}))["reason"]
    assert "1 has no safe venue or safe route to one" in said, said


async def test_rooms_are_never_double_booked_when_referrals_share_a_venue_or_leave_moves_a_session(
    cluster: Cluster, probe: Probe,
) -> None:
    lang, agency, hub = unique_language(), unique("yot"), unique("hub")
    early = [{"day": d, "start": "09:00", "end": "10:00"} for d in ALL_DAYS]  # one session a day
    first_mentor, second_mentor = unique("m"), unique("m")
    # In a borough no other test uses: a venue registered in a borough is where every mentor there without venues
    # of their own meets, so a one-room hub in a busy borough would crowd other tests' sessions.
    borough = "Havering"
    await probe.rpc("scheduling", "venues.import", {"venues": [
        {"id": hub, "name": "One-room hub", "borough": borough, "rooms": 1}]})
    await probe.rpc("scheduling", "mentors.import", {"mentors": [
        mentor(m, language=lang, borough=borough, max_caseload=1, availability=early, venues=[hub])
        for m in (first_mentor, second_mentor)]})
    scheduled = cluster.subjects.scheduled(agency)
    one = await _outcome(cluster, probe, agency, referral(unique("RM"), language=lang, borough=borough), scheduled)
    two = await _outcome(cluster, probe, agency, referral(unique("RM"), language=lang, borough=borough), scheduled)

    def starts(event: dict[str, Any]) -> list[datetime]:
        return [datetime.fromisoformat(s["start"]) for s in event["sessions"]]

    # Both mentors are free at 09:00 on the first day; the hub's one room is not, so the second starts a day later.
    assert one["mentor_id"] != two["mentor_id"]
    assert starts(two)[0] - starts(one)[0] == timedelta(days=1)
    assert not set(starts(one)) & set(starts(two))

    # Leave on the day of the first young person's second session: moved to the same time the next day would
    # take the room the second young person holds then, so it goes a day later still.
    second = one["sessions"][1]
    day = datetime.fromisoformat(second["start"]).astimezone(LONDON).date()
    assert datetime.combine(day + timedelta(days=1), datetime.min.time().replace(hour=9), tzinfo=LONDON) in starts(two)
    r = await probe.rpc("scheduling", "mentors.leave", {"mentor_id": one["mentor_id"], "first_day": day.isoformat(),
                                                        "last_day": day.isoformat()})
    assert r["moved"] == 1, r
    moved = (await probe.wait_for(cluster.subjects.rescheduled(agency),
                                  lambda e: e["referral_id"] == one["referral_id"]))[0]
    (slot,) = moved["sessions"]
    assert slot["session_id"] == second["session_id"] and slot["venue"] == "One-room hub"
    assert datetime.fromisoformat(slot["start"]).astimezone(LONDON).date() == day + timedelta(days=2)
    held: list[tuple[datetime, str]] = []
    for m in (first_mentor, second_mentor):
        calendar = await probe.rpc("scheduling", "calendar", {"mentor_id": m, "days": 60})
        held += [(datetime.fromisoformat(s["start"]), s["session_id"]) for s in calendar["sessions"]
                 if s["status"] in ("booked", "confirmed")]
    assert len({start for start, _ in held}) == len(held), "two sessions in the one room at once"


async def test_with_no_venues_registered_sessions_are_at_the_borough_office_and_the_calendar_names_it(
    cluster: Cluster, probe: Probe,
) -> None:
    lang, agency, mentor_id = unique_language(), unique("yot"), unique("m")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang, borough="Sutton")]})
    booked = await _outcome(cluster, probe, agency, referral(unique("OF"), language=lang, borough="Sutton"),
                            cluster.subjects.scheduled(agency))
    assert {s["venue"] for s in booked["sessions"]} == {"Sutton office"}
    calendar = await probe.rpc("scheduling", "calendar", {"mentor_id": mentor_id, "days": 60})
    assert {(s["venue"], tuple(s["route"])) for s in calendar["sessions"]} == {("Sutton office", ("Sutton",))}
    assert all(s["mentor_route"] is None for s in calendar["sessions"])  # a staff mentor's route is not planned
