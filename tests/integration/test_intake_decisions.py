"""`decide_submissions`, the one decision both doors share, against a real (SQLite) database."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from opentelemetry import trace
from sqlalchemy import Engine, select
from sqlmodel import col

from services.intake.crypto import IntakeKeys, load_keys
from services.intake.handlers import Decision, Kind, Submission, decide_submissions, handle_submissions
from services.intake.tables import ReferralRecord, RejectionRecord
from shared.messaging import Delivery
from shared.outbox import Outgoing
from shared.subjects import Subjects
from tests.support.cluster import referral
from tests.support.databases import intake_database

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SUBJECTS = Subjects()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Engine, IntakeKeys]]:
    """Intake's tables in a SQLite file, or in a schema of their own when DATABASE_URL names a PostgreSQL."""
    with intake_database(tmp_path, intake_encryption_key=Fernet.generate_key().decode(),
                         intake_matching_key=Fernet.generate_key().decode()) as (engine, settings):
        yield engine, load_keys(settings)


def decide(db: tuple[Engine, IntakeKeys], *bodies: dict[str, Any] | bytes, agency: str = "yot", update: bool = False,
           now: datetime = NOW) -> tuple[list[Decision], list[dict[str, Any]]]:
    engine, keys = db
    kind: Kind = "updated" if update else "submitted"
    submissions = [Submission(agency, b if isinstance(b, bytes) else json.dumps(b).encode(), f"k{i}-{now}", kind,
                              trace.INVALID_SPAN) for i, b in enumerate(bodies)]
    with engine.begin() as conn:
        decisions, out = decide_submissions(conn, submissions, now, subjects=SUBJECTS, keys=keys)
    return decisions, [_event(o) for o in out]


def _event(o: Outgoing) -> dict[str, Any]:
    return {"subject": o.subject, **json.loads(o.payload)}


def told(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the agency is told (referrals.accepted, referrals.rejected)."""
    return [e for e in events if e["subject"].startswith("referrals.")]


def recorded(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What risk and scheduling are told (intake.recorded)."""
    return [e for e in events if e["subject"].startswith("intake.recorded.")]


def test_a_new_referral_is_stored_encrypted_with_an_accepted_event_for_its_agency(
    db: tuple[Engine, IntakeKeys]
) -> None:
    (decision,), events = decide(db, referral("R1", language="en"))

    (event,), (facts,) = told(events), recorded(events)
    assert decision.outcome == "accepted" and decision.referral_id
    assert event["subject"] == "referrals.accepted.yot" and event["schema_version"] == 2
    assert (event["referral_id"], event["agency_referral_id"], event["revision"]) == (decision.referral_id, "R1", 0)
    assert "person_id" not in event and "previously_referred" not in event and "person" not in event
    assert facts["subject"] == "intake.recorded.yot" and facts["person_id"].startswith("psn_")
    assert facts["referral_id"] == decision.referral_id and facts["event_id"] != event["event_id"]
    assert "Jordan" not in json.dumps(events) and "2010-05-17" not in json.dumps(events)
    with db[0].connect() as conn:
        row = conn.execute(select(ReferralRecord)).one()
    assert "Jordan" not in row.body
    assert json.loads(db[1].cipher.decrypt(row.body))["young_person"]["given_name"] == "Jordan"


def test_a_repeat_is_the_same_referral_and_an_update_is_a_new_revision(db: tuple[Engine, IntakeKeys]) -> None:
    body = referral("R1", language="en")
    (first,), _ = decide(db, body)
    (repeat,), repeated = decide(db, body, now=NOW + timedelta(minutes=1))
    (changed,), changes = decide(db, body | {"indicators": ["weapon_carrying"]}, update=True)
    (unknown,), (refusal,) = decide(db, referral("R2", language="en"), update=True)

    (repeat_event,), (changed_event,), (changed_facts,) = told(repeated), told(changes), recorded(changes)
    assert (repeat.outcome, repeat.referral_id, repeat_event["duplicate"]) == ("duplicate", first.referral_id, True)
    assert recorded(repeated)[0]["duplicate"], "risk and scheduling are told it repeats what they hold"
    assert (changed.outcome, changed.revision, changed_event["revision"]) == ("updated", 1, 1)
    assert changed_facts["revision"] == 1 and changed_facts["indicators"][0]["code"] == "weapon_carrying"
    assert unknown.outcome == "rejected" and refusal["subject"] == "referrals.rejected.yot"
    assert refusal["errors"][0]["field"] == "agency_referral_id"


def test_a_rejection_keeps_the_reasons_but_never_the_body(db: tuple[Engine, IntakeKeys]) -> None:
    body = referral("BAD", language="en")
    body["referrer"]["email"] = "jordan.private.address"
    (decision,), (event,) = decide(db, body)

    assert decision.outcome == "rejected"
    assert event["errors"] == [{"field": "referrer.email", "message": "not an email address"}]
    with db[0].connect() as conn:
        stored = conn.execute(select(RejectionRecord)).one()
        assert conn.execute(select(ReferralRecord)).first() is None
    assert "jordan.private.address" not in json.dumps([str(v) for v in stored])


def test_the_same_person_twice_in_one_batch_is_one_person_referred_again(db: tuple[Engine, IntakeKeys]) -> None:
    first = referral("R1", language="en")
    again = referral("R2", language="en")
    again["young_person"] |= {"given_name": "JORDAN", "family_name": " testperson "}
    other = referral("R3", language="en")
    other["young_person"]["date_of_birth"] = "2011-01-01"

    _, everything = decide(db, first, again, other)

    events = recorded(everything)
    assert events[0]["person_id"] == events[1]["person_id"] != events[2]["person_id"]
    assert "previously_referred" not in events[0] and "previously_referred" not in events[2], "absent, not null"
    assert events[1]["previously_referred"]["count"] == 1


def test_in_one_batch_a_bad_submission_is_rejected_and_each_other_finds_its_own_person(
    db: tuple[Engine, IntakeKeys]
) -> None:
    """Each referral's match keys are worked out once for the batch: a rejected body among them, and a repeat of one
    of them, shift no one onto another's person."""
    first = referral("R1", language="en")
    other = referral("R2", language="en")
    other["young_person"] |= {"given_name": "Amara", "date_of_birth": "2011-01-01"}
    again = referral("R3", language="en")
    again["young_person"] |= {"given_name": "JORDAN"}

    decisions, everything = decide(db, b'{"agency_referral_id": "BAD"', first, other, first, again)

    assert [d.outcome for d in decisions] == ["rejected", "accepted", "accepted", "duplicate", "accepted"]
    people = {e["agency_referral_id"]: e["person_id"] for e in recorded(everything)}
    assert people["R1"] == people["R3"] != people["R2"]
    assert [e["agency_referral_id"] for e in told(everything) if e["subject"] == "referrals.rejected.yot"] == [None]


def test_an_update_that_corrects_the_birth_date_moves_the_referral_to_that_person(
    db: tuple[Engine, IntakeKeys]
) -> None:
    someone = referral("R1", language="en")
    someone["young_person"]["date_of_birth"] = "2011-01-01"
    (before,) = recorded(decide(db, someone)[1])
    (other,) = recorded(decide(db, referral("R2", language="en"), now=NOW + timedelta(days=1))[1])

    (after,) = recorded(decide(db, referral("R1", language="en"), update=True, now=NOW + timedelta(days=2))[1])

    assert after["person_id"] == other["person_id"] != before["person_id"]
    assert "previously_referred" not in after, "R1 was received before R2, so R2 is not earlier"
    (third,) = recorded(decide(db, referral("R3", language="en"), now=NOW + timedelta(days=3))[1])
    assert third["previously_referred"]["count"] == 2


def test_impossible_dates_are_rejected_with_their_rules_and_nothing_is_stored(db: tuple[Engine, IntakeKeys]) -> None:
    body = referral("R9999", language="en", indicators=[{"code": "weapon_carrying", "observed_at": "9999-12-31"}])
    body["young_person"]["date_of_birth"] = "2019-01-01"

    (decision,), (event,) = decide(db, body)

    assert decision.outcome == "rejected" and event["subject"] == "referrals.rejected.yot"
    assert event["agency_referral_id"] == "R9999"
    assert event["errors"] == [
        {"field": "young_person.date_of_birth", "message": "the young person must be aged 8 to 25 on the referral date"},
        {"field": "indicators[0].observed_at",
         "message": "cannot be in the future: at the latest the day after the referral is received"},
    ]
    with db[0].connect() as conn:
        assert conn.execute(select(ReferralRecord)).first() is None


def test_an_update_is_aged_on_the_date_the_referral_was_first_received(db: tuple[Engine, IntakeKeys]) -> None:
    body = referral("R25", language="en")
    body["young_person"]["date_of_birth"] = "2000-12-01"  # 25 on NOW's date, 26 the next day
    (first,), _ = decide(db, body)

    (update,), events = decide(db, body | {"indicators": ["weapon_carrying"]}, update=True,
                               now=NOW + timedelta(days=2))
    (event,) = recorded(events)
    (new,), _ = decide(db, body | {"agency_referral_id": "R26"}, now=NOW + timedelta(days=2))

    assert (first.outcome, update.outcome, event["person"]["age_years"]) == ("accepted", "updated", 25)
    assert new.outcome == "rejected" and new.errors[0].field == "young_person.date_of_birth"


def test_event_ids_are_unpredictable_outside_intake_and_the_same_for_the_same_decision(
    db: tuple[Engine, IntakeKeys]
) -> None:
    """An agency knows its referral ids, its references and its message ids; were an event id made of them (it was
    `accepted:<referral id>:r<revision>`, `rejected:<subject>|<message id>`), it could publish first under it."""
    engine, keys = db

    def events(agency: str, key: str, data: bytes, *, update: bool = False, keep: bool = True) -> list[str]:
        with engine.connect() as conn, conn.begin() as transaction:
            _, out = decide_submissions(conn, [Submission(agency, data, key, "updated" if update else "submitted",
                                                          trace.INVALID_SPAN)], NOW,
                                        subjects=SUBJECTS, keys=keys)
            if not keep:  # as a transaction that failed before its commit, to be tried again
                transaction.rollback()
        return [o.event_id for o in out]

    body = referral("R1", language="en")
    key = "referrals.submitted.yot|R1"
    (facts, accepted) = events("yot", key, json.dumps(body).encode())
    (new_facts, updated) = events("yot", "referrals.updated.yot|R1", json.dumps(body | {"reason": "more"}).encode(),
                                  update=True)
    (again,) = events("yot", key, b"not json", keep=False)
    (rejected,) = events("yot", key, b"not json")
    (others,) = events("yot-b", "referrals.submitted.yot-b|R1", b"not json")
    with engine.connect() as conn:
        referral_id = conn.execute(select(ReferralRecord)).one().referral_id

    for event_id in (facts, accepted, new_facts, updated, rejected, others):
        assert re.fullmatch(r"(recorded|accepted|rejected)-[0-9a-f]{32}", event_id), event_id
        assert referral_id not in event_id and "R1" not in event_id and "yot" not in event_id
    assert again == rejected, "the same submission decided again gets the same id (the outbox keeps it once)"
    assert len({facts, accepted, new_facts, updated, rejected, others}) == 6


def test_what_an_agency_is_told_is_the_same_whether_or_not_another_agency_referred_the_child(
    db: tuple[Engine, IntakeKeys]
) -> None:
    """`referrals.accepted` once carried `person_id` and `previously_referred`: an agency could learn whether any
    other agency had referred a child. What it is told now depends on its own referral only."""
    known, unknown = referral("K1", language="en"), referral("U1", language="en")
    unknown["young_person"]["date_of_birth"] = "2011-02-03"  # nobody referred this one before
    decide(db, referral("OTHER", language="en"), agency="police")  # the other agency's referral of `known`

    (_, known_events), (_, unknown_events) = (decide(db, body, agency="yot", now=NOW + timedelta(hours=1))
                                              for body in (known, unknown))

    def shape(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k not in {"event_id", "referral_id", "agency_referral_id", "status_url"}}
                for e in told(events)]

    assert shape(known_events) == shape(unknown_events), "nothing the agency sees differs"
    assert "police" not in json.dumps(told(known_events))
    (known_facts,), (unknown_facts,) = recorded(known_events), recorded(unknown_events)
    assert known_facts["previously_referred"]["count"] == 1 and "previously_referred" not in unknown_facts, \
        "risk and scheduling are still told"


def withdraw(db: tuple[Engine, IntakeKeys], agency_referral_id: str, reason: str = "consent_withdrawn", *,
             agency: str = "yot", now: datetime = NOW, **more: Any) -> tuple[Decision, list[dict[str, Any]]]:
    """An agency's withdrawal, as both doors hand it to `decide_submissions`."""
    engine, keys = db
    body = {"agency_referral_id": agency_referral_id, "reason": reason, **more}
    with engine.begin() as conn:
        (decision,), out = decide_submissions(conn, [Submission(agency, json.dumps(body).encode(), uuid.uuid4().hex,
                                                                "withdraw", trace.INVALID_SPAN)], now,
                                              subjects=SUBJECTS, keys=keys)
    return decision, [_event(o) for o in out]


def test_a_withdrawal_is_recorded_once_told_to_the_agency_and_to_scheduling_and_a_repeat_changes_nothing(
    db: tuple[Engine, IntakeKeys]
) -> None:
    (accepted,), _ = decide(db, referral("R1", language="en"))

    first, events = withdraw(db, "R1", note="Family declined after the first call", now=NOW + timedelta(hours=1))
    again, repeated = withdraw(db, "R1", "other", now=NOW + timedelta(hours=2))

    internal, told_first = events
    assert (first.outcome, first.referral_id) == ("withdrawn", accepted.referral_id)
    assert internal["subject"] == "intake.withdrawn.yot" and told_first["subject"] == "referrals.withdrawn.yot"
    for event in (internal, told_first):
        assert (event["referral_id"], event["agency_referral_id"], event["reason"], event["duplicate"]) == (
            accepted.referral_id, "R1", "consent_withdrawn", False)
        assert datetime.fromisoformat(event["withdrawn_at"]) == NOW + timedelta(hours=1)
        assert "note" not in event, "the note stays with intake"
        assert re.fullmatch(r"(recorded|withdrawn)-[0-9a-f]{32}", event["event_id"]), event["event_id"]
    (told_again,) = repeated
    assert again.outcome == "already_withdrawn" and told_again["subject"] == "referrals.withdrawn.yot"
    assert (told_again["duplicate"], told_again["reason"]) == (True, "consent_withdrawn"), "the first reason stands"
    assert datetime.fromisoformat(told_again["withdrawn_at"]) == NOW + timedelta(hours=1)
    assert told_again["event_id"] != told_first["event_id"]
    with db[0].connect() as conn:
        row = conn.execute(select(ReferralRecord)).one()
    assert (row.withdrawal_reason, row.withdrawn_at.replace(tzinfo=UTC)) == ("consent_withdrawn", NOW + timedelta(hours=1))
    assert "Family" not in row.withdrawal_note, "the note is kept encrypted, as the body is"
    assert db[1].cipher.decrypt(row.withdrawal_note) == "Family declined after the first call"


def test_another_agencys_referral_is_not_found_exactly_as_an_unknown_one(db: tuple[Engine, IntakeKeys]) -> None:
    decide(db, referral("R1", language="en"), agency="police")

    others, (refused_others,) = withdraw(db, "R1")
    unknown, (refused_unknown,) = withdraw(db, "R2")

    assert others.outcome == unknown.outcome == "not_found"
    assert refused_others["subject"] == refused_unknown["subject"] == "referrals.rejected.yot"
    assert refused_others["errors"] == refused_unknown["errors"] == [
        {"field": "agency_referral_id", "message": "no referral of yours with this agency_referral_id: nothing to "
                                                   "withdraw"}]
    with db[0].connect() as conn:
        assert conn.execute(select(col(ReferralRecord.withdrawn_at))).scalar_one() is None, "police's stays as it was"


def test_a_withdrawal_with_a_reason_it_does_not_know_is_refused_naming_the_field_and_the_codes(
    db: tuple[Engine, IntakeKeys]
) -> None:
    decide(db, referral("R1", language="en"))

    bad_code, (refusal,) = withdraw(db, "R1", "changed_mind")
    two_lines, (note_refusal,) = withdraw(db, "R1", note="first line\nsecond line")
    too_long, (long_refusal,) = withdraw(db, "R1", note="x" * 501)

    assert bad_code.outcome == two_lines.outcome == too_long.outcome == "rejected"
    assert refusal["agency_referral_id"] == "R1"
    assert refusal["errors"] == [{"field": "reason", "message": "must be 'consent_withdrawn', 'referred_in_error', "
                                                                "'needs_met_elsewhere', 'moved_away' or 'other'"}]
    assert "changed_mind" not in json.dumps(refusal), "a rejection never quotes the value given"
    assert [e["field"] for e in note_refusal["errors"] + long_refusal["errors"]] == ["note", "note"]
    with db[0].connect() as conn:
        assert conn.execute(select(col(ReferralRecord.withdrawn_at))).scalar_one() is None


def test_a_withdrawn_referral_takes_no_update_and_is_not_accepted_again(db: tuple[Engine, IntakeKeys]) -> None:
    body = referral("R1", language="en")
    decide(db, body)
    withdraw(db, "R1", now=NOW + timedelta(hours=1))

    (update,), (refused_update,) = decide(db, body | {"indicators": ["weapon_carrying"]}, update=True,
                                          now=NOW + timedelta(hours=2))
    (repeat,), (refused_repeat,) = decide(db, body, now=NOW + timedelta(hours=3))

    assert update.outcome == repeat.outcome == "rejected"
    for refused in (refused_update, refused_repeat):
        assert refused["subject"] == "referrals.rejected.yot"
        (error,) = refused["errors"]
        assert error["field"] == "agency_referral_id"
        assert "withdrawn on 30 November 2026" in error["message"] and "new agency_referral_id" in error["message"]
    with db[0].connect() as conn:
        assert conn.execute(select(col(ReferralRecord.revision))).scalar_one() == 0


def test_a_submission_and_its_withdrawal_in_one_batch_are_decided_in_order(db: tuple[Engine, IntakeKeys]) -> None:
    """NATS hands intake a batch: an agency's referral and its withdrawal right after it may be in the same one."""
    engine, keys = db
    withdrawal = json.dumps({"agency_referral_id": "R1", "reason": "referred_in_error"}).encode()
    with engine.begin() as conn:
        decisions, out = decide_submissions(conn, [
            Submission("yot", json.dumps(referral("R1", language="en")).encode(), "k1", "submitted", trace.INVALID_SPAN),
            Submission("yot", withdrawal, "k2", "withdraw", trace.INVALID_SPAN)], NOW, subjects=SUBJECTS, keys=keys)

    assert [d.outcome for d in decisions] == ["accepted", "withdrawn"]
    assert [o.subject for o in out] == ["intake.recorded.yot", "referrals.accepted.yot", "intake.withdrawn.yot",
                                        "referrals.withdrawn.yot"]


def test_the_nats_servers_answer_on_a_submission_subject_is_dropped_not_rejected(
    db: tuple[Engine, IntakeKeys],
) -> None:
    """Another client can aim the server's answer at an agency's submission subject (shared/server_replies.py): the
    NATS door drops it unread, telling the agency nothing, and decides the agency's own referral beside it."""
    engine, keys = db
    bodies = [b'{"stream":"SUBMISSIONS","seq":2}', b"", json.dumps(referral("OWN-1", language="en")).encode()]
    batch = [Delivery(SUBJECTS.submitted("yot"), body, {}, f"k{i}", trace.INVALID_SPAN) for i, body in enumerate(bodies)]
    with engine.begin() as conn:
        out = handle_submissions(conn, batch, NOW, subjects=SUBJECTS, keys=keys, max_body_bytes=64 * 1024)

    assert [d.server_reply for d in batch] == [True, True, False]
    assert [e["subject"] for e in told([_event(o) for o in out])] == [SUBJECTS.accepted("yot")]
    with engine.connect() as conn:
        assert conn.execute(select(RejectionRecord)).first() is None
    (decision,), _ = decide(db, bodies[0])  # over HTTP the same body is the caller's own, and malformed
    assert decision.outcome == "rejected"
