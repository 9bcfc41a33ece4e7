"""The mentor match: eligibility, first slot, deadline, ranking, cadence, DST, waitlist, and a booking property."""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.scheduling.matching import (
    LONDON,
    Case,
    Match,
    MentorState,
    Waitlist,
    exclusion,
    match,
    rank,
    with_booking,
)
from shared.contracts.codes import Tier
from shared.contracts.common import WeeklyWindow
from tests.support.matching import ALL_WEEK, NOW, Interval, case, cases, mentor, mentors, window

HOUR = timedelta(hours=1)


def at(day: int, hh: int, mm: int = 0, *, month: int = 3) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=LONDON)


WEEKEND = [window("sat", "10:00", "16:00"), window("sun", "10:00", "16:00")]


def booked(result: Match | Waitlist) -> Match:
    assert isinstance(result, Match), result
    return result


def reason_of(result: Match | Waitlist) -> str:
    """The waitlist reason schedulers see (what agencies are told is tested in test_agency_reasons.py)."""
    assert isinstance(result, Waitlist), result
    return result.reason


# --- eligibility -----------------------------------------------------------------------------------------------

ROTL_ZONE_PECKHAM = {"kind": "rotl", "zones": ("PECKHAM",)}


@pytest.mark.parametrize(
    ("label", "case_changes", "mentor_changes", "expected"),
    [
        ("eligible", {}, {}, None),
        ("borough matched ignoring case and spaces", {"borough": "hackney"}, {"boroughs": (" HACKNEY ",)}, None),
        ("borough not covered", {}, {"boroughs": ("Lambeth", "Southwark")}, "does not cover Hackney"),
        ("one shared language is enough", {"languages": ["so", "en"]}, {"languages": ("pl", "EN")}, None),
        ("no shared language", {"languages": ["so"]}, {"languages": ("en",)}, "no shared language"),
        ("preferred language is not required", {"preferred_language": "so"}, {}, None),
        (
            "preferred language alone does not make a shared one",
            {"languages": ["en"], "preferred_language": "so"},
            {"languages": ("so",)},
            "no shared language",
        ),
        ("below max caseload", {}, {"caseload": 3, "max_caseload": 4}, None),
        ("at max caseload", {}, {"caseload": 4, "max_caseload": 4}, "at caseload (4 of 4)"),
        ("takes no young people", {}, {"max_caseload": 0}, "at caseload (0 of 0)"),
        ("staff take very high", {"tier": Tier.VERY_HIGH}, {}, None),
        ("staff take high", {"tier": Tier.HIGH}, {}, None),
        ("volunteer takes medium", {"tier": Tier.MEDIUM}, {"kind": "volunteer"}, None),
        ("volunteer takes low", {"tier": Tier.LOW}, {"kind": "volunteer"}, None),
        (
            "volunteer refuses high",
            {"tier": Tier.HIGH},
            {"kind": "volunteer"},
            "new volunteers take only low and medium tiers",
        ),
        ("rotl takes medium", {"tier": Tier.MEDIUM}, {"kind": "rotl"}, None),
        (
            "rotl refuses very high",
            {"tier": Tier.VERY_HIGH},
            {"kind": "rotl"},
            "rotl mentors take only low and medium tiers",
        ),
        ("any gender", {"mentor_gender": "any"}, {"gender": "male"}, None),
        ("requested gender met", {"mentor_gender": "female"}, {"gender": "female"}, None),
        ("requested gender not met", {"mentor_gender": "female"}, {"gender": "male"}, "not female as requested"),
        (
            "requested non-binary not met",
            {"mentor_gender": "non_binary"},
            {"gender": "female"},
            "not non-binary as requested",
        ),
        (
            "rotl zone covers the borough",
            {"borough": "Hackney"},
            {"kind": "rotl", "zones": ("hackney",)},
            "exclusion zone hackney overlaps the young person's areas",
        ),
        (
            "rotl zone covers an unsafe area",
            {"unsafe_areas": ["Brixton", "Peckham"]},
            ROTL_ZONE_PECKHAM,
            "exclusion zone PECKHAM overlaps the young person's areas",
        ),
        ("rotl zone elsewhere", {"unsafe_areas": ["Brixton"]}, ROTL_ZONE_PECKHAM, None),
        # The spec applies exclusion zones to rotl mentors only; a licence on a staff record is not read.
        ("staff licence zones are not read", {"unsafe_areas": ["Peckham"]}, {"zones": ("Peckham",)}, None),
        (
            "first rule broken is reported",
            {"languages": ["so"]},
            {"boroughs": ("Lambeth",), "caseload": 4},
            "does not cover Hackney",
        ),
    ],
)
def test_exclusion(
    label: str, case_changes: dict[str, Any], mentor_changes: dict[str, Any], expected: str | None
) -> None:
    assert exclusion(case(**case_changes), mentor(**mentor_changes)) == expected, label


# --- first slot ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "now", "case_changes", "mentor_changes", "first"),
    [
        ("two hours' notice", NOW, {}, {}, at(2, 11)),
        ("now rounded up to :30", NOW + timedelta(minutes=10), {}, {}, at(2, 11, 30)),
        (
            "start on :00/:30 inside the window",
            NOW,
            {},
            {"availability": [window("mon", "14:15", "16:00")]},
            at(2, 14, 30),
        ),
        ("young person's window", NOW, {"availability": [window("mon", "15:30", "18:00")]}, {}, at(2, 15, 30)),
        ("young person free tuesdays", NOW, {"availability": [window("tue", "10:00", "12:00")]}, {}, at(3, 10)),
        ("after an adjacent busy hour", NOW, {}, {"busy": ((at(2, 11), at(2, 12)),)}, at(2, 12)),
        ("after an overlapping busy hour", NOW, {}, {"busy": ((at(2, 11, 30), at(2, 12, 30)),)}, at(2, 12, 30)),
        (
            "rotl back exactly at return_by",
            NOW,
            {},
            {"kind": "rotl", "return_by": "16:00", "availability": [window("mon", "14:00", "17:00")]},
            at(2, 14),
        ),
        ("weekend-only mentor", NOW, {}, {"availability": WEEKEND}, at(7, 10)),
        (
            # now + 28 days is 09:00 UTC on 30 March, 10:00 BST: a start exactly at the horizon counts.
            "start exactly at the horizon",
            NOW,
            {},
            {
                "availability": [window("mon", "10:00", "11:30")],
                "busy": tuple((at(d, 10), at(d, 11, 30)) for d in (9, 16, 23)),
            },
            at(30, 10),
        ),
    ],
)
def test_first_slot(
    label: str, now: datetime, case_changes: dict[str, Any], mentor_changes: dict[str, Any], first: datetime
) -> None:
    [option] = rank(case(**case_changes), [mentor(**mentor_changes)], now=now)
    assert option.first == (first, first + HOUR), label
    assert option.first[0].tzinfo is LONDON


NO_SLOT = "no mentor fits: 1 has no free slot in the next 28 days"


@pytest.mark.parametrize(
    ("label", "case_changes", "mentor_changes"),
    [
        ("no availability", {}, {"availability": []}),
        ("window shorter than a session", {}, {"availability": [window("mon", "14:00", "14:59")]}),
        ("windows never meet", {"availability": [window("tue", "09:00", "17:00")]}, {"availability": WEEKEND}),
        (
            "rotl back one minute late",
            {},
            {"kind": "rotl", "return_by": "15:59", "availability": [window("mon", "14:00", "17:00")]},
        ),
        (
            "only slot is after the horizon",
            {},
            {
                "availability": [window("mon", "10:00", "11:30")],
                "busy": tuple((at(d, 10), at(d, 11, 30)) for d in (9, 16, 23)) + ((at(30, 10), at(30, 11)),),
            },
        ),
    ],
)
def test_no_free_slot_waitlists(label: str, case_changes: dict[str, Any], mentor_changes: dict[str, Any]) -> None:
    assert reason_of(match(case(**case_changes), [mentor(**mentor_changes)], now=NOW)) == NO_SLOT, label


# --- deadline --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "tier", "accepted_at", "availability", "first", "deadline", "met"),
    [
        ("very high, free today", Tier.VERY_HIGH, NOW, ALL_WEEK, at(2, 11), at(3, 9), True),
        ("very high, weekend-only mentor", Tier.VERY_HIGH, NOW, WEEKEND, at(7, 10), at(3, 9), False),
        ("low, weekend-only mentor", Tier.LOW, NOW, WEEKEND, at(7, 10), at(16, 9), True),
        ("medium, weekend-only mentor", Tier.MEDIUM, NOW, WEEKEND, at(7, 10), at(9, 9), True),
        ("high, due exactly at the first slot", Tier.HIGH, at(27, 11, month=2), ALL_WEEK, at(2, 11), at(2, 11), True),
        ("high, due a minute before", Tier.HIGH, at(27, 10, 59, month=2), ALL_WEEK, at(2, 11), at(2, 10, 59), False),
    ],
)
def test_deadline(
    label: str,
    tier: Tier,
    accepted_at: datetime,
    availability: list[WeeklyWindow],
    first: datetime,
    deadline: datetime,
    met: bool,
) -> None:
    result = booked(match(case(tier=tier, accepted_at=accepted_at), [mentor(availability=availability)], now=NOW))
    assert (result.sessions[0][0], result.deadline, result.deadline_met) == (first, deadline, met), label


def test_mentor_meeting_the_deadline_beats_a_better_score() -> None:
    speaks_somali_weekends = mentor("m1", languages=("en", "so"), availability=WEEKEND)
    plain_weekdays = mentor("m2", caseload=3)
    somali = {"languages": ["en", "so"], "preferred_language": "so"}
    urgent = booked(match(case(tier=Tier.VERY_HIGH, **somali), [speaks_somali_weekends, plain_weekdays], now=NOW))
    relaxed = booked(match(case(tier=Tier.LOW, **somali), [speaks_somali_weekends, plain_weekdays], now=NOW))
    assert (urgent.mentor_id, urgent.deadline_met) == ("m2", True)
    assert (relaxed.mentor_id, relaxed.deadline_met) == ("m1", True)


# --- ranking ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "case_changes", "mentors", "order"),
    [
        (
            "preferred language outweighs load",
            {"languages": ["en", "so"], "preferred_language": "so"},
            [mentor("m1"), mentor("m2", languages=("so",), caseload=3)],
            ["m2", "m1"],
        ),
        ("lower load first", {}, [mentor("m1", caseload=2), mentor("m2", caseload=1)], ["m2", "m1"]),
        (
            "load is a ratio of max_caseload",
            {},
            [mentor("m1", caseload=1, max_caseload=2), mentor("m2", caseload=2, max_caseload=8)],
            ["m2", "m1"],
        ),
        (
            "then the earlier first slot",
            {},
            [mentor("m1", availability=[window("tue", "09:00", "17:00")]), mentor("m2")],
            ["m2", "m1"],
        ),
        ("then the mentor id", {}, [mentor("m2"), mentor("m1"), mentor("m3")], ["m1", "m2", "m3"]),
    ],
)
def test_rank_order(label: str, case_changes: dict[str, Any], mentors: list[MentorState], order: list[str]) -> None:
    assert [option.mentor_id for option in rank(case(**case_changes), mentors, now=NOW)] == order, label


def test_rank_explains_the_score() -> None:
    somali = case(languages=["en", "so"], preferred_language="so")
    [option] = rank(somali, [mentor(languages=("SO",), caseload=1, max_caseload=4)], now=NOW)
    assert option.score == {"previous_mentor": 0.0, "preferred_language": 8.0, "lived_experience": 0.0,
                            "home_borough": 5.0, "workload_balance": 1.5, "same_weekly_slot": 3.0}
    assert option.total == 17.5
    assert option.deadline_met


def test_a_mentor_who_keeps_the_same_weekday_and_time_each_week_ranks_first() -> None:
    # m1 is busy at the first session's time in week three, so that follow-up moves off the routine; m2 is not.
    first = at(2, 11)
    busy = ((first + timedelta(days=14), first + timedelta(days=14, hours=1)),)
    broken, steady = mentor("m1", busy=busy), mentor("m2")
    options = rank(case(tier=Tier.MEDIUM), [broken, steady], now=NOW)
    assert [o.mentor_id for o in options] == ["m2", "m1"]
    assert options[0].score["same_weekly_slot"] == 3.0
    assert options[1].score["same_weekly_slot"] == 3.0 * 3 / 4  # three of the four weekly follow-ups kept
    result = match(case(tier=Tier.MEDIUM), [broken, steady], now=NOW)
    assert isinstance(result, Match) and result.mentor_id == "m2"
    assert {s.astimezone(LONDON).strftime("%a %H:%M") for s, _ in result.sessions} == {"Mon 11:00"}


def test_match_is_deterministic_whatever_the_input_order() -> None:
    mentors = [mentor("m4", caseload=1), mentor("m3"), mentor("m2"), mentor("m1", availability=WEEKEND)]
    results = {repr(match(case(), list(order), now=NOW)) for order in itertools.permutations(mentors)}
    assert len(results) == 1
    assert booked(match(case(), mentors, now=NOW)).mentor_id == "m2"


# --- cadence ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "days"),
    [
        (Tier.VERY_HIGH, [2, 5, 9, 12, 16, 19, 23, 26, 30]),
        (Tier.HIGH, [2, 9, 16, 23, 30]),
        (Tier.MEDIUM, [2, 9, 16, 23, 30]),
        (Tier.LOW, [2, 16, 30]),
    ],
)
def test_cadence_over_28_days_at_the_same_local_time(tier: Tier, days: list[int]) -> None:
    result = booked(match(case(tier=tier), [mentor()], now=NOW))
    assert result.sessions == [(at(day, 11), at(day, 12)) for day in days]


@pytest.mark.parametrize(
    ("label", "tier", "mentor_changes", "days_and_hours"),
    [
        (
            "same time busy: earliest free that day",
            Tier.MEDIUM,
            {"busy": ((at(9, 11), at(9, 12)),)},
            [(2, 11), (9, 9), (16, 11), (23, 11), (30, 11)],
        ),
        (
            "target day full: next day in the interval",
            Tier.MEDIUM,
            {
                "availability": [window("mon", "11:00", "12:00"), window("tue", "11:00", "12:00")],
                "busy": ((at(16, 11), at(16, 12)),),
            },
            [(2, 11), (9, 11), (17, 11), (23, 11), (30, 11)],
        ),
        (
            "nothing free in the interval: occurrence skipped",
            Tier.MEDIUM,
            {"availability": [window("mon", "11:00", "12:00")], "busy": ((at(16, 11), at(16, 12)),)},
            [(2, 11), (9, 11), (23, 11), (30, 11)],
        ),
        (
            "a later time on day 28 is past the programme",
            Tier.MEDIUM,
            {"availability": [window("mon", "11:00", "13:00")], "busy": ((at(30, 11), at(30, 12)),)},
            [(2, 11), (9, 11), (16, 11), (23, 11)],
        ),
        (
            "twice weekly with a mondays-only mentor",
            Tier.VERY_HIGH,
            {"availability": [window("mon", "09:00", "17:00")]},
            [(2, 11), (9, 11), (16, 11), (23, 11), (30, 11)],
        ),
    ],
)
def test_follow_ups_move_or_skip_but_never_double_book(
    label: str, tier: Tier, mentor_changes: dict[str, Any], days_and_hours: list[tuple[int, int]]
) -> None:
    result = booked(match(case(tier=tier), [mentor(**mentor_changes)], now=NOW))
    assert result.sessions == [(at(d, h), at(d, h) + HOUR) for d, h in days_and_hours], label


# --- daylight saving -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "now", "tier", "expected"),
    [
        (
            "spring forward (Sunday 29 March)",
            at(23, 7),
            Tier.MEDIUM,
            [at(23, 9), at(30, 9), at(6, 9, month=4), at(13, 9, month=4), at(20, 9, month=4)],
        ),
        (
            # Day 28 counts by the wall clock: 16 Nov 09:00 GMT is an hour later than 19 Oct 09:00 BST + 28 × 24 h.
            "fall back (Sunday 25 October)",
            at(19, 7, month=10),
            Tier.MEDIUM,
            [at(d, 9, month=10) for d in (19, 26)] + [at(d, 9, month=11) for d in (2, 9, 16)],
        ),
        ("twice weekly across spring forward", at(26, 7), Tier.VERY_HIGH, [at(26, 9), at(29, 9), at(2, 9, month=4)]),
    ],
)
def test_dst_weeks_keep_the_local_time_and_the_hour(
    label: str, now: datetime, tier: Tier, expected: list[datetime]
) -> None:
    result = booked(match(case(tier=tier, accepted_at=now), [mentor()], now=now))
    starts = [start for start, _ in result.sessions]
    assert starts[: len(expected)] == expected, label
    assert [s.astimezone(LONDON).time() for s in starts[: len(expected)]] == [time(9)] * len(expected)
    assert all(end - start == HOUR and end.utcoffset() == start.utcoffset() for start, end in result.sessions)
    assert all(start.tzinfo is LONDON for start, _ in result.sessions)


# --- waitlist --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "case_changes", "mentors", "reason"),
    [
        ("nobody registered", {}, [], "no mentors registered"),
        (
            "counts, largest first",
            {},
            [
                mentor("a", caseload=4),
                mentor("b", caseload=4),
                mentor("c", caseload=4),
                mentor("d", boroughs=("Lambeth",)),
                mentor("e", boroughs=("Lambeth",)),
                mentor("f", availability=[]),
            ],
            "no mentor fits: 3 at caseload, 2 do not cover Hackney, 1 has no free slot in the next 28 days",
        ),
        (
            "ties in rule order, singular verbs",
            {"languages": ["so"]},
            [mentor("a", languages=("en",)), mentor("b", boroughs=("Lambeth",))],
            "no mentor fits: 1 does not cover Hackney, 1 shares no language",
        ),
        (
            "tier, gender and zones",
            {"tier": Tier.HIGH, "mentor_gender": "male", "unsafe_areas": ["Peckham"]},
            [
                mentor("a", kind="volunteer", gender="male"),
                mentor("b", kind="rotl", gender="male"),
                mentor("c", gender="female"),
                mentor("d", gender="female"),
            ],
            "no mentor fits: 2 take only low and medium tiers, 2 are not male as requested",
        ),
        (
            "zones",
            {"unsafe_areas": ["Peckham"]},
            [mentor("a", kind="rotl", zones=("Peckham",))],
            "no mentor fits: 1 has an exclusion zone over the young person's areas",
        ),
    ],
)
def test_waitlist_reason(label: str, case_changes: dict[str, Any], mentors: list[MentorState], reason: str) -> None:
    assert reason_of(match(case(**case_changes), mentors, now=NOW)) == reason, label


# --- purity and booking ----------------------------------------------------------------------------------------


def test_match_does_not_mutate_its_inputs() -> None:
    mentors = [mentor("m1", busy=((at(2, 11), at(2, 12)),)), mentor("m2", caseload=2)]
    the_case = case(tier=Tier.VERY_HIGH, availability=[window("mon", "09:00", "17:00")])
    before = copy.deepcopy((the_case, mentors))
    match(the_case, mentors, now=NOW)
    rank(the_case, mentors, now=NOW)
    assert (the_case, mentors) == before


def test_with_booking_adds_one_young_person_and_the_sessions() -> None:
    original = mentor(busy=((at(2, 9), at(2, 10)),), caseload=1)
    sessions = [(at(3, 11), at(3, 12))]
    after = with_booking(original, sessions)
    assert (after.caseload, after.busy) == (2, [(at(2, 9), at(2, 10)), (at(3, 11), at(3, 12))])
    assert (original.caseload, original.busy) == (1, [(at(2, 9), at(2, 10))])


def test_a_batch_booked_through_with_booking_never_double_books() -> None:
    states = [mentor("m1", max_caseload=3)]
    for n in range(3):
        result = booked(match(case(referral_id=f"r{n}"), states, now=NOW))
        states = [with_booking(states[0], result.sessions)]
    starts = sorted(start for start, _ in states[0].busy)
    assert starts[:3] == [at(2, 11), at(2, 12), at(2, 13)]
    assert reason_of(match(case(referral_id="r4"), states, now=NOW)) == "no mentor fits: 1 at caseload"


# --- property: booking many cases one after another keeps every mentor's calendar sound -----------------------

NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # spelled here, not imported, so the checker is independent


def _clock(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def _inside(windows: list[WeeklyWindow], start: datetime, end: datetime) -> bool:
    s, e = start.astimezone(LONDON), end.astimezone(LONDON)
    return s.date() == e.date() and any(
        w.day == NAMES[s.weekday()] and _clock(w.start) <= s.time() and e.time() <= _clock(w.end) for w in windows
    )


def check_bookings(initial: list[MentorState], bookings: list[tuple[Case, str, list[Interval]]]) -> None:
    """Independent of the matcher: what must hold of any batch of bookings."""
    by_id = {state.record.id: state for state in initial}
    sessions_of: dict[str, list[Interval]] = defaultdict(list)
    for the_case, mentor_id, sessions in bookings:
        record = by_id[mentor_id].record
        assert record.kind == "staff" or the_case.tier in (Tier.LOW, Tier.MEDIUM)
        for start, end in sessions:
            assert start.tzinfo is LONDON and end.tzinfo is LONDON
            assert end.timestamp() - start.timestamp() == 3600
            assert start.minute in (0, 30) and start.second == 0
            assert _inside(record.availability, start, end)
            assert not the_case.availability or _inside(the_case.availability, start, end)
            if record.kind == "rotl":
                assert record.licence is not None
                back = (end + HOUR).astimezone(LONDON)
                assert back.date() == start.astimezone(LONDON).date() and back.time() <= _clock(
                    record.licence.return_by
                )
        sessions_of[mentor_id].extend(sessions)
    for mentor_id, sessions in sessions_of.items():
        state = by_id[mentor_id]
        taken = sum(1 for _, booked_id, _ in bookings if booked_id == mentor_id)
        assert state.caseload + taken <= state.record.max_caseload
        for i, (start, end) in enumerate(sessions):
            others = [*state.busy, *sessions[:i], *sessions[i + 1 :]]
            assert all(
                end.timestamp() <= o_start.timestamp() or o_end.timestamp() <= start.timestamp()
                for o_start, o_end in others
            )


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_booking_one_case_after_another_keeps_calendars_sound(data: st.DataObject) -> None:
    initial = [data.draw(mentors(f"m{n}")) for n in range(data.draw(st.integers(1, 6)))]
    states = list(initial)
    bookings: list[tuple[Case, str, list[Interval]]] = []
    for n in range(data.draw(st.integers(1, 10))):
        the_case = data.draw(cases(f"r{n}"))
        result = match(the_case, states, now=NOW)
        if isinstance(result, Match):
            assert result.sessions and result.sessions[0][0].timestamp() >= (NOW + 2 * HOUR).timestamp()
            index = next(i for i, state in enumerate(states) if state.record.id == result.mentor_id)
            states[index] = with_booking(states[index], result.sessions)
            bookings.append((the_case, result.mentor_id, result.sessions))
            event(f"booked {len(result.sessions)} sessions")
        else:
            assert result.reason.startswith("no mentor fits: ")
            event("waitlisted")
    check_bookings(initial, bookings)
