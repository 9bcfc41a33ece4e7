"""Personal data stays in intake, encrypted at rest; a young person referred again is recognised.

The wire test listens to every subject on the server while referrals go all the way to scheduled, then
fails on any direct identifier in any message, header, span or log line outside intake's inbound door.
"""

from __future__ import annotations

import json
import random
import string
import time
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from cryptography.fernet import Fernet
from nats.aio.msg import Msg
from sqlalchemy import inspect, select, text
from sqlmodel import col

from services.intake.tables import PersonalDataAccessRecord, ReferralRecord, as_utc
from tests.support.cluster import (
    Cluster,
    Probe,
    fresh_language,
    intake_url,
    mentor,
    referral,
    register_agency,
    service_engine,
    unique,
)
from tests.support.replies import refusal
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def _word(n: int = 9) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


def person(arid: str, *, language: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A referral of a made-up person with one-off identifiers, and those identifiers in the forms to look for."""
    given, family, referrer = f"Zo{_word()}", f"Qu{_word()}", f"Rf{_word()}"
    born = date(2008, 1, 1) + timedelta(days=random.randrange(4 * 365))
    phone_digits = "".join(random.choices(string.digits, k=6))
    reason = f"Worried about {_word()} near the {_word()} estate"
    body = referral(arid, language=language, reason=reason)
    body["young_person"] |= {"given_name": given, "family_name": family, "date_of_birth": born.isoformat()}
    body["referrer"] = {"name": f"{referrer} Smith", "role": "YOT case manager", "email": f"{_word()}@example.org",
                        "phone": f"+44 7700 9{phone_digits[:2]} {phone_digits[2:]}"}
    identifiers = {
        "given name": given, "family name": family, "referrer name": referrer,
        "date of birth": born.isoformat(), "date of birth (UK)": born.strftime("%d/%m/%Y"),
        "email": body["referrer"]["email"], "phone": body["referrer"]["phone"],
        "reason": reason, "reason words": reason.split()[2],
    }
    return body, identifiers


async def referred(cluster: Cluster, probe: Probe) -> tuple[str, dict[str, str]]:
    """A made-up person referred over NATS by an agency of their own: the referral id intake accepted, and their
    identifiers."""
    agency = unique("yot")
    body, identifiers = person(unique("REF"), language="en")
    await probe.submit(agency, body)
    rid = (await probe.wait_for(cluster.subjects.accepted(agency)))[0]["referral_id"]
    return str(rid), identifiers


def leaks(identifiers: dict[str, str], where: str, text_: str) -> list[str]:
    lowered = text_.lower()
    return [f"{what} ({value!r}) in {where}" for what, value in identifiers.items() if value.lower() in lowered]


async def test_no_direct_identifier_leaves_intake_on_the_wire_in_spans_or_in_logs(
    cluster: Cluster, probe: Probe
) -> None:
    lang, agency = fresh_language(), unique("yot")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    key = await register_agency(probe, agency)
    by_http, http_ids = person(unique("REF"), language=lang)
    by_nats, nats_ids = person(unique("REF"), language=lang)
    identifiers = {f"{what} ({door})": value for door, ids in (("http", http_ids), ("nats", nats_ids))
                   for what, value in ids.items()}

    wire: list[Msg] = []
    listener = await nats.connect(cluster.nats_url)

    async def record(msg: Msg) -> None:
        wire.append(msg)

    await listener.subscribe(">", cb=record)
    try:
        async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15) as http:
            answer = await http.post("/v1/referrals", json=by_http, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 202, answer.text
        await probe.submit(agency, by_nats)
        accepted = await probe.wait_for(cluster.subjects.accepted(agency), count=2)
        ids = {e["referral_id"] for e in accepted}
        await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] in ids, count=2)
        await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] in ids, count=2,
                             timeout=15)
        def traced() -> set[str]:  # the referrals with spans from all three services in the span files
            services: dict[str, set[str]] = {rid: set() for rid in ids}
            for span in cluster.spans():
                if (rid := span.attributes.get("referral.id")) in services:
                    services[rid].add(span.service)
            return {rid for rid, seen in services.items() if seen >= {"intake", "risk", "scheduling"}}

        await wait_until(lambda: traced() == ids, timeout=10, every=0.2,  # exported every 200 ms here
                         what=lambda: f"spans of {sorted(ids)} from all three services (only of {sorted(traced())})")
    finally:
        await listener.close()

    inbound = (cluster.subjects.submitted(""), cluster.subjects.updated(""))  # the agency's own message to intake
    asked_for_names = {m.reply for m in wire if m.subject == cluster.subjects.rpc("intake", "first_name")}
    found: list[str] = []
    checked = 0
    for m in wire:
        if m.subject.startswith(inbound) or m.subject in asked_for_names:
            continue
        checked += 1
        content = m.data.decode(errors="replace") + json.dumps(dict(m.headers or {}))
        found += leaks(identifiers, f"message on {m.subject}", content)
    assert checked > 10, "the listener saw the events"
    assert any(leaks(nats_ids, "", m.data.decode(errors="replace")) for m in wire if m.subject.startswith(inbound)), \
        "the check does see identifiers where they belong (the agency's own submission to intake)"
    assert {"referrals.accepted", "risk.assessed", "sessions.scheduled"} <= {
        ".".join(m.subject.split(".")[-3:-1]) for m in wire}
    for path in sorted((cluster.data_dir / "traces").glob("*.jsonl")):
        found += leaks(identifiers, f"span file {path.name}", path.read_text(encoding="utf-8"))
    for path in sorted((cluster.data_dir / "logs").glob("*.log")):
        found += leaks(identifiers, f"log {path.name}", path.read_text(encoding="utf-8", errors="replace"))
    assert any(s.attributes.get("referral.id") in ids for s in cluster.spans())
    assert not found, "\n".join(found)


async def test_personal_data_is_encrypted_at_rest_and_kept_by_intake_alone(cluster: Cluster, probe: Probe) -> None:
    lang, agency = fresh_language(), unique("school")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    body, identifiers = person(unique("REF"), language=lang)
    await probe.submit(agency, body)
    rid = (await probe.wait_for(cluster.subjects.accepted(agency)))[0]["referral_id"]
    await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid, timeout=15)

    engine = service_engine(cluster, "intake")
    try:
        with engine.connect() as conn:
            row = conn.execute(select(ReferralRecord).where(ReferralRecord.referral_id == rid)).one()
    finally:
        engine.dispose()
    assert not leaks(identifiers, "the intake row", json.dumps([str(v) for v in row]))
    key = cluster.processes.env.get("REROUTE_INTAKE_ENCRYPTION_KEY") or (
        cluster.data_dir / "intake-encryption.key").read_text().strip()
    assert json.loads(Fernet(key.encode()).decrypt(row.body.encode()))["young_person"]["given_name"] == \
        identifiers["given name"], "the body is the referral, encrypted with the key kept in the data dir"

    found: list[str] = []
    for service in ("intake", "risk", "scheduling"):
        found += leaks(identifiers, f"{service}'s database", _everything_stored(cluster, service))
    assert not found, "\n".join(found)


def _everything_stored(cluster: Cluster, service: str) -> str:
    """Every value in every table of a service's database (and SQLite's files byte for byte)."""
    engine = service_engine(cluster, service)
    try:
        parts: list[str] = []
        if engine.dialect.name == "sqlite":
            for path in cluster.data_dir.glob(f"{service}.db*"):
                parts.append(path.read_bytes().decode("latin-1"))
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for record in conn.execute(text(f'SELECT * FROM "{table}"')):
                    parts.append(json.dumps([str(v) for v in record]))
        return "\n".join(parts)
    finally:
        engine.dispose()


async def test_a_young_person_referred_again_by_another_agency_keeps_their_person_id(
    cluster: Cluster, probe: Probe
) -> None:
    first_agency, second_agency = unique("police"), unique("school")
    key = await register_agency(probe, second_agency)
    first, _ = person(unique("REF"), language="en")
    first["young_person"]["given_name"] = "Zoë-Ann" + first["young_person"]["given_name"][2:]
    again = json.loads(json.dumps(first)) | {"agency_referral_id": unique("REF")}
    again["young_person"] |= {"given_name": "  ZOE ann" + first["young_person"]["given_name"][7:].upper() + " ",
                              "family_name": first["young_person"]["family_name"].lower(), "borough": "hackney"}
    stranger = json.loads(json.dumps(first)) | {"agency_referral_id": unique("REF")}
    stranger["young_person"]["date_of_birth"] = "2007-01-01"

    await probe.submit(first_agency, first)
    original = (await probe.wait_for(cluster.subjects.recorded(first_agency)))[0]
    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15) as http:
        answer = await http.post("/v1/referrals", json=again, headers={"Authorization": f"Bearer {key}"})
        repeat = await http.post("/v1/referrals", json=again, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == repeat.status_code == 202
    await probe.submit(first_agency, stranger)
    accepted = await probe.wait_for(cluster.subjects.recorded(second_agency), count=2)
    others = await probe.wait_for(cluster.subjects.recorded(first_agency), count=2)
    third = next(e for e in others if e["agency_referral_id"] == stranger["agency_referral_id"])

    assert original["person_id"] and "previously_referred" not in original
    for event in accepted:  # the referral and its repeat
        assert event["person_id"] == original["person_id"]
        assert event["previously_referred"]["count"] == 1
        assert datetime.fromisoformat(event["previously_referred"]["last_referred_at"]) == \
            datetime.fromisoformat(original["occurred_at"])
    assert third["person_id"] != original["person_id"], "same names, another birth date: another person"
    assert "previously_referred" not in third

    await probe.submit(second_agency, json.loads(json.dumps(first)) | {"agency_referral_id": unique("REF")})
    latest = await probe.wait_for(cluster.subjects.recorded(second_agency), count=3)
    assert latest[-1]["person_id"] == original["person_id"]
    assert latest[-1]["previously_referred"]["count"] == 2


async def test_first_name_is_given_only_to_a_named_person_for_a_purpose_and_every_request_is_logged(
    cluster: Cluster, probe: Probe
) -> None:
    rid, identifiers = await referred(cluster, probe)
    purpose = f"first session with mentor {unique('m')}"

    no_one = await probe.rpc("intake", "first_name", {"referral_id": rid, "purpose": purpose})
    no_reason = await probe.rpc("intake", "first_name", {"referral_id": rid, "asked_by": "scheduling", "purpose": " "})
    answer = await probe.rpc("intake", "first_name", {"referral_id": rid, "asked_by": "scheduling", "purpose": purpose})
    unknown = await probe.rpc("intake", "first_name",
                              {"referral_id": "ref_0000000000000000", "asked_by": "scheduling", "purpose": purpose})

    assert refusal(no_one).code == refusal(no_reason).code == "invalid"
    assert "asked_by" in refusal(no_one).message and "purpose" in refusal(no_reason).message
    assert answer == {"referral_id": rid, "first_name": identifiers["given name"]}
    assert refusal(unknown).code == "not_found"
    engine = service_engine(cluster, "intake")
    try:
        with engine.connect() as conn:
            log = conn.execute(select(PersonalDataAccessRecord)
                               .where(col(PersonalDataAccessRecord.purpose) == purpose)).all()
    finally:
        engine.dispose()
    assert sorted((r.referral_id, r.asked_by, r.item, r.answered) for r in log) == sorted([
        (rid, "scheduling", "first_name", True), ("ref_0000000000000000", "scheduling", "first_name", False)])
    assert all(abs(time.time() - as_utc(r.asked_at).timestamp()) < 120 for r in log)


async def test_identity_is_given_for_a_purpose_logged_and_the_access_log_finds_who_looked(
    cluster: Cluster, probe: Probe
) -> None:
    rid, identifiers = await referred(cluster, probe)
    lead, other = unique("dsl"), unique("dsl")
    purpose = f"calling the police about alert {unique('E01')}"

    no_reason = await probe.rpc("intake", "identity", {"referral_id": rid, "asked_by": lead, "purpose": " "})
    shown = await probe.rpc("intake", "identity", {"referral_id": rid, "asked_by": lead, "purpose": purpose})
    unknown = await probe.rpc("intake", "identity",
                              {"referral_id": "ref_0000000000000000", "asked_by": other, "purpose": purpose})
    assert refusal(no_reason).code == "invalid" and "purpose" in refusal(no_reason).message
    assert refusal(unknown).code == "not_found"
    assert (shown["given_name"], shown["family_name"], shown["date_of_birth"]) == (
        identifiers["given name"], identifiers["family name"], identifiers["date of birth"])
    assert (shown["referrer"]["email"], shown["referrer"]["phone"]) == (identifiers["email"], identifiers["phone"])
    await probe.rpc("intake", "first_name", {"referral_id": rid, "asked_by": other, "purpose": "first session"})

    by_lead = (await probe.rpc("intake", "personal_data.access_log", {"asked_by": lead.upper()}))["entries"]
    assert [(e["referral_id"], e["item"], e["purpose"], e["answered"]) for e in by_lead] == [
        (rid, "identity", purpose, True)]
    of_referral = await probe.rpc("intake", "personal_data.access_log", {"referral_id": rid})
    assert [(e["asked_by"], e["item"]) for e in of_referral["entries"]] == [(other, "first_name"), (lead, "identity")]
    by_other = await probe.rpc("intake", "personal_data.access_log", {"asked_by": other, "limit": 1})
    assert by_other["more"] and [e["referral_id"] for e in by_other["entries"]] == [rid], "newest first"
    status = await probe.rpc("intake", "status", {"referral_id": rid})
    of_child = await probe.rpc("intake", "personal_data.access_log", {"person_id": status["person_id"]})
    assert {(e["asked_by"], e["item"]) for e in of_child["entries"]} == {(other, "first_name"), (lead, "identity")}
    assert not leaks(identifiers, "the access log", json.dumps([by_lead, of_referral, of_child]))
