"""The wire against the contract: every subject that flows through the running pipeline, and every subscription and
durable consumer the services hold, is a channel of docs/asyncapi.json or docs/asyncapi-internal.json, and every
event's body and headers fit the channel's contract.

The services run as processes on a nats-server of this test's own, with its monitoring port open: /connz lists
the subscriptions each connection holds, /jsz the durable consumers with their filter subjects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from pydantic import ValidationError

from apps.devstack.local_nats import start_nats_server
from shared import asyncapi
from shared.contracts.channels import CHANNELS, Channel
from shared.contracts.rpc import SERVICES, all_endpoints
from tests.support.cluster import Cluster, Probe, mentor, ready, referral, unique, unique_language
from tests.support.suite import drop_schemas, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = f"docs/{asyncapi.AGENCY_DOCUMENT} nor docs/{asyncapi.INTERNAL_DOCUMENT}"


@dataclass
class Wire:
    cluster: Cluster
    monitor: str
    seen: list[Msg] = field(default_factory=list)

    def get(self, path: str) -> Any:
        answer = httpx.get(f"{self.monitor}{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def subscriptions(self) -> list[tuple[str, str]]:
        """(connection, subject) of every subscription a service's connection holds, bar its reply inbox."""
        held = []
        for conn in self.get("/connz?subs=detail&limit=1024")["connections"]:
            name = conn.get("name") or ""
            if any(name.startswith(f"reroute-{s}-") for s in SERVICES):
                held += [(name, sub["subject"]) for sub in conn.get("subscriptions_list_detail", [])
                         if not sub["subject"].startswith("_INBOX")]
        return held

    def consumers(self) -> list[tuple[str, str]]:
        """(durable, filter subject) of every durable consumer on the server."""
        found = []
        for account in self.get("/jsz?consumers=true&config=true")["account_details"]:
            for stream in account.get("stream_detail", []):
                for consumer in stream.get("consumer_detail", []):
                    config = consumer["config"]
                    filters = config.get("filter_subjects") or [config.get("filter_subject") or ">"]
                    found += [(consumer["name"], f) for f in filters]
        return found

    def flowed(self, channel: str) -> list[Msg]:
        prefix = f"{self.cluster.namespace}."
        return [m for m in self.seen if _channel_of(m.subject.removeprefix(prefix)) == channel]


def _channel_of(subject: str) -> str | None:
    return next((c.name for c in CHANNELS if asyncapi.covers(c.address(), subject)), None)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    store = tmp_path_factory.mktemp("wire-nats")
    config = store / "monitor.conf"
    config.write_text(json.dumps({"http_port": -1}))  # any free port, reported in the ports file beside the store
    proc, url = start_nats_server(store, config=config, log_file=store / "nats.log")
    try:
        ports = json.loads(next(store.glob(f"*_{proc.pid}.ports")).read_text())
        cluster = make_cluster((url, False), tmp_path_factory.mktemp("wire-data"), "wire", isolated=True)
        try:
            asyncio.run(ready(cluster))
            yield Wire(cluster, ports["monitoring"][0])
        finally:
            cluster.processes.stop_all()
            drop_schemas(cluster)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_everything_on_the_wire_is_in_the_asyncapi_documents(wire: Wire) -> None:
    cluster, s = wire.cluster, wire.cluster.subjects
    listener = await nats.connect(cluster.nats_url)
    probe = await Probe.open(cluster.nats_url, s)
    try:
        async def record(msg: Msg) -> None:
            wire.seen.append(msg)

        await listener.subscribe(f"{cluster.namespace}.>", cb=record)
        await listener.flush()
        await _push_the_pipeline(wire, probe)
        await listener.flush()
    finally:
        await probe.close()
        await listener.close()

    documents = [json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))
                 for name in (asyncapi.AGENCY_DOCUMENT, asyncapi.INTERNAL_DOCUMENT)]
    problems = [f"{subject} flowed on the wire, but is in neither {DOCUMENTS}"
                for subject in asyncapi.undocumented([m.subject for m in wire.seen], documents,
                                                     namespace=cluster.namespace)]
    for connection, subject in wire.subscriptions():
        problems += [f"{connection} subscribes to {subject}, which is in neither {DOCUMENTS}"
                     for _ in asyncapi.undocumented([subject], documents, namespace=cluster.namespace)]
    for durable, subject in wire.consumers():
        problems += [f"the durable consumer {durable} filters {subject}, which is in neither {DOCUMENTS}"
                     for _ in asyncapi.undocumented([subject], documents, namespace=cluster.namespace)]
    for channel in CHANNELS:
        problems += _misfits(channel, wire.flowed(channel.name))
    problems += _misfit_requests(wire)
    assert not problems, "\n".join(problems)
    assert {durable for durable, _ in wire.consumers()} >= {"intake-submitted", "risk-recorded", "scheduling-recorded",
                                                           "scheduling-assessed"}, "the services' consumers are seen"


async def _push_the_pipeline(wire: Wire, probe: Probe) -> None:
    """A referral (with a safeguarding alert) through all three services, an update, a rejection and a poison
    message two services dead-letter; returns once each has been seen on the wire."""
    s, js = wire.cluster.subjects, probe.nc.jetstream()
    language, agency = unique_language(), unique("yot")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=language)]})
    body = referral(unique("REF"), language=language, indicators=["threat_to_life_warning", "peers_offending"])
    await probe.submit(agency, body)
    accepted = await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == body["agency_referral_id"])
    rid = accepted[0]["referral_id"]
    await probe.wait_for(s.assessed(agency), lambda e: e["referral_id"] == rid)
    await probe.wait_for(s.alert(agency), lambda e: e["referral_id"] == rid)

    await js.publish(s.updated(agency), json.dumps({**body, "indicators": ["peers_offending"]}).encode())
    await probe.wait_for(s.assessed(agency), lambda e: e["referral_id"] == rid and e["number"] == 2, timeout=20)

    refused = {k: v for k, v in referral(unique("BAD"), language=language).items() if k != "young_person"}
    await probe.submit(agency, refused)
    await probe.wait_for(s.rejected(agency), lambda e: e["agency_referral_id"] == refused["agency_referral_id"])

    await js.publish(s.recorded(agency), b'{"referral_id": "not a whole referral"}',
                     headers={"Nats-Msg-Id": unique("poison")})
    expected = {"referrals.submitted", "referrals.updated", "referrals.accepted", "intake.recorded", "referrals.rejected",
                "risk.assessed", "safeguarding.alert", "deadletter.risk", "deadletter.scheduling"}

    def missing() -> list[str]:
        gaps = sorted(c for c in expected if not wire.flowed(c))
        if not (wire.flowed("sessions.scheduled") or wire.flowed("sessions.waitlisted")):
            gaps.append("sessions.scheduled or sessions.waitlisted")
        return gaps

    await wait_until(lambda: not missing(), timeout=30, every=0.2,
                     what=lambda: f"traffic on {missing()} (the wire test pushes through every path)")


def _misfits(channel: Channel, messages: list[Msg]) -> list[str]:
    """Each message a service published on `channel` whose body or headers do not fit the channel's contract."""
    if not any(p in SERVICES for p in channel.producers):
        return []  # an agency's submission: intake's own tests hold what it accepts and refuses
    problems = []
    for msg in messages:
        if (msg.headers or {}).get("Nats-Msg-Id", "").startswith("poison-"):
            continue  # the test's own junk, published as if by intake
        try:
            channel.headers.model_validate(msg.headers or {})
            if channel.payload is None:
                assert not msg.data, "a notice has an empty body"
            else:
                channel.payload.model_validate_json(msg.data)
        except (ValidationError, AssertionError) as exc:
            problems.append(f"{msg.subject} does not fit {channel.name}'s contract: {exc}")
    return problems


def _misfit_requests(wire: Wire) -> list[str]:
    """Each request on the wire (the test's own and the services' to each other) that does not fit its endpoint."""
    requests = {wire.cluster.subjects.rpc(service, e.verb): e.request for e in all_endpoints() for service in e.services}
    problems = []
    for msg in wire.seen:
        model = requests.get(msg.subject)
        if model is not None:
            try:
                model.model_validate_json(msg.data or b"{}")
            except ValidationError as exc:
                problems.append(f"the request on {msg.subject} does not fit {model.__name__}: {exc}")
    return problems
