"""Hundreds of generated malformed referrals at both doors of intake (HTTP and NATS).

Each must be refused with the specific errors its flaw causes; none may be stored or crash the service:
a valid referral still goes all the way to scheduled afterwards.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts.codes import INDICATOR_CODES, canonical_borough
from shared.contracts.intake import Referral
from tests.support.cluster import Cluster, Probe, fresh_language, intake_url, mentor, referral, unique
from tests.support.replies import refusal

pytestmark = pytest.mark.e2e
T = TypeVar("T")
Body = dict[str, Any]


@dataclass(frozen=True)
class Flaw:
    """One thing wrong with a body, and the error it must cause."""

    change: Callable[[Body], Body | bytes]
    field: str
    message: str
    keeps_id: bool = True


def _set(path: tuple[str, ...], value: Any) -> Callable[[Body], Body]:
    def change(body: Body) -> Body:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return body
    return change


def _drop(path: tuple[str, ...]) -> Callable[[Body], Body]:
    def change(body: Body) -> Body:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return body
    return change


_words = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=20)
_REQUIRED = ["referrer", "young_person", "consent", "reason"]
_YP_REQUIRED = ["given_name", "family_name", "date_of_birth", "gender", "borough", "languages"]

# Flaws that can be combined in one body (each touches a different field).
combinable = st.one_of(
    _words.filter(lambda k: k not in Referral.model_fields).map(
        lambda k: Flaw(_set((k,), 1), k, "unknown field")),
    st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none())
    .filter(lambda g: g not in {"female", "male", "non_binary", "not_stated"})
    .map(lambda g: Flaw(_set(("young_person", "gender"), g), "young_person.gender", "must be")),
    st.one_of(
        st.builds("{:04d}-{:02d}-{:02d}".format, st.integers(1900, 2020), st.integers(13, 99), st.integers(1, 28)),
        st.builds("{:04d}-{:02d}-{:02d}".format, st.integers(1900, 2020), st.integers(1, 12), st.integers(32, 99)),
        st.builds("{:02d}/{:02d}/{:04d}".format, st.integers(1, 28), st.integers(1, 12), st.integers(1990, 2020)),
    ).map(lambda d: Flaw(_set(("young_person", "date_of_birth"), d), "young_person.date_of_birth", "YYYY-MM-DD")),
    st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=30).filter(lambda b: canonical_borough(b) is None)
    .map(lambda b: Flaw(_set(("young_person", "borough"), b), "young_person.borough", "not a London borough")),
    st.text(max_size=8).filter(lambda code: not re.fullmatch(r"[a-z]{2}", code.strip().lower()))
    .map(lambda code: Flaw(_set(("young_person", "languages"), [code]), "young_person.languages[0]", "ISO 639-1")),
    st.text(min_size=1, max_size=30).filter(lambda c: c not in INDICATOR_CODES)
    .map(lambda c: Flaw(_set(("indicators",), [c]), "indicators[0].code", "unknown indicator")),
    st.just(Flaw(_set(("consent", "given"), False), "consent", "consent has not been given")),
    st.integers(-10**6, -1).map(lambda n: Flaw(_set(("prior_proven_offences",), n), "prior_proven_offences",
                                                 "must be at least 0")),
    st.one_of(st.text(alphabet=string.ascii_letters, min_size=1, max_size=10)
              .filter(lambda t: t.lower() not in {"inf", "nan", "infinity"}),
              st.lists(st.integers(), max_size=2))
    .map(lambda v: Flaw(_set(("age_at_first_proven_offence",), v), "age_at_first_proven_offence", "whole number")),
    st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
    .map(lambda v: Flaw(_set(("reason",), v), "reason", "JSON string")),
    st.text(max_size=40).filter(lambda e: "@" not in e)
    .map(lambda e: Flaw(_set(("referrer", "email"), e), "referrer.email", "not an email address")),
    st.tuples(st.integers(1, 23), st.integers(0, 22)).filter(lambda t: t[1] < t[0]).map(
        lambda t: Flaw(_set(("availability",), [{"day": "mon", "start": f"{t[0]:02d}:00", "end": f"{t[1]:02d}:00"}]),
                       "availability[0]", "ends before it starts")),
)

# Flaws that stand alone (they remove or replace whole parts of the body).
structural = st.one_of(
    st.sampled_from(_REQUIRED).map(lambda f: Flaw(_drop((f,)), f, "required")),
    st.just(Flaw(_drop(("agency_referral_id",)), "agency_referral_id", "required", keeps_id=False)),
    st.sampled_from(_YP_REQUIRED).map(lambda f: Flaw(_drop(("young_person", f)), f"young_person.{f}", "required")),
    st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=10), st.none(), st.booleans())
    .map(lambda v: Flaw(lambda _: json.dumps(v).encode(), "", "JSON object", keeps_id=False)),
    # (an empty body is what the server sends as the answer to an acknowledgement: dropped unanswered, see
    # shared/server_replies.py and test_jetstream_permissions.py)
    st.binary(max_size=60).filter(lambda b: not _is_json(b) and bool(b.strip()))
    .map(lambda b: Flaw(lambda _: b, "", "not valid JSON", keeps_id=False)),
)

malformed = st.one_of(structural.map(lambda f: [f]), st.lists(combinable, min_size=1, max_size=3,
                                                              unique_by=lambda f: f.field))


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def _apply(flaws: list[Flaw], arid: str, language: str) -> bytes:
    body: Body | bytes = referral(arid, language=language)
    for flaw in flaws:
        assert isinstance(body, dict)
        body = flaw.change(body)
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def _assert_refused_specifically(errors: list[dict[str, str]], flaws: list[Flaw]) -> None:
    assert errors, "at least one error"
    for flaw in flaws:
        assert any(e["field"] == flaw.field and flaw.message in e["message"] for e in errors), (flaw, errors)


class _Loop:
    """An event loop in a thread, so that the synchronous hypothesis tests can talk NATS."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def nats_probe(cluster: Cluster) -> Iterator[tuple[_Loop, Probe]]:
    loop = _Loop()
    probe = loop.run(Probe.open(cluster.nats_url, cluster.subjects))
    try:
        yield loop, probe
    finally:
        loop.run(probe.close())
        loop.close()


def _still_works_and_nothing_was_stored(
    cluster: Cluster, loop: _Loop, probe: Probe, agency: str, arids: list[str], submit: Callable[[Body], None]
) -> None:
    for arid in arids:
        status = loop.run(probe.rpc("intake", "status", {"agency_id": agency, "agency_referral_id": arid}))
        assert refusal(status).code == "not_found", arid
    lang = fresh_language()
    loop.run(probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]}))
    good = unique("GOOD")
    submit(referral(good, language=lang))
    accepted = loop.run(probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == good,
                                       timeout=10))
    rid = accepted[0]["referral_id"]
    loop.run(probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid, timeout=15))
    assert [e["agency_referral_id"] for e in probe.matching(cluster.subjects.accepted(agency))] == [good]


def test_malformed_bodies_over_http_are_refused_specifically_and_none_is_stored(
    cluster: Cluster, nats_probe: tuple[_Loop, Probe]
) -> None:
    loop, probe = nats_probe
    agency = unique("http")
    key = loop.run(probe.rpc("intake", "agencies.add", {"agency_id": agency, "name": "Fuzzed agency"}))["api_key"]
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    arids: list[str] = []
    with httpx.Client(base_url=intake_url(cluster), timeout=15) as http:

        @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
        @given(flaws=malformed)
        def refused(flaws: list[Flaw]) -> None:
            arid = unique("BAD")
            arids.append(arid)
            answer = http.post("/v1/referrals", content=_apply(flaws, arid, "en"), headers=headers)
            assert answer.status_code == 422, (flaws, answer.text)
            _assert_refused_specifically(answer.json()["errors"], flaws)
            if all(f.keeps_id for f in flaws):
                assert answer.json()["agency_referral_id"] == arid

        refused()

        def submit(body: Body) -> None:
            assert http.post("/v1/referrals", json=body, headers=headers).status_code == 202

        _still_works_and_nothing_was_stored(cluster, loop, probe, agency, arids, submit)
    assert len(arids) >= 1000, "enough examples ran"


def test_malformed_bodies_over_nats_are_refused_specifically_and_none_is_stored(
    cluster: Cluster, nats_probe: tuple[_Loop, Probe]
) -> None:
    loop, probe = nats_probe
    agency = unique("nats")
    subject = cluster.subjects.submitted(agency)
    arids: list[str] = []

    async def send(data: bytes) -> dict[str, Any]:
        # event ids are unpredictable; one body is sent at a time, so the rejection not seen before is its answer
        before = {e["event_id"] for e in probe.matching(cluster.subjects.rejected(agency))}
        await probe.nc.jetstream().publish(subject, data, headers={"Nats-Msg-Id": uuid.uuid4().hex})
        found = await probe.wait_for(cluster.subjects.rejected(agency), lambda e: e["event_id"] not in before,
                                     timeout=10)
        return found[0]

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(flaws=malformed)
    def refused(flaws: list[Flaw]) -> None:
        arid = unique("BAD")
        arids.append(arid)
        rejected = loop.run(send(_apply(flaws, arid, "en")))
        _assert_refused_specifically(rejected["errors"], flaws)
        if all(f.keeps_id for f in flaws):
            assert rejected["agency_referral_id"] == arid

    refused()

    def submit(body: Body) -> None:
        loop.run(probe.submit(agency, body))

    _still_works_and_nothing_was_stored(cluster, loop, probe, agency, arids, submit)
    assert len(arids) >= 800, "enough examples ran"
