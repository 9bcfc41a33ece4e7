"""Replies are read leniently, requests strictly (shared/contracts/rpc.py's docstring): a client reads a reply with
fields its contract does not know, at any depth, so a newer service may add one mid-upgrade; an error reply is still
told from a reply; a request with an unknown field is still refused."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts.common import LONDON
from shared.contracts.rpc import ErrorCode, NotFound, ServiceError, decode_reply
from shared.contracts.scheduling import CaseStatus, SessionStatus
from shared.contracts.scheduling_rpc import (
    CALENDAR_FEED,
    REOPTIMISE,
    STATUS,
    BookedSession,
    CaseSession,
    ReferralRequest,
    RoundResult,
    SchedulingStatus,
)

START, END = datetime(2026, 12, 8, 16, 0, tzinfo=LONDON), datetime(2026, 12, 8, 17, 0, tzinfo=LONDON)
SCHEDULED = SchedulingStatus(
    status=CaseStatus.SCHEDULED, tier=None, mentor_id="m-one", mentor_first_name="Ann", deadline_met=True,
    reason="assigned by sam: knows the family", sessions=[BookedSession(session_id="s-1", start=START, end=END)],
    history=[CaseSession(session_id="s-1", mentor_id="m-one", start=START, end=END, status=SessionStatus.BOOKED)])


def test_a_reply_with_fields_the_client_does_not_know_is_read_as_its_contract() -> None:
    wire: dict[str, Any] = SCHEDULED.model_dump(mode="json")
    wire["mentor_chosen_by"] = "sam"  # a newer service's fields: at the top, and in a list's items
    wire["sessions"][0]["room"] = "2"
    wire["history"][0]["kept_by_hand"] = True
    assert decode_reply(STATUS, json.dumps(wire).encode()) == SCHEDULED


def test_a_round_result_with_a_count_the_client_does_not_know_is_read() -> None:
    wire = RoundResult(considered=3, pinned=1, waitlisted_before=1, placed=1, moved=0,
                       solve_seconds=0.1).model_dump(mode="json") | {"pinned_by_scheduler": 1}
    assert decode_reply(REOPTIMISE, json.dumps(wire).encode()).pinned == 1


def test_an_error_reply_is_raised_even_where_every_field_of_the_reply_is_optional() -> None:
    """calendar.feed's reply has no required field: ignoring unknown fields, the error shape would pass for it."""
    wire = NotFound("no mentor m-x").reply().model_dump(mode="json")
    wire["error"]["hint"] = "a newer service's detail"
    for read in (lambda data: decode_reply(CALENDAR_FEED, data), lambda data: decode_reply(STATUS, data)):
        with pytest.raises(ServiceError) as raised:
            read(json.dumps(wire).encode())
        assert (raised.value.code, raised.value.message) == (ErrorCode.NOT_FOUND, "no mentor m-x")


@pytest.mark.parametrize("error", [
    {"code": "some_newer_code", "message": "the link was not revoked"},  # a code this version does not know
    {"code": "refused"},  # no message
    "refused",  # not even an object
])
def test_an_error_this_version_cannot_read_is_still_an_error_never_an_empty_reply(error: object) -> None:
    """calendar.feed's reply has no required field, so `{"error": …}` would pass for it once unknown fields are
    ignored: a refused revocation read as a reply saying nothing was wrong."""
    for endpoint in (CALENDAR_FEED, STATUS):
        with pytest.raises(ServiceError) as raised:
            decode_reply(endpoint, json.dumps({"error": error}).encode())
        assert raised.value.code == ErrorCode.INTERNAL, raised.value
        assert "cannot read" in raised.value.message
        if isinstance(error, dict) and "message" in error:
            assert error["message"] in raised.value.message


def test_a_reply_missing_a_field_of_its_contract_is_still_refused_naming_it() -> None:
    wire = SCHEDULED.model_dump(mode="json")
    del wire["mentor_id"]
    with pytest.raises(ServiceError) as raised:
        decode_reply(STATUS, json.dumps(wire).encode())
    assert raised.value.code == ErrorCode.INTERNAL and "mentor_id" in raised.value.message


def test_a_request_with_a_field_its_contract_does_not_know_is_refused() -> None:
    with pytest.raises(ValidationError, match="mentor_chosen_by"):
        ReferralRequest.model_validate_json(b'{"referral_id": "r-1", "mentor_chosen_by": "sam"}')
