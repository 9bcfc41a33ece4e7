"""The AsyncAPI documents in docs/ are what the declarations generate, and the declarations are what the services
really register and what the agencies' NATS permissions really allow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faststream import FastStream

from apps.console.erasure import SpanErasure
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.risk.app import RiskSettings
from services.risk.app import create_app as create_risk
from services.scheduling.app import SchedulingSettings
from services.scheduling.app import create_app as create_scheduling
from shared import asyncapi
from shared.contracts.channels import AGENCY, AGENCY_ID, CHANNELS, Channel
from shared.contracts.rpc import SERVICES
from shared.migrations import upgrade_all
from shared.nats_auth import agency_user, jetstream_use, service_user
from shared.service import ServiceHost
from shared.settings import ServiceSettings
from shared.subjects import Subjects

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "docs"


def test_the_checked_in_documents_are_the_generated_ones() -> None:
    for name, document in asyncapi.documents().items():
        checked_in = json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))
        assert checked_in == document, f"docs/{name} is stale: regenerate it with `make docs`"
    done = subprocess.run([sys.executable, "-m", "shared.asyncapi", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_check_fails_naming_a_stale_document_and_writing_refreshes_it(tmp_path: Path) -> None:
    assert asyncapi.main(["--docs", str(tmp_path)]) == 0
    assert asyncapi.main(["--docs", str(tmp_path), "--check"]) == 0
    stale = tmp_path / asyncapi.INTERNAL_DOCUMENT
    stale.write_text(stale.read_text().replace("deadletter.risk", "deadletter.rsik"))

    assert asyncapi.main(["--docs", str(tmp_path), "--check"]) == 1
    assert asyncapi.main(["--docs", str(tmp_path)]) == 0
    assert asyncapi.main(["--docs", str(tmp_path), "--check"]) == 0


def test_every_declared_channel_is_in_exactly_one_document_with_its_payload_schema() -> None:
    docs = asyncapi.documents()
    for channel in CHANNELS:
        holding = [name for name, d in docs.items() if channel.name in d["channels"]]
        assert len(holding) == 1, f"{channel.name} is in {holding}"
        doc = docs[holding[0]]
        assert doc["channels"][channel.name]["address"] == channel.address()
        model = channel.payload or channel.headers
        assert model.__name__ in doc["components"]["schemas"], f"{channel.name}: no schema of {model.__name__}"
        assert channel.name == channel.address().removesuffix(f".{AGENCY_ID}"), "a channel is named by its subject"


def _permits(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or token not in ("*", got[i]):
            return False
    return len(want) == len(got)


def test_the_agency_document_is_exactly_what_an_agency_may_publish_and_read() -> None:
    agency = agency_user("yot-a", password_hash="")
    for channel in CHANNELS:
        subject = channel.address().replace(AGENCY_ID, "yot-a")
        may_publish = any(_permits(p, subject) for p in agency.publish)
        may_read = any(_permits(p, subject) for p in agency.subscribe)
        assert (channel.audience == "agency") == (may_publish or may_read), (
            f"{channel.name}: declared {channel.audience}, but an agency may publish it: {may_publish}, read it: "
            f"{may_read} (shared/nats_auth.py)")
        assert (AGENCY in channel.producers) == may_publish, f"{channel.name}: agencies as producers"
        assert (AGENCY in channel.consumers) == (may_read and not may_publish), f"{channel.name}: agencies as readers"
    agency_doc = asyncapi.agency_document()
    # an agency's JetStream API and acknowledgements are how it reads the channels from its durable consumers (which
    # the document's description names), as its inbox is how it hears replies: not channels of their own
    protocol = [p for p in agency.publish if p.startswith("$JS.")]
    assert protocol and all(".agency-yot-a" in p for p in protocol), protocol  # its own consumers only
    assert "agency-<agency_id>" in agency_doc["info"]["description"]
    for permitted in (*(p for p in agency.publish if p not in protocol),
                      *(s for s in agency.subscribe if not s.startswith("_INBOX"))):
        assert any(_permits(permitted, a.replace(AGENCY_ID, "yot-a")) for a in asyncapi.addresses(agency_doc)), (
            f"an agency may use {permitted}, but the agency document has no channel for it")


def test_each_service_may_publish_what_it_is_declared_to_produce() -> None:
    for channel in CHANNELS:
        for producer in (p for p in channel.producers if p in SERVICES):
            subject = channel.address().replace(AGENCY_ID, "yot-a")
            assert any(_permits(p, subject) for p in service_user(producer, "").publish), (
                f"{producer} is declared to publish {channel.name}, but its NATS permissions refuse it")


@dataclass(frozen=True)
class Registration:
    service: str
    subjects: list[str]
    stream: str
    what: str


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Registration], list[FastStream]]]:
    """Each service's app built by its own create_app on a migrated SQLite data dir, never started (nothing
    connects), with every durable consumer it registers."""
    data_dir = tmp_path_factory.mktemp("asyncapi-services")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DATABASE_URL", raising=False)
        mp.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        for key, value in {"NATS_URL": "nats://127.0.0.1:1", "REROUTE_DATA_DIR": str(data_dir),
                           "REROUTE_NAMESPACE": NAMESPACE, "REROUTE_INTAKE_HTTP_PORT": "0",
                           "REROUTE_CALENDAR_PORT": "0"}.items():
            mp.setenv(key, value)
        upgrade_all(ServiceSettings())
        registrations: list[Registration] = []
        hosts: list[ServiceHost] = []
        consume = ServiceHost.consume

        def recording(self: ServiceHost, **kwargs: Any) -> None:
            registrations.append(Registration(self.name, list(kwargs["subjects"]), kwargs["stream"], kwargs["what"]))
            if self not in hosts:
                hosts.append(self)
            consume(self, **kwargs)

        mp.setattr(ServiceHost, "consume", recording)
        apps = [create_intake(IntakeSettings()), create_risk(RiskSettings()), create_scheduling(SchedulingSettings())]
    try:
        yield registrations, apps
    finally:
        for host in hosts:
            host.database.close()
            host.tracer_provider.shutdown()
            host.metrics.shutdown()
            host.engine.dispose()


def test_every_consumer_a_service_registers_is_documented(
    registered: tuple[list[Registration], list[FastStream]],
) -> None:
    registrations, _ = registered
    assert {r.service for r in registrations} == set(SERVICES), "each service registers its consumers"
    documents = list(asyncapi.documents().values())
    for registration in registrations:
        missing = asyncapi.undocumented(registration.subjects, documents, namespace=NAMESPACE)
        assert not missing, f"{registration.service} consumes {missing}, which no AsyncAPI document names"


def _channel_of(subject: str) -> Channel:
    bare = subject.removeprefix(f"{NAMESPACE}.")
    return next(c for c in CHANNELS if asyncapi.covers(c.address(), bare))


def test_the_declared_consumers_of_each_channel_are_the_services_that_register_one(
    registered: tuple[list[Registration], list[FastStream]],
) -> None:
    registrations, _ = registered
    consuming = {(r.service, _channel_of(s).name) for r in registrations for s in r.subjects}
    declared = {(s, c.name) for c in CHANNELS for s in c.consumers if s in SERVICES}
    assert consuming == declared, (
        f"registered but not declared: {sorted(consuming - declared)}; declared but not registered: "
        f"{sorted(declared - consuming)}")


def test_every_consumer_a_service_registers_is_one_its_jetstream_permissions_name(
    registered: tuple[list[Registration], list[FastStream]],
) -> None:
    """shared/nats_auth.py spells each service's consumers for its permissions; they must be the ones it binds."""
    registrations, _ = registered
    subjects = Subjects(NAMESPACE)
    for service in SERVICES:
        bound = {(r.stream, subjects.durable(service, r.what)) for r in registrations if r.service == service}
        assert bound == set(jetstream_use(service, subjects).consumers), service


def test_every_request_reply_endpoint_is_documented_and_every_documented_one_is_answered(
    registered: tuple[list[Registration], list[FastStream]],
) -> None:
    _, apps = registered
    answered = [str(sub.subject.broker_address) for app in apps for sub in app.broker.subscribers]  # type: ignore[union-attr]
    answered += SpanErasure.subjects(Subjects(NAMESPACE))  # the console's one endpoint (apps/console/erasure.py)
    missing = asyncapi.undocumented(answered, asyncapi.documents().values(), namespace=NAMESPACE)
    assert not missing, f"the services answer {missing}, which no AsyncAPI document names"
    claimed = {a for a in asyncapi.addresses(asyncapi.internal_document()) if a.startswith("reroute.rpc.")}
    unanswered = claimed - {s.removeprefix(f"{NAMESPACE}.") for s in answered}
    assert not unanswered, f"the internal document names {sorted(unanswered)}, which no service answers"


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for token in ref.removeprefix("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_in_the_documents_resolves() -> None:
    for name, document in asyncapi.documents().items():
        def walk(node: Any) -> Iterator[str]:
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    yield node["$ref"]
                for value in node.values():
                    yield from walk(value)
            elif isinstance(node, list):
                for value in node:
                    yield from walk(value)

        for ref in walk(document):
            try:
                _resolve(document, ref)
            except (KeyError, TypeError):
                pytest.fail(f"{name}: {ref} points at nothing")


def test_every_parameter_in_a_channel_address_is_declared_and_every_declared_one_is_used() -> None:
    """The official parser lets an undeclared `{agency_id}` pass, so this holds the documents to the specification."""
    for name, document in asyncapi.documents().items():
        for key, channel in document["channels"].items():
            used = set(re.findall(r"{([^}]+)}", channel["address"] or ""))
            assert used == set(channel.get("parameters", {})), f"{name}: {key}"


def test_both_documents_say_how_to_authenticate() -> None:
    for name, document in asyncapi.documents().items():
        schemes = document["components"]["securitySchemes"]
        assert schemes and all(s["type"] == "userPassword" for s in schemes.values()), name
        for server in document["servers"].values():
            assert server["protocol"] == "nats" and server["security"], name
    (agency,) = asyncapi.agency_document()["components"]["securitySchemes"].values()
    assert "_INBOX_AGENCY.<agency_id>" in agency["description"], "an agency is told its inbox prefix"
