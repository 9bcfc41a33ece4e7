"""The request-reply contract: a reply is its model or the one error shape, and clients can tell them apart."""

from __future__ import annotations

import pytest
from pydantic import Field

from shared.contracts.common import Contract
from shared.contracts.intake_rpc import STATUS, IntakeStatus
from shared.contracts.rpc import Empty, Endpoint, ErrorCode, NotFound, ServiceError, all_endpoints, decode_reply


def test_an_error_reply_is_raised_with_its_code_and_message() -> None:
    wire = NotFound("no referral ref_1 at intake").reply().model_dump_json().encode()
    with pytest.raises(ServiceError) as raised:
        decode_reply(STATUS, wire)
    assert (raised.value.code, raised.value.message) == (ErrorCode.NOT_FOUND, "no referral ref_1 at intake")


def test_a_reply_that_fits_neither_its_model_nor_the_error_shape_says_which_field_and_suggests_a_version_skew() -> None:
    with pytest.raises(ServiceError) as raised:
        decode_reply(STATUS, b'{"referral_id": "ref_1"}')
    assert raised.value.code == ErrorCode.INTERNAL
    assert "agency_id" in raised.value.message and "another version" in raised.value.message


def test_a_reply_is_validated_into_its_model() -> None:
    reply = decode_reply(STATUS, b'{"referral_id": "ref_1", "agency_id": "yot", "agency_referral_id": "R1", '
                                 b'"received_at": "2026-12-01T09:00:00+00:00", "submissions": 1, "revision": 0, '
                                 b'"person_id": null}')
    assert isinstance(reply, IntakeStatus) and reply.received_at.year == 2026


def test_no_reply_model_may_have_a_field_called_error() -> None:
    class Clashing(Contract):
        error: str = Field(default="")

    with pytest.raises(TypeError, match="error"):
        Endpoint("clash", Empty, Clashing, "never registered", ("intake",))


def test_every_endpoint_is_declared_once_per_service_and_verb() -> None:
    seen = [(service, e.verb) for e in all_endpoints() for service in e.services]
    assert len(seen) == len(set(seen)), sorted(s for s in seen if seen.count(s) > 1)
    assert len(seen) >= 40


def test_the_service_to_ask_is_the_only_one_that_answers_unless_named() -> None:
    assert STATUS.service(None) == "intake"
    with pytest.raises(ValueError, match="does not answer"):
        STATUS.service("risk")
