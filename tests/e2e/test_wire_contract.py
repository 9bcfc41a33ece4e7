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
from jsonschema import Draft202012Validator, FormatChecker
from nats.aio.msg import Msg
from pydantic import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from apps.devstack.local_nats import start_nats_server
from services.intake.validation import validate_referral
from shared import asyncapi
from shared.contracts.channels import CHANNELS, Channel
from shared.contracts.intake import Referral
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


@pytest.fixture(scope="module")
def traffic(wire: Wire) -> Wire:
    """The wire, once the pipeline has been pushed through every path with a listener on every subject."""
    async def record() -> None:
        listener = await nats.connect(wire.cluster.nats_url)
        probe = await Probe.open(wire.cluster.nats_url, wire.cluster.subjects)
        try:
            async def seen(msg: Msg) -> None:
                wire.seen.append(msg)

            await listener.subscribe(f"{wire.cluster.namespace}.>", cb=seen)
            await listener.flush()
            await _push_the_pipeline(wire, probe)
            await listener.flush()
        finally:
            await probe.close()
            await listener.close()

    asyncio.run(record())
    return wire


def test_everything_on_the_wire_is_in_the_asyncapi_documents(traffic: Wire) -> None:
    wire, cluster = traffic, traffic.cluster
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
    """A referral (with a safeguarding alert) through all three services, an update, its withdrawal, a rejection and a
    poison message two services dead-letter; returns once each has been seen on the wire."""
    s, js = wire.cluster.subjects, probe.nc.jetstream()
    language, agency = unique_language(), unique("yot")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=language)]})
    body = referral(unique("REF"), language=language,  # both forms the contract allows: a code, or {code, observed_at}
                    indicators=["threat_to_life_warning", {"code": "peers_offending", "observed_at": "2026-10-01"}])
    await probe.submit(agency, body)
    accepted = await probe.wait_for(s.accepted(agency), lambda e: e["agency_referral_id"] == body["agency_referral_id"])
    rid = accepted[0]["referral_id"]
    await probe.wait_for(s.assessed(agency), lambda e: e["referral_id"] == rid)
    await probe.wait_for(s.alert(agency), lambda e: e["referral_id"] == rid)

    await js.publish(s.updated(agency), json.dumps({**body, "indicators": ["peers_offending"]}).encode())
    await probe.wait_for(s.assessed(agency), lambda e: e["referral_id"] == rid and e["number"] == 2, timeout=20)

    await wait_until(lambda: any(probe.matching(subject, lambda e: e["referral_id"] == rid)
                                 for subject in (s.scheduled(agency), s.waitlisted(agency))),
                     timeout=20, what="the referral booked or waitlisted")
    await probe.withdraw(agency, body["agency_referral_id"], "other", note="a few words")
    await probe.wait_for(s.withdrawn(agency), lambda e: e["referral_id"] == rid)

    refused = {k: v for k, v in referral(unique("BAD"), language=language).items() if k != "young_person"}
    await probe.submit(agency, refused)
    await probe.wait_for(s.rejected(agency), lambda e: e["agency_referral_id"] == refused["agency_referral_id"])

    await js.publish(s.recorded(agency), b'{"referral_id": "not a whole referral"}',
                     headers={"Nats-Msg-Id": unique("poison")})
    expected = {"referrals.submitted", "referrals.updated", "referrals.accepted", "intake.recorded", "referrals.rejected",
                "referrals.withdraw", "referrals.withdrawn", "intake.withdrawn", "risk.assessed", "safeguarding.alert",
                "deadletter.risk", "deadletter.scheduling"}

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


def _documents() -> list[dict[str, Any]]:
    return [json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))
            for name in (asyncapi.AGENCY_DOCUMENT, asyncapi.INTERNAL_DOCUMENT)]


class Published:
    """The payload and header schemas of each channel of the published documents, read as a third party reads
    them: with the `jsonschema` package, every `$ref` resolved inside the document, formats checked."""

    _BASE = "urn:reroute:asyncapi"

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents

    def message(self, subject: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(document, message) of the channel whose address covers `subject` (without the namespace)."""
        for document in self.documents:
            for channel in document["channels"].values():
                if channel["address"] is not None and asyncapi.covers(channel["address"], subject):
                    (ref,) = [m["$ref"] for m in channel["messages"].values()]
                    return document, document["components"]["messages"][ref.rsplit("/", 1)[-1]]
        return None

    def errors(self, document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
        registry: Registry[Any] = Registry().with_resource(self._BASE, DRAFT202012.create_resource(document))
        root = {"$ref": self._BASE + schema["$ref"]} if "$ref" in schema else schema
        validator = Draft202012Validator(root, registry=registry, format_checker=FormatChecker())
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                for e in validator.iter_errors(instance)]

    def misfits(self, subject: str, data: bytes, headers: dict[str, str]) -> list[str]:
        found = self.message(subject)
        if found is None:
            return [f"{subject}: no channel"]
        document, message = found
        schema = message["payload"]
        body: Any = data.decode() if schema.get("type") == "string" else json.loads(data)
        problems = self.errors(document, schema, body)
        if "headers" in message:
            problems += [f"header {p}" for p in self.errors(document, message["headers"], headers)]
        return [f"{subject} ({message['name']}): {p}" for p in problems]


def test_every_message_on_the_wire_fits_the_published_json_schemas(traffic: Wire) -> None:
    """Each event the services published, each referral and update the test sent as an agency does (codes and
    {code, observed_at} indicators) and each request, checked by `jsonschema` against the documents' schemas."""
    published, prefix = Published(_documents()), f"{traffic.cluster.namespace}."
    problems, checked = [], set()
    for msg in traffic.seen:
        headers = dict(msg.headers or {})
        bare = msg.subject.removeprefix(prefix)
        if headers.get("Nats-Msg-Id", "").startswith("poison-") or bare.startswith("$JS."):
            continue  # the test's own junk, and JetStream's API
        if bare.startswith("referrals.submitted.") and json.loads(msg.data).get("agency_referral_id", "").startswith(
                "BAD-"):
            continue  # refused on purpose (no young_person): the schema must refuse it too, as the next test shows
        problems += published.misfits(bare, msg.data, headers)
        checked.add(bare.split(".")[0] + "." + bare.split(".")[1])
    assert not problems, "\n".join(problems)
    assert checked >= {"referrals.submitted", "referrals.updated", "referrals.accepted", "referrals.rejected",
                       "intake.recorded", "risk.assessed", "safeguarding.alert", "deadletter.risk"}, checked


def test_the_referral_forms_agencies_send_fit_the_published_schema_and_bad_ones_do_not() -> None:
    published = Published(_documents())
    found = published.message("referrals.submitted.yot-a")
    assert found is not None
    document, message = found
    examples = json.loads((ROOT / "examples" / "referrals.json").read_text(encoding="utf-8"))
    good = [e for e in examples if "-BAD-" not in e["agency_referral_id"]]  # the sample's one refusal, on purpose
    assert good and len(good) < len(examples), "examples/referrals.json holds referrals, and one the demo refuses"
    for example in good:
        assert published.errors(document, message["payload"], example) == [], example["agency_referral_id"]
    (refused,) = [e for e in examples if e not in good]
    assert any("is not a 'date'" in e for e in published.errors(document, message["payload"], refused))
    codes = referral("YOT/2026/17", language="en", indicators=["weapon_carrying", "peers_offending"])
    objects = referral("YOT/2026/18", language="en",
                       indicators=[{"code": "weapon_carrying", "observed_at": "2026-09-01"}, "peers_offending"])
    assert published.errors(document, message["payload"], codes) == []
    assert published.errors(document, message["payload"], objects) == []
    for bad, why in [({**codes, "indicators": [7]}, "is not valid under any of the given schemas"),
                     ({**codes, "nickname": "J"}, "Additional properties are not allowed"),
                     ({k: v for k, v in codes.items() if k != "young_person"}, "'young_person' is a required property"),
                     ({**codes, "consent": {"given": True, "recorded_at": "yesterday"}}, "is not a 'date-time'")]:
        errors = published.errors(document, message["payload"], bad)
        assert any(why in e for e in errors), (why, errors)


@pytest.mark.parametrize(("field", "value", "agrees"), [
    *[(("consent", "given"), v, False) for v in ["yes", "1", 1, "true", None]],
    (("consent", "given"), True, True),
    *[(("prior_proven_offences",), v, False) for v in ["3", True, 2.5]],
    *[(("prior_proven_offences",), v, True) for v in [3, 3.0, None]],
    (("age_at_first_proven_offence",), "12", False),
    (("preferences",), {"mentor_gender_required": "false"}, False),
    (("preferences",), {"mentor_gender_required": False}, True),
    (("young_person", "date_of_birth"), 1262304000, False),
    (("consent", "recorded_at"), 1700000000, False),
    # Text of digits alone: pydantic would read it as seconds (or milliseconds) since 1970, as it would a number
    *[(("young_person", "date_of_birth"), v, False) for v in ["1262304000", "1262304000000"]],
    (("consent", "recorded_at"), "1700000000", False),
    (("indicators",), [{"code": "peers_offending", "observed_at": "1767312000"}], False),
    (("young_person", "date_of_birth"), "2010-01-01", True),
    (("indicators",), [{"code": "peers_offending", "observed_at": "2026-01-02"}], True),
])
def test_the_published_schema_and_intake_agree_on_each_fields_json_type(
    field: tuple[str, ...], value: Any, agrees: bool
) -> None:
    """An agency that validates against docs/asyncapi.json gets the verdict intake gives: no "yes" for true, no "3"
    for 3, no number of seconds for a date, as a number or as text (pydantic's lax mode would have taken them)."""
    published = Published(_documents())
    found = published.message("referrals.submitted.yot-a")
    assert found is not None
    body = referral("YOT/2026/19", language="en")
    here = body
    for part in field[:-1]:
        here = here[part]
    here[field[-1]] = value

    schema_errors = published.errors(found[0], found[1]["payload"], body)
    intake = validate_referral(json.dumps(body).encode())

    assert (schema_errors == []) is agrees, schema_errors
    assert isinstance(intake, Referral) is agrees, intake
