"""Telling the NATS server's own answers from messages: the bodies below are what nats-server 2.15 published onto a
reply subject (captured off the wire); none of ours may ever look like one, or a consumer would drop it unread."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import pytest
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from shared import contracts
from shared.contracts.common import Contract, Event
from shared.contracts.intake import Referral, Withdrawal
from shared.messaging import Delivery, PoisonMessage, parse_events
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


def _events() -> list[type[Event]]:
    """Every event contract in shared/contracts, however deep: a consumer added later decodes one of these."""
    for module in pkgutil.iter_modules(contracts.__path__):
        importlib.import_module(f"{contracts.__name__}.{module.name}")
    found: list[type[Event]] = []
    todo = list(Event.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo += model.__subclasses__()
    return sorted(found, key=lambda m: m.__name__)


CONSUMED = [Referral, Withdrawal, *_events()]
"""Every contract a JetStream consumer of ours may decode: agencies' submissions and every event (not only those
consumed today, so that a new consumer is covered without anyone remembering this list)."""


@pytest.mark.parametrize("model", CONSUMED, ids=lambda m: m.__name__)
def test_no_answer_of_the_server_decodes_as_a_contract_we_consume(model: type[BaseModel]) -> None:
    """Consumers ask whether a message is the server's answer only when it fails to decode (shared/messaging.py):
    this holds only while each contract forbids unknown fields and names none of those every answer has."""
    assert model.model_config.get("extra") == "forbid"
    assert not {"stream", "error", "type"} & {f.alias or name for name, f in model.model_fields.items()}
    for body in SERVER.values():
        with pytest.raises(ValidationError):
            model.model_validate_json(body)


class _Ping(Contract):
    n: int


def test_a_batch_of_events_leaves_out_the_servers_answers_and_still_refuses_poison() -> None:
    batch = [Delivery("intake.recorded.b", body, {}, f"k{i}", trace.INVALID_SPAN)
             for i, body in enumerate([b'{"n": 1}', SERVER["puback"], SERVER["acknowledgement's answer"], b'{"n": 2}'])]
    assert [(d.key, e.n) for d, e in parse_events(_Ping, batch)] == [("k0", 1), ("k3", 2)]
    assert [d.server_reply for d in batch] == [False, True, True, False]
    poison = Delivery("intake.recorded.b", b'{"stream": "S", "seq": 1, "n": 3}', {}, "k4", trace.INVALID_SPAN)
    with pytest.raises(PoisonMessage, match="not a valid _Ping"):
        parse_events(_Ping, [poison])
    assert not poison.server_reply
