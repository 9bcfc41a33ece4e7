"""A scheduler's choice of mentor stands in the batch round: a case assigned by hand (even with a first session past
the online match's 28-day horizon, to a mentor away until then) is neither moved nor re-booked, for a better score,
for its horizon, to make room, or for a cut to its mentor's caseload or risk-weighted load; a case the services
placed themselves, in the same round, still is. The choice ends when the case's mentor changes by another path (a
mentor who may no longer mentor, a re-plan to another mentor, the waitlist, a closure, a replica that changes the
mentor without clearing the choice), and then the round may move the case again. The endpoints' replies carry no
field a client of the previous release does not know. Runs on SQLite, and on PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from sqlalchemy import Engine, update
from sqlmodel import col

from services.scheduling import store
from services.scheduling.agency_reasons import Reason
from services.scheduling.booking import CaseTask, carry_out
from services.scheduling.choices import assign
from services.scheduling.matching import HORIZON_DAYS
from services.scheduling.mentor_changes import hand_on_barred_cases
from services.scheduling.reoptimisation import book_round, plan_round, read_round
from services.scheduling.rpc import Scheduling, assign_mentor, reoptimise_now, status
from services.scheduling.sessions import close
from services.scheduling.slots import LONDON
from services.scheduling.tables import CaseRow, SessionRow
from shared.contracts.intake import PersonFacts, Preferences, ReferralRecorded
from shared.contracts.rpc import Empty
from shared.contracts.scheduling import CaseStatus, MentorRecord, SessionStatus
from shared.contracts.scheduling_rpc import REOPTIMISE, STATUS, AssignRequest, ReferralRequest
from shared.subjects import Subjects
from tests.support.cluster import mentor
from tests.support.databases import service_database
from tests.support.scheduling_endpoints import scheduling_endpoints

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # a Monday
AWAY_DAYS = 31  # m-away's leave from today: past the horizon
BACK = NOW.replace(hour=10) + timedelta(days=AWAY_DAYS + 1)  # the day after m-away is back, 10:00
S = Subjects()
TRACER = trace.get_tracer("test")


def _mentors(engine: Engine, *records: dict[str, Any]) -> None:
    with engine.begin() as conn:
        store.save_mentors(conn, [MentorRecord.model_validate(r) for r in records], now=NOW)


def _waiting(engine: Engine, referral_id: str, *languages: str, now: datetime = NOW) -> None:
    """A low-tier young person in Hackney speaking `languages`, free whenever their mentor is: on the waitlist."""
    facts = ReferralRecorded(
        event_id=f"recorded-{referral_id}", occurred_at=now, referral_id=referral_id, agency_id="yot",
        agency_referral_id=f"A-{referral_id}", person_id=f"psn_{referral_id}",
        person=PersonFacts(age_years=15, age_band="14-15", gender="male", borough="Hackney",
                           languages=list(languages)),
        indicators=[], protective_factors=[], unsafe_areas=[], preferences=Preferences(), availability=[])
    with engine.begin() as conn:
        store.add_cases(conn, [{"referral_id": referral_id, "agency_id": "yot", "person_id": facts.person_id,
                                "facts": facts.model_dump_json(), "tier": "low", "status": CaseStatus.WAITLISTED,
                                "updated_at": now}])


def _placed_by_the_services(engine: Engine, referral_id: str) -> None:
    """The online match books the waiting case (as the consumers do)."""
    with engine.begin() as conn:
        row = store.load_case(conn, referral_id)
        assert row is not None
        carry_out(conn, [CaseTask(row, trace.INVALID_SPAN)], now=NOW, subjects=S)


def _assigned(engine: Engine, referral_id: str, mentor_id: str, *, start: datetime | None = None) -> None:
    with engine.begin() as conn:
        assign(conn, referral_id, mentor_id, start=start, reason="knows the family", by="sam", now=NOW, subjects=S)


def _round(engine: Engine, now: datetime = NOW) -> dict[str, object]:
    with engine.connect() as conn:
        planned = read_round(conn, now=now)
    result = plan_round(planned)
    with engine.begin() as conn:
        done, _ = book_round(conn, planned, result, now=now, subjects=S, tracer=TRACER)
    return done


def _held(engine: Engine, referral_id: str) -> tuple[str, str | None, list[str]]:
    """The case's status, mentor and booked sessions (ids)."""
    with engine.connect() as conn:
        row = store.load_case(conn, referral_id)
        assert row is not None
        booked = store.case_sessions(conn, referral_id, [SessionStatus.BOOKED])
    return row.status, row.mentor_id, [s.session_id for s in booked]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with service_database("scheduling", tmp_path) as made:
        yield made


def test_the_round_keeps_cases_assigned_by_hand_and_moves_one_it_placed_itself(engine: Engine) -> None:
    """m-busy (the only Turkish speaker) and m-somali (the only Somali speaker) have one place each; r-tr and r-so
    wait for them. r-auto was placed with m-busy by the online match; r-hand was put with m-somali by a scheduler,
    and r-far with m-away, who is away for 31 days, for a day after they are back. m-spare could take any of the
    three: the round moves r-auto there to place r-tr, and leaves both of the scheduler's choices as they are."""
    _mentors(engine, mentor("m-busy", language="en", languages=["en", "tr"], max_caseload=1))
    _waiting(engine, "r-auto", "en")
    _placed_by_the_services(engine, "r-auto")
    assert _held(engine, "r-auto")[:2] == (CaseStatus.SCHEDULED, "m-busy")
    _mentors(engine, mentor("m-spare", language="en"), mentor("m-away", language="en"),
             mentor("m-somali", language="en", languages=["en", "so"], max_caseload=1))
    with engine.begin() as conn:
        store.add_leave(conn, "m-away", NOW.date(), NOW.date() + timedelta(days=AWAY_DAYS - 1), now=NOW)
    for rid in ("r-hand", "r-far"):
        _waiting(engine, rid, "en")
    _assigned(engine, "r-hand", "m-somali")
    assert BACK - NOW > timedelta(days=HORIZON_DAYS)
    _assigned(engine, "r-far", "m-away", start=BACK)
    _waiting(engine, "r-tr", "tr")
    _waiting(engine, "r-so", "so")
    hand, far = _held(engine, "r-hand"), _held(engine, "r-far")
    assert hand[:2] == (CaseStatus.SCHEDULED, "m-somali") and far[:2] == (CaseStatus.SCHEDULED, "m-away")

    report = _round(engine)

    assert _held(engine, "r-hand") == hand, "a scheduler's choice is not moved to make room"
    assert _held(engine, "r-far") == far, "nor for the horizon it looked past"
    assert _held(engine, "r-auto")[:2] == (CaseStatus.SCHEDULED, "m-spare"), "a case the services placed still moves"
    assert _held(engine, "r-tr")[:2] == (CaseStatus.SCHEDULED, "m-busy")
    assert _held(engine, "r-so")[:2] == (CaseStatus.WAITLISTED, None)
    assert (report["placed"], report["moved"], report["moved_mentor_cannot_keep"]) == (1, 1, 0), report
    assert report["pinned"] == 2, report
    with engine.connect() as conn:
        reasons = {rid: row.reason for rid, row in store.load_cases(conn, ["r-hand", "r-far"]).items()}
    assert reasons == {"r-hand": "assigned by sam: knows the family", "r-far": "assigned by sam: knows the family"}


def test_a_choice_ends_when_the_mentor_may_no_longer_mentor_and_the_round_may_move_the_case_again(
    engine: Engine,
) -> None:
    """m-lapsed's check runs out: the vetting sweep moves their hand-assigned case to m-one (the only other mentor
    then), and the scheduler's choice goes with the mentor; the round may then move it to make room."""
    _mentors(engine, mentor("m-lapsed", language="en"))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-lapsed")
    _mentors(engine, mentor("m-one", language="en", languages=["en", "tr"], max_caseload=1),
             mentor("m-lapsed", language="en", vetting={"enhanced_check_expires": "2026-03-01"}))
    with engine.begin() as conn:
        moved, _ = hand_on_barred_cases(conn, now=NOW, subjects=S, tracer=TRACER)
    assert moved == 1 and _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-one")
    with engine.connect() as conn:
        assert store.load_case(conn, "r-hand").assigned_by is None  # type: ignore[union-attr]
    _mentors(engine, mentor("m-two", language="en"))
    _waiting(engine, "r-tr", "tr")

    report = _round(engine)

    assert (report["placed"], report["moved"], report["pinned"]) == (1, 1, 0), report
    assert _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-two")
    assert _held(engine, "r-tr")[:2] == (CaseStatus.SCHEDULED, "m-one")


def test_a_choice_outlasts_a_re_plan_that_keeps_the_mentor_and_a_suspension(engine: Engine) -> None:
    """A new cadence re-planned with the same mentor (the only one), and the young person missing for a while: the
    mentor is still the one the scheduler chose."""
    _mentors(engine, mentor("m-one", language="en"))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-one")
    for kind in ("reschedule", "suspend", "resume"):
        with engine.begin() as conn:
            row = store.load_case(conn, "r-hand")
            assert row is not None
            carry_out(conn, [CaseTask(row, trace.INVALID_SPAN, kind, Reason.shared(kind))],
                      now=NOW, subjects=S)
            row = store.load_case(conn, "r-hand")
        assert row is not None and (row.mentor_id, row.assigned_by) == ("m-one", "sam"), kind


def test_a_choice_is_recorded_with_who_made_it_and_ends_with_the_case(engine: Engine) -> None:
    _mentors(engine, mentor("m-one", language="en"))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-one")
    with engine.connect() as conn:
        assert store.load_case(conn, "r-hand").assigned_by == "sam"  # type: ignore[union-attr]
    with engine.begin() as conn:
        close(conn, "r-hand", "yot", now=NOW, subjects=S, reason=Reason("closed by sam: moved away", "closed"))
        assert store.load_case(conn, "r-hand").assigned_by is None  # type: ignore[union-attr]


def test_the_round_moves_a_case_assigned_by_hand_when_a_hard_rule_now_rules_its_mentor_out(engine: Engine) -> None:
    """m-moved no longer covers Hackney (re-imported): the scheduler's choice cannot stand, and the round moves the
    young person, saying why."""
    _mentors(engine, mentor("m-moved", language="en"))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-moved")
    _mentors(engine, mentor("m-moved", language="en", borough="Camden"), mentor("m-other", language="en"))

    report = _round(engine)

    assert (report["moved"], report["moved_mentor_cannot_keep"], report["pinned"]) == (1, 1, 0), report
    assert _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-other")
    with engine.connect() as conn:
        row = store.load_case(conn, "r-hand")
    assert row is not None and row.assigned_by is None
    assert row.reason is not None and row.reason.startswith("moved by the batch round: m-moved can no longer keep them")


def _choice(engine: Engine, referral_id: str) -> tuple[str | None, str | None]:
    """Who chose the case's mentor by hand, and which mentor they chose."""
    with engine.connect() as conn:
        row = store.load_case(conn, referral_id)
    assert row is not None
    return row.assigned_by, row.assigned_mentor_id


def _re_planned(engine: Engine, referral_id: str) -> None:
    """A new assessment re-plans the case online (the consumers' `reschedule`)."""
    with engine.begin() as conn:
        row = store.load_case(conn, referral_id)
        assert row is not None
        carry_out(conn, [CaseTask(row, trace.INVALID_SPAN, "reschedule", Reason.shared("reassessed"))],
                  now=NOW, subjects=S)


def test_a_mentor_changed_without_clearing_the_choice_is_not_kept_by_the_round(engine: Engine) -> None:
    """A replica that changes the mentor without clearing who chose (the previous version's, during a rolling upgrade)
    moves r-hand from m-one, whom sam chose, to m-busy, the only Turkish speaker: nobody chose m-busy, so the round
    moves r-hand on to m-spare to place r-tr, as it would any case the services placed."""
    _mentors(engine, mentor("m-one", language="en"),
             mentor("m-busy", language="en", languages=["en", "tr"], max_caseload=1))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-one")
    with engine.begin() as conn:  # as an older replica's move writes it: the mentor, and nothing of the choice
        conn.execute(update(CaseRow).where(col(CaseRow.referral_id) == "r-hand").values(mentor_id="m-busy", updated_at=NOW))
        conn.execute(update(SessionRow).where(col(SessionRow.referral_id) == "r-hand").values(mentor_id="m-busy"))
    assert _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-busy") and _choice(engine, "r-hand")[0] == "sam"
    _mentors(engine, mentor("m-spare", language="en"))
    _waiting(engine, "r-tr", "tr")

    report = _round(engine)

    assert (report["pinned"], report["placed"], report["moved"]) == (0, 1, 1), report
    assert _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-spare")
    assert _held(engine, "r-tr")[:2] == (CaseStatus.SCHEDULED, "m-busy")
    assert _choice(engine, "r-hand") == (None, None)


@pytest.mark.parametrize("cut", [{"max_caseload": 1}, {"max_points": 1.0}], ids=["caseload", "risk-weighted load"])
def test_a_cut_below_the_cases_chosen_by_hand_moves_only_the_one_the_services_placed(
    engine: Engine, cut: dict[str, Any],
) -> None:
    """m-one holds r-hand-1 and r-hand-2, both chosen by sam, and r-auto, placed by the online match; m-one's
    caseload (or risk-weighted load) is then cut below the two chosen by hand: the round moves r-auto, whom the
    services placed, to m-spare and leaves both of sam's choices with m-one, sessions and all."""
    _mentors(engine, mentor("m-one", language="en", max_caseload=3))
    for rid in ("r-hand-1", "r-hand-2", "r-auto"):
        _waiting(engine, rid, "en")
    _assigned(engine, "r-hand-1", "m-one")
    _assigned(engine, "r-hand-2", "m-one")
    _placed_by_the_services(engine, "r-auto")
    chosen = {rid: _held(engine, rid) for rid in ("r-hand-1", "r-hand-2")}
    assert _held(engine, "r-auto")[:2] == (CaseStatus.SCHEDULED, "m-one")
    _mentors(engine, mentor("m-one", language="en", **({"max_caseload": 3} | cut)), mentor("m-spare", language="en"))

    report = _round(engine)

    assert {rid: _held(engine, rid) for rid in chosen} == chosen
    assert _held(engine, "r-auto")[:2] == (CaseStatus.SCHEDULED, "m-spare")
    assert (report["pinned"], report["moved"], report["moved_mentor_cannot_keep"]) == (2, 1, 1), report


def test_a_choice_ends_on_the_waitlist_when_a_re_plan_finds_no_mentor(engine: Engine) -> None:
    """m-one moves to Camden (re-imported) and nobody else covers Hackney: the re-plan after a new assessment puts
    r-hand on the waitlist, and sam's choice ends there; booked with m-one again later by the services, the round
    does not keep r-hand as if sam had chosen."""
    _mentors(engine, mentor("m-one", language="en"))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-one")
    _mentors(engine, mentor("m-one", language="en", borough="Camden"))

    _re_planned(engine, "r-hand")

    assert _held(engine, "r-hand") == (CaseStatus.WAITLISTED, None, [])
    assert _choice(engine, "r-hand") == (None, None)
    _mentors(engine, mentor("m-one", language="en"))
    _placed_by_the_services(engine, "r-hand")
    assert _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-one")
    assert _round(engine)["pinned"] == 0


def test_a_choice_ends_when_a_re_plan_moves_the_case_to_another_mentor(engine: Engine) -> None:
    """m-one moves to Camden (re-imported): the re-plan after a new assessment books r-hand with m-two, and sam's
    choice of m-one ends; the round treats r-hand as the services' placement."""
    _mentors(engine, mentor("m-one", language="en"))
    _waiting(engine, "r-hand", "en")
    _assigned(engine, "r-hand", "m-one")
    _mentors(engine, mentor("m-one", language="en", borough="Camden"), mentor("m-two", language="en"))

    _re_planned(engine, "r-hand")

    assert _held(engine, "r-hand")[:2] == (CaseStatus.SCHEDULED, "m-two")
    assert _choice(engine, "r-hand") == (None, None)
    assert _round(engine)["pinned"] == 0


@pytest.fixture
async def scheduling(tmp_path: Path) -> AsyncIterator[Scheduling]:
    async with scheduling_endpoints(tmp_path) as endpoints:
        yield endpoints


async def test_a_schedulers_assignment_past_the_horizon_outlasts_reroute_plan_and_status_says_who_chose(
    scheduling: Scheduling,
) -> None:
    """Through the endpoints `reroute assign`, `reroute plan` and `reroute status` ask: the one mentor the scheduler
    wants is away for 31 days; the first session is booked for after they are back, and a batch round leaves it."""
    engine, now = scheduling.host.engine, datetime.now(UTC)
    today = now.astimezone(LONDON).date()
    _mentors(engine, mentor("m-away", language="en"), mentor("m-spare", language="en"))
    with engine.begin() as conn:
        store.add_leave(conn, "m-away", today, today + timedelta(days=AWAY_DAYS - 1), now=now)
    _waiting(engine, "r-far", "en", now=now)
    back = datetime.combine(today + timedelta(days=AWAY_DAYS + 1), datetime.min.time(), tzinfo=LONDON).replace(hour=10)
    await assign_mentor(AssignRequest(referral_id="r-far", mentor_id="m-away", start=back, by="psn-sam",
                                      reason="the only mentor who knows the family"), scheduling)
    before = await status(ReferralRequest(referral_id="r-far"), scheduling)

    report = await reoptimise_now(Empty(), scheduling)

    after = await status(ReferralRequest(referral_id="r-far"), scheduling)
    assert after.mentor_id == "m-away" and after.sessions == before.sessions and after.sessions[0].start == back
    assert after.reason == "assigned by psn-sam: the only mentor who knows the family"
    assert (report.moved, report.pinned) == (0, 1), report


# The fields of these replies in the previous release: a CLI or console of that release refuses any other (its
# contracts forbid unknown fields), so a reply that adds one breaks `reroute status` and `reroute plan` mid-upgrade.
PREVIOUS_STATUS = {"status", "tier", "mentor_id", "mentor_first_name", "deadline_met", "first_session_due", "reason",
                   "agency_reason", "sessions", "history"}
PREVIOUS_ROUND = {"considered", "pinned", "waitlisted_before", "placed", "moved", "moved_to_make_room",
                  "moved_mentor_cannot_keep", "solve_seconds"}


async def test_status_and_plan_reply_only_with_fields_a_client_of_the_previous_release_reads(
    scheduling: Scheduling,
) -> None:
    """What the service sends on the wire for a case a scheduler assigned by hand, and for a round that keeps it."""
    engine, now = scheduling.host.engine, datetime.now(UTC)
    _mentors(engine, mentor("m-one", language="en"))
    _waiting(engine, "r-hand", "en", now=now)
    await assign_mentor(AssignRequest(referral_id="r-hand", mentor_id="m-one", by="psn-sam", reason="knows them"),
                        scheduling)

    said = await scheduling.host._answer(STATUS, lambda r: status(r, scheduling),
                                         ReferralRequest(referral_id="r-hand").model_dump_json().encode())
    planned = await scheduling.host._answer(REOPTIMISE, lambda r: reoptimise_now(r, scheduling), b"{}")

    assert set(said) <= PREVIOUS_STATUS and said["reason"] == "assigned by psn-sam: knows them", said
    assert set(planned) <= PREVIOUS_ROUND and planned["pinned"] == 1, planned


async def test_a_request_with_a_field_the_service_does_not_know_is_still_refused(scheduling: Scheduling) -> None:
    """Replies are read leniently by clients; requests are not, by the services: nothing a caller means is dropped."""
    said = await scheduling.host._answer(STATUS, lambda r: status(r, scheduling),
                                         b'{"referral_id": "r-none", "mentor_chosen_by": "psn-sam"}')

    assert said["error"]["code"] == "invalid" and "mentor_chosen_by" in said["error"]["message"], said
