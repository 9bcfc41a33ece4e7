"""Telling the NATS server's own answers from messages: the bodies below are what nats-server 2.15 published onto a
reply subject (captured off the wire); none of ours may ever look like one, or a consumer would drop it unread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.server_replies import is_server_reply

SERVER = {
    "puback": b'{"stream":"SUBMISSIONS","seq":2}',
    "duplicate": b'{"stream":"S","seq":2,"duplicate": true}',
    "in a domain": b'{"stream":"S","domain":"hub","seq":7}',
    "too large": b'{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"},'
                 b'"stream":"S","seq":0}',
    "expectation failed": b'{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"},'
                          b'"stream":"SUBMISSIONS","seq":0}',
    "consumer info": b'{"type":"io.nats.jetstream.api.v1.consumer_info_response","stream_name":"O","name":"c",'
                     b'"config":{"durable_name":"c","deliver_subject":"dlv.c"},"num_pending":0}',
    "api error": b'{"type":"io.nats.jetstream.api.v1.consumer_info_response","error":{"code":404,"err_code":10014,'
                 b'"description":"consumer not found"}}',
    "acknowledgement's answer": b"",
}


@pytest.mark.parametrize("name", SERVER)
def test_each_answer_of_the_server_is_recognised(name: str) -> None:
    assert is_server_reply(SERVER[name])


def _examples() -> list[bytes]:
    referrals = json.loads((Path(__file__).parents[2] / "examples" / "referrals.json").read_text())
    return [json.dumps(r).encode() for r in referrals]


OURS = {
    "an empty object (intake rejects it, naming what is missing)": b"{}",
    "not json": b"hello",
    "a list": b'[{"stream": "S", "seq": 1}]',
    "a request's error reply": b'{"error": {"code": "refused", "message": "no"}}',
    "a puback with more besides": b'{"stream": "S", "seq": 1, "agency_referral_id": "R-1"}',
    "an event": b'{"schema_version": 2, "event_id": "e1", "referral_id": "ref_1", "stream": "x", "seq": 1}',
    "deeply nested": b"[" * 5000 + b"]" * 5000,
    "an error without the server's code": b'{"error": {"code": 400, "description": "x"}}',
}


@pytest.mark.parametrize("name", OURS)
def test_no_message_of_ours_or_an_agencys_is_taken_for_one(name: str) -> None:
    assert not is_server_reply(OURS[name])


def test_no_example_referral_is_taken_for_one() -> None:
    examples = _examples()
    assert examples and not any(is_server_reply(body) for body in examples)
