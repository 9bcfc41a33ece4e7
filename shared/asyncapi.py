"""The AsyncAPI 3.0 documents, generated from the declarations: the event channels in shared/contracts/channels.py
and the request-reply endpoints in shared/contracts/rpc.py, each payload's schema from its pydantic model.

    python -m shared.asyncapi            # writes docs/asyncapi.json (agencies) and docs/asyncapi-internal.json
    python -m shared.asyncapi --check    # writes nothing; exits 1 when a checked-in document is stale

Operations are the services' own: `send` for what a service publishes, `receive` for what it consumes or
answers. The agencies' side is the mirror image (they send referrals, receive their outcomes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.contracts.channels import AGENCY_ID, CHANNELS, Channel
from shared.contracts.rpc import SERVICES, Endpoint, ErrorReply, all_endpoints
from shared.subjects import Subjects

VERSION = "2.0.0"
"""The documents' version: 2 since referrals.accepted carries only the agency's own referral (schema_version 2)."""
DOCS = Path(__file__).resolve().parents[1] / "docs"
AGENCY_DOCUMENT = "asyncapi.json"
INTERNAL_DOCUMENT = "asyncapi-internal.json"
_NATS_BINDING_VERSION = "0.1.0"
_EMPTY = {"type": "string", "maxLength": 0, "description": "The body is empty: everything is in the headers."}


def agency_document() -> dict[str, Any]:
    """What an agency may publish and read: exactly what its NATS permissions allow (shared/nats_auth.py)."""
    return _document(
        title="reroute: the agency interface",
        description="Referrals in, outcomes out, over NATS JetStream. Every subject ends in the agency's id, and an "
                    "agency may publish and read only its own: referrals.submitted, referrals.updated and "
                    "referrals.withdraw out, "
                    "referrals.* and sessions.* in, none of which says anything about another agency's referrals. "
                    "Every event carries schema_version, event_id (also its Nats-Msg-Id, so a replay is dropped) and "
                    "occurred_at. The same events are kept for each agency while it is offline, by two durable "
                    "JetStream consumers intake makes for it, agency-<agency_id> on the streams REFERRALS "
                    "(referrals.*.<agency_id>) and SESSIONS (sessions.*.<agency_id>), which push them to "
                    "_INBOX_AGENCY.<agency_id>.outcomes.REFERRALS and ...outcomes.SESSIONS: an agency may bind them "
                    "(with the JetStream API prefix $JS.REROUTE.API: its NATS account is its own and has no "
                    "JetStream) and acknowledge their messages ($JS.ACK), nothing else (README, The event contract). What changed, and what to do: docs/agency-changelog.md.",
        channels=[c for c in CHANNELS if c.audience == "agency"],
        endpoints=[],
        security={"agency": {
            "type": "userPassword",
            "description": "The NATS user `agency-<agency_id>` and the password `reroute agencies add` (or `rotate`) "
                           "printed once. Connect with the inbox prefix `_INBOX_AGENCY.<agency_id>`: it is the only "
                           "inbox an agency may read, so a request or a JetStream publish with the default `_INBOX` "
                           "never hears its reply. deploy/nats-auth.md lists what each user may publish and read."}},
    )


def internal_document() -> dict[str, Any]:
    """What only the services and the operator see: internal events, dead-letter notices, request-reply."""
    return _document(
        title="reroute: internal channels",
        description="The events agencies never see, the dead-letter notices, and every request-reply endpoint "
                    "(reroute.rpc.<service>.<verb>, answered by one replica of the service's queue group; a failed "
                    "request is answered with the error shape). The agency-facing channels are in asyncapi.json. "
                    "A namespace (REROUTE_NAMESPACE) prefixes every subject.",
        channels=[c for c in CHANNELS if c.audience == "internal"],
        endpoints=list(all_endpoints()),
        security={"service": {
            "type": "userPassword",
            "description": "Each service connects as its own NATS user (`intake`, `risk`, `scheduling`), each person "
                           "as `person-<person_id>` with the inbox prefix `_INBOX_PERSON.<person_id>`, the web "
                           "console as `console`: each may publish and read only what deploy/nats-auth.md lists."}},
    )


def documents() -> dict[str, dict[str, Any]]:
    """Both documents by file name."""
    return {AGENCY_DOCUMENT: agency_document(), INTERNAL_DOCUMENT: internal_document()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _document(*, title: str, description: str, channels: Sequence[Channel],
              endpoints: Sequence[Endpoint[BaseModel, BaseModel]], security: dict[str, Any]) -> dict[str, Any]:
    schemas = _Schemas(channels, endpoints)
    doc_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in channels:
        message = schemas.message(channel.payload or channel.headers, _mode(channel))
        messages[message] = _message(schemas, channel.payload, channel.headers, mode=_mode(channel))
        doc_channels[channel.name] = _channel(channel.address(), channel.description, [message],
                                              payload=channel.payload)
        for service in channel.producers:
            if service in SERVICES:
                operations[f"{service}.send.{channel.name}"] = _operation(
                    "send", channel.name, message, f"{service} publishes {channel.name} (through its outbox).")
        for service in channel.consumers:
            if service in SERVICES:
                operations[f"{service}.receive.{channel.name}"] = _operation(
                    "receive", channel.name, message,
                    f"{service} consumes {channel.name} (a durable JetStream consumer its replicas share).")
    if endpoints:  # the services themselves run here: each also answers the NATS services API
        _document_services_api(doc_channels, operations, messages)
    for endpoint in endpoints:
        request = schemas.message(endpoint.request, "validation")
        messages[request] = _message(schemas, endpoint.request, None, mode="validation")
        replies = []
        for model in (endpoint.reply, ErrorReply):
            replies.append(schemas.message(model, "serialization"))
            messages[replies[-1]] = _message(schemas, model, None, mode="serialization")
        for service in endpoint.services:
            name = Subjects().rpc(service, endpoint.verb)
            doc_channels[name] = _channel(name, endpoint.summary, [request])
            if endpoint.roles:  # people ask the same on a subject that names them
                _document_asking(doc_channels, operations, endpoint, service, request, replies)
            doc_channels[f"{name}.reply"] = {
                "address": None,
                "description": f"The reply to {name}, on the requester's inbox (the request's NATS reply subject): "
                               "the reply model, or the error shape when the service could not do what was asked.",
                "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in replies},
            }
            operations[f"{service}.answers.{endpoint.verb}"] = {
                **_operation("receive", name, request, f"{service} answers {endpoint.verb}: {endpoint.summary}"),
                "reply": {"channel": {"$ref": f"#/channels/{_pointer(name + '.reply')}"},
                          "messages": [{"$ref": f"#/channels/{_pointer(name + '.reply')}/messages/{m}"}
                                       for m in replies]},
                "bindings": {"nats": {"queue": service, "bindingVersion": _NATS_BINDING_VERSION}},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": VERSION, "description": description},
        "defaultContentType": "application/json",
        "servers": {"nats": {
            "host": "{host}",
            "protocol": "nats",
            "description": "The installation's NATS server (JetStream): `reroute up` prints its address; a namespace "
                           "(REROUTE_NAMESPACE), when set, prefixes every subject.",
            "variables": {"host": {"default": "127.0.0.1:4222", "description": "host:port of the NATS server."}},
            "security": [{"$ref": f"#/components/securitySchemes/{name}"} for name in security],
        }},
        "channels": doc_channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.definitions, "securitySchemes": security},
    }


PERSON_ID = "{person_id}"
SERVICES_API = ("PING", "INFO", "STATS")
"""The NATS services API (nats.micro) verbs every replica answers: shared/ops.py."""


def _document_services_api(channels: dict[str, Any], operations: dict[str, Any], messages: dict[str, Any]) -> None:
    """`$SRV.<VERB>`, `$SRV.<VERB>.{service_name}` and `$SRV.<VERB>.{service_name}.{instance_id}`: discovery, health
    and statistics for `nats micro` and any NATS tooling (never namespaced: it is the server's convention)."""
    messages["ServicesApiRequest"] = {
        "name": "ServicesApiRequest", "title": "ServicesApiRequest", "contentType": "application/json",
        "summary": "A NATS services API request: the body is empty.", "payload": _EMPTY}
    messages["ServicesApiReply"] = {
        "name": "ServicesApiReply", "title": "ServicesApiReply", "contentType": "application/json",
        "summary": "The replica's answer as the NATS services API (ADR-32) defines it: io.nats.micro.v1.ping_response, "
                   "info_response or stats_response; INFO and STATS carry its health and ops URL in `metadata`.",
        "payload": {"type": "object", "required": ["type", "name", "id", "version"],
                    "properties": {"type": {"type": "string", "pattern": "^io\\.nats\\.micro\\.v1\\."},
                                   "name": {"type": "string"}, "id": {"type": "string"},
                                   "version": {"type": "string"},
                                   "metadata": {"type": "object", "additionalProperties": {"type": "string"}}}}}
    parameters = {
        "service_name": {"description": "reroute-<service>, or reroute-<namespace>-<service> on a namespaced copy."},
        "instance_id": {"description": "One replica's id, as its PING answer gives it."},
    }
    for verb in SERVICES_API:
        for tail in ("", ".{service_name}", ".{service_name}.{instance_id}"):
            name = f"$SRV.{verb}{tail}"
            used = {k: v for k, v in parameters.items() if f"{{{k}}}" in tail}
            channels[name] = {
                "address": name, "title": name,
                "description": f"The NATS services API's {verb}, answered by every replica of every service"
                               + (" of that name" if tail else "") + ". Discovery, health and statistics only.",
                "messages": {"ServicesApiRequest": {"$ref": "#/components/messages/ServicesApiRequest"}},
                **({"parameters": used} if used else {}),
            }
            channels[f"{name}.reply"] = {
                "address": None, "description": f"The reply to {name}, on the requester's inbox.",
                "messages": {"ServicesApiReply": {"$ref": "#/components/messages/ServicesApiReply"}},
            }
            operations[f"services.answer.{_pointer(name)}"] = {
                **_operation("receive", name, "ServicesApiRequest", f"each replica answers {name}"),
                "reply": {"channel": {"$ref": f"#/channels/{_pointer(name + '.reply')}"},
                          "messages": [{"$ref": f"#/channels/{_pointer(name + '.reply')}/messages/ServicesApiReply"}]},
            }


def _document_asking(channels: dict[str, Any], operations: dict[str, Any], endpoint: Endpoint[BaseModel, BaseModel],
                     service: str, request: str, replies: list[str]) -> None:
    """`reroute.ask.{person_id}.<service>.<verb>`: the same request from a person whose roles allow it."""
    name = Subjects().ask(PERSON_ID, service, endpoint.verb)
    recorded = (f" The service records the person the subject names as `{endpoint.acts_as}`, whatever the body "
                "says." if endpoint.acts_as else "")
    channels[name] = {
        "address": name, "title": name.replace(f".{PERSON_ID}", ""),
        "description": f"{endpoint.summary} Asked by a person with one of the roles {', '.join(sorted(endpoint.roles))}"
                       f" (each may publish only on subjects naming them; the console for anyone).{recorded}",
        "messages": {request: {"$ref": f"#/components/messages/{request}"}},
        "parameters": {"person_id": {"description": "The id of the person asking (`reroute people add`)."}},
    }
    reply = f"{name}.reply"
    channels[reply] = {
        "address": None,
        "description": f"The reply to {name}, on the person's inbox (_INBOX_PERSON.<person_id>).",
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in replies},
    }
    operations[f"{service}.answers.{endpoint.verb}.asked_by_a_person"] = {
        **_operation("receive", name, request, f"{service} answers {endpoint.verb} for a person"),
        "reply": {"channel": {"$ref": f"#/channels/{_pointer(reply)}"},
                  "messages": [{"$ref": f"#/channels/{_pointer(reply)}/messages/{m}"} for m in replies]},
        "bindings": {"nats": {"queue": service, "bindingVersion": _NATS_BINDING_VERSION}},
    }


def _mode(channel: Channel) -> JsonSchemaMode:
    """What the body must be: what intake accepts from an agency, else what the producing service writes."""
    return "validation" if any(p not in SERVICES for p in channel.producers) else "serialization"


class _Schemas:
    """The JSON schemas of every model one document uses, with shared definitions under components.schemas."""

    def __init__(self, channels: Sequence[Channel], endpoints: Sequence[Endpoint[BaseModel, BaseModel]]) -> None:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
        for channel in channels:
            wanted.append((channel.headers, _mode(channel)))
            if channel.payload is not None:
                wanted.append((channel.payload, _mode(channel)))
        for endpoint in endpoints:
            wanted += [(endpoint.request, "validation"), (endpoint.reply, "serialization"),
                       (ErrorReply, "serialization")]
        unique = list(dict.fromkeys(wanted))
        refs, definitions = models_json_schema(unique, ref_template="#/components/schemas/{model}")
        self.refs = {key: str(ref["$ref"]) for key, ref in refs.items()}
        self.definitions: dict[str, Any] = definitions.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, str]:
        return {"$ref": self.refs[(model, mode)]}

    def message(self, model: type[BaseModel], mode: JsonSchemaMode) -> str:
        """The name of the message whose body is `model`: its schema's name."""
        return self.refs[(model, mode)].rsplit("/", 1)[-1]


def _message(schemas: _Schemas, payload: type[BaseModel] | None, headers: type[BaseModel] | None, *,
             mode: JsonSchemaMode) -> dict[str, Any]:
    model = payload or headers
    assert model is not None
    message: dict[str, Any] = {
        "name": model.__name__,
        "title": model.__name__,
        "summary": _first_line(model.__doc__),
        "contentType": "application/json",
    }
    if headers is not None:
        message["headers"] = schemas.ref(headers, mode)
    message["payload"] = schemas.ref(payload, mode) if payload is not None else _EMPTY
    return message


def _channel(address: str, description: str, messages: Iterable[str], *,
             payload: type[BaseModel] | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "title": address.removesuffix(f".{AGENCY_ID}"),
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
    }
    if AGENCY_ID in address:
        name = AGENCY_ID.strip("{}")
        parameter = {"description": "The agency's id (lower-case letters, digits, - and _): an agency publishes and "
                                    "reads only subjects ending in its own."}
        if payload is not None and name in payload.model_fields:
            parameter["location"] = f"$message.payload#/{name}"
        channel["parameters"] = {name: parameter}
    return channel


def _operation(action: Literal["send", "receive"], channel: str, message: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{_pointer(channel)}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{_pointer(channel)}/messages/{message}"}],
    }


def _pointer(key: str) -> str:
    """`key` escaped as one JSON-pointer token."""
    return key.replace("~", "~0").replace("/", "~1")


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def addresses(document: dict[str, Any]) -> list[str]:
    """Every channel address a document names (a reply channel has none: it is the requester's inbox)."""
    return [c["address"] for c in document["channels"].values() if c["address"] is not None]


def covers(address: str, subject: str) -> bool:
    """Whether a channel address covers a subject or a subscription's subject: token by token, a `{parameter}`
    stands for any one token (a `*` in the subscription included); anything else must be equal."""
    want, got = address.split("."), subject.split(".")
    return len(want) == len(got) and all(w == g or (w.startswith("{") and w.endswith("}")) for w, g in zip(want, got))


def undocumented(subjects: Iterable[str], documents: Iterable[dict[str, Any]], *, namespace: str = "") -> list[str]:
    """The subjects (or subscription subjects) that no channel of `documents` covers, in order, once each; with a
    namespace, a subject outside it is undocumented too, bar the server's own conventions (`$SRV.…`), which no
    namespace prefixes."""
    known = [a for d in documents for a in addresses(d)]
    prefix = f"{namespace}." if namespace else ""
    missing: dict[str, None] = {}
    for subject in subjects:
        bare = subject.removeprefix(prefix) if subject.startswith(prefix) else None
        if subject.startswith("$SRV."):
            bare = subject
        if bare is None or not any(covers(a, bare) for a in known):
            missing[subject] = None
    return list(missing)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.asyncapi",
        description="Generate the AsyncAPI documents from shared/contracts: docs/asyncapi.json (agencies) and "
                    "docs/asyncapi-internal.json (services and operators).")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a checked-in document differs from the generated one")
    parser.add_argument("--docs", type=Path, default=DOCS, metavar="DIR",
                        help="the directory the documents live in (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = []
    for name, document in documents().items():
        path: Path = args.docs / name
        text = render(document)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(map(str, stale))}; regenerate them with `make docs` "
              "(python -m shared.asyncapi)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
