"""Safeguarding alerts and finding a young person, as the people who do it, against a real `reroute up`: each
person with their own credentials (`reroute people add`), the CLI and NATS as they use them.

A referral raising E01 and E02 (risk's) and three missed sessions raising E12 (scheduling's) show in one `reroute
alerts`, most urgent first, the overdue one marked; a safeguarding lead acknowledges them (routed to the service that
raised each), and the list then says who and when; a second acknowledgement and an unknown id get clear answers; the
subject, not the body, names who acknowledged. `reroute person find` gives the person id `person export` takes, and
is logged with who asked and why. A scheduler may do neither, and an agency reaches neither request at all."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from sqlalchemy import insert, select
from sqlmodel import col

from services.intake.tables import PersonalDataAccessRecord
from services.scheduling.tables import CaseRow, SessionRow
from shared.contracts.intake_rpc import PersonCredentials
from shared.subjects import Subjects
from tests.support.cluster import referral
from tests.support.local_up import REROUTE, LocalUp, up_env
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e]
S = Subjects()
E01, E02, E12 = "E01_immediate_danger", "E02_threat_to_life_warning", "E12_disengagement_with_rising_risk"


@dataclass
class Stack:
    up: LocalUp
    url: str
    home: Path

    def reroute(self, *args: str, person: str | None = None) -> subprocess.CompletedProcess[str]:
        """`reroute ARGS` on this stack, as the local first admin or as `person` (their credentials file)."""
        env = up_env() | ({"REROUTE_CREDENTIALS": str(self.home / f"{person}.json")} if person else {})
        return subprocess.run([str(REROUTE), *args, "--data-dir", str(self.up.data_dir)], env=env, cwd=self.home,
                              capture_output=True, text=True, timeout=90, check=False)

    def add(self, person: str, *roles: str) -> PersonCredentials:
        path = self.home / f"{person}.json"
        done = self.reroute("people", "add", person, *(f"--role={r}" for r in roles), "--out", str(path))
        assert done.returncode == 0, said(done)
        return PersonCredentials.model_validate_json(path.read_text())

    async def connect(self, user: str, password: str, inbox: str, **options: Any) -> Client:
        host = self.url.removeprefix("nats://")
        return await nats.connect(f"nats://{user}:{password}@{host}", inbox_prefix=inbox.encode(),
                                  allow_reconnect=False, **options)


def _paths(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        paths: dict[str, Any] = json.loads(response.read())["paths"]
    return paths


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    up = LocalUp.launch(tmp_path_factory.mktemp("alerts") / "data")
    try:
        await up.until_running()
        up.register_agency("demo")  # the agency its referrals are submitted as
        yield Stack(up, (up.data_dir / "nats.url").read_text().strip(), tmp_path_factory.mktemp("home"))
    finally:
        up.stop()
        up.drop_schemas()
        print(f"--- reroute up said:\n{up.output()}")


@dataclass
class Referred:
    referral_id: str
    family_name: str
    missed_session: str
    """The third missed session, whose recording raised E12."""


@pytest.fixture(scope="module")
async def referred(stack: Stack) -> Referred:
    """A referral (by the first admin, who may submit for an agency) with a weapon-use intent and a threat-to-life
    warning (E01, E02), then three missed sessions recorded by a scheduler with wellbeing very high (E12). Attendance
    can only be recorded once a session has started, so the past sessions are put in scheduling's database first."""
    arid, family = f"ALERT-{uuid.uuid4().hex[:8]}", f"Okafor{uuid.uuid4().hex[:6]}"
    body = referral(arid, language="en", indicators=["threat_to_life_warning", "intent_to_use_weapon"])
    body["young_person"] |= {"given_name": "Zoë", "family_name": family, "date_of_birth": "2010-05-17"}
    path = stack.home / f"{arid}.json"
    path.write_text(json.dumps([body]))
    done = stack.reroute("submit", str(path), "--agency", "demo", "--timeout", "30")
    found = re.search(rf"{re.escape(arid)}\s*│\s*(ref_[0-9a-f]+)\s*│\s*very_high", done.stdout)
    assert found, said(done)
    rid = found[1]

    engine = stack.up.engine("scheduling")
    now = datetime.now(UTC)
    sessions = [f"{rid}-past{i}" for i in range(3)]
    with engine.begin() as conn:
        assert conn.execute(select(CaseRow.wellbeing_tier).where(col(CaseRow.referral_id) == rid)).scalar() \
            == "very_high"
        conn.execute(insert(SessionRow), [
            {"session_id": sid, "referral_id": rid, "mentor_id": "m-past", "start": now - timedelta(days=15 - 7 * i),
             "end": now - timedelta(days=15 - 7 * i) + timedelta(hours=1), "status": "booked", "sequence": 0,
             "created_at": now - timedelta(days=30), "updated_at": now - timedelta(days=30)}
            for i, sid in enumerate(sessions)])
    engine.dispose()
    stack.add("sam", "scheduler")
    for sid in sessions:
        marked = stack.reroute("session", "missed", sid, person="sam")
        assert marked.returncode == 0, said(marked)
    assert "disengagement escalation raised" in said(marked)
    return Referred(rid, family, sessions[-1])


def _blocks(listing: str) -> list[str]:
    """`reroute alerts` output, one string per alert (each starts with its rule id)."""
    return [b for b in re.split(r"\n(?=E\d\d_)", "\n" + listing) if b.strip().startswith("E")]


async def test_a_safeguarding_lead_lists_and_acknowledges_alerts_from_both_services(
    stack: Stack, referred: Referred
) -> None:
    dana = stack.add("dana", "dsl")
    rid = referred.referral_id
    ids = {E01: f"alert:{rid}:{E01}:1", E02: f"alert:{rid}:{E02}:1",
           E12: f"alert:{rid}:{E12}:{referred.missed_session}"}

    listed = stack.reroute("alerts", person="dana")
    assert listed.returncode == 0, said(listed)
    mine = [b for b in _blocks(listed.stdout) if rid in b]
    assert [b.split()[0] for b in mine] == [E01, E02, E12], "most urgent first: immediate, same day, 2 working days"
    assert f"alert id: {ids[E01]}" in mine[0] and "OVERDUE by" in mine[0], "E01's deadline is immediate"
    assert "call_999" in mine[0] and "police_liaison, safety_plan_before_contact" in mine[1]
    assert "raised by risk" in mine[1] and "raised by scheduling" in mine[2] and "contact_referrer" in mine[2]
    assert all("acknowledged: not yet" in b for b in mine) and "(agency demo)" in mine[0]

    acked = stack.reroute("alerts", "ack", ids[E02], "--note", "Police liaison called; safety plan agreed",
                          person="dana")
    assert acked.returncode == 0, said(acked)
    assert f"{ids[E02]} ({E02}, referral {rid}) acknowledged by dana" in said(acked) and "recorded by risk" in said(acked)

    # over NATS with dana's own credentials, a body naming someone else: the subject says who it was
    nc = await stack.connect(dana.nats_user, dana.password, dana.inbox_prefix)
    try:
        reply = json.loads((await nc.request(S.ask("dana", "scheduling", "alerts.ack"), json.dumps(
            {"alert_id": ids[E12], "by": "sam", "note": "DSL review booked"}).encode(), timeout=10)).data)
        immediate = json.loads((await nc.request(S.ask("dana", "risk", "alerts.ack"), json.dumps(
            {"alert_id": ids[E01]}).encode(), timeout=10)).data)
    finally:
        await nc.close()
    assert reply["alert"]["acknowledged_by"] == "dana" and reply["alert"]["service"] == "scheduling"
    assert immediate["alert"]["acknowledged_by"] == "dana"

    after = stack.reroute("alerts", person="dana")
    blocks = {b.split()[0]: b for b in _blocks(after.stdout) if rid in b}
    assert "acknowledged by dana at" in blocks[E02] and "Police liaison called; safety plan agreed" in blocks[E02]
    assert "acknowledged by dana at" in blocks[E12] and "DSL review booked" in blocks[E12]
    assert "(after the deadline)" in blocks[E01] and "OVERDUE" not in blocks[E01]
    only_open = stack.reroute("alerts", "--days", "0", person="dana")
    assert rid not in only_open.stdout, "acknowledged alerts leave the open list"

    again = stack.reroute("alerts", "ack", ids[E02], person="dana")
    assert again.returncode != 0 and f"alert {ids[E02]} was acknowledged already, by dana at" in said(again)
    unknown = stack.reroute("alerts", "ack", f"alert:{rid}:E99_nothing:1", person="dana")
    assert unknown.returncode != 0
    assert f"no safeguarding alert alert:{rid}:E99_nothing:1: neither risk nor scheduling" in said(unknown)


async def test_a_scheduler_may_neither_list_nor_acknowledge_alerts_nor_find_a_person(
    stack: Stack, referred: Referred
) -> None:
    sam = stack.add("sam2", "scheduler")
    listed = stack.reroute("alerts", person="sam2")
    assert listed.returncode != 0 and "sam2 (scheduler) may not ask risk alerts.list" in said(listed), said(listed)
    found = stack.reroute("person", "find", "--given", "Zoe", "--family", referred.family_name, "--born",
                          "2010-05-17", "--purpose", "curious", person="sam2")
    assert found.returncode != 0 and "may not ask intake person.find" in said(found), said(found)

    refused: list[str] = []

    async def record(exc: Exception) -> None:
        refused.append(str(exc))

    nc = await stack.connect(sam.nats_user, sam.password, sam.inbox_prefix, error_cb=record)  # the server refuses
    try:
        for subject in (S.ask("sam2", "risk", "alerts.ack"), S.ask("sam2", "scheduling", "alerts.list"),
                        S.ask("sam2", "intake", "person.find")):
            with pytest.raises(nats.errors.TimeoutError):
                await nc.request(subject, json.dumps({"alert_id": f"alert:{referred.referral_id}:{E02}:1"}).encode(),
                                 timeout=1)
            await wait_until(lambda subject=subject: any(f'"{subject}"' in e for e in refused), timeout=10,
                             what=f"the server's refusal of {subject}")
    finally:
        await nc.close()


async def test_person_find_gives_the_id_export_takes_and_is_logged_with_who_and_why(
    stack: Stack, referred: Referred
) -> None:
    stack.add("lee", "dsl")
    purpose = f"Police call: missing-person report {uuid.uuid4().hex[:6]}"
    # spelt as a person might type it: no accent, another case; matched as intake matches referrals
    found = stack.reroute("person", "find", "--given", "ZOE", "--family", referred.family_name.lower(), "--born",
                          "2010-05-17", "--purpose", purpose, person="lee")
    assert found.returncode == 0, said(found)
    person_id = re.search(r"Person id: (psn_[0-9a-f]+)", said(found))
    assert person_id and referred.referral_id in found.stdout, said(found)

    nobody = stack.reroute("person", "find", "--given", "Zoë", "--family", referred.family_name, "--born",
                           "2010-05-18", "--purpose", purpose, person="lee")
    assert nobody.returncode != 0 and "No young person with that name and date of birth" in said(nobody)
    no_purpose = stack.reroute("person", "find", "--given", "Zoë", "--family", referred.family_name, "--born",
                               "2010-05-17", "--purpose", " ", person="lee")
    assert no_purpose.returncode != 0 and "say why you look them up" in said(no_purpose)

    exported = stack.reroute("person", "export", person_id[1])  # the admin answers the subject access request
    assert exported.returncode == 0, said(exported)
    log = json.loads(exported.stdout)["intake"]["personal_data_access_log"]
    assert [(e["item"], e["asked_by"], e["purpose"]) for e in log if e["purpose"] == purpose] == [
        ("person_find", "lee", purpose)]
    engine = stack.up.engine("intake")
    with engine.connect() as conn:
        logged = conn.execute(select(PersonalDataAccessRecord.referral_id, PersonalDataAccessRecord.asked_by,  # type: ignore[call-overload]
                                     PersonalDataAccessRecord.answered)
                              .where(PersonalDataAccessRecord.purpose == purpose)
                              .order_by(PersonalDataAccessRecord.id)).all()
    engine.dispose()
    assert [tuple(r) for r in logged] == [(referred.referral_id, "lee", True), ("", "lee", False)], \
        "the unanswered look-up is logged too, naming no one (the name asked for is not stored)"


async def test_an_agency_reaches_neither_alerts_nor_person_find(stack: Stack, referred: Referred) -> None:
    """With an agency's own NATS credentials, on the people's subjects and the services' own; and its HTTP API has
    no such route."""
    admin = PersonCredentials.model_validate_json((stack.up.data_dir / "admin-credentials.json").read_text())
    agency_id = f"yot-{uuid.uuid4().hex[:6]}"
    nc = await stack.connect(admin.nats_user, admin.password, admin.inbox_prefix)
    try:
        keys = json.loads((await nc.request(S.ask(admin.person_id, "intake", "agencies.add"), json.dumps(
            {"agency_id": agency_id, "name": "Test YOT"}).encode(), timeout=15)).data)
        ping = json.loads((await nc.request(S.ask(admin.person_id, "intake", "ping"), b"{}", timeout=10)).data)
    finally:
        await nc.close()
    access = keys["nats"]
    refused: list[str] = []

    async def record(exc: Exception) -> None:
        refused.append(str(exc))

    connected: list[Client] = []

    async def let_in() -> bool:  # the server picks a new agency up within seconds
        try:
            connected.append(await stack.connect(access["user"], access["password"], access["inbox_prefix"],
                                                 error_cb=record))
        except (nats.errors.Error, OSError):  # refused, or dropped mid-handshake, while the server reloads
            return False
        return True

    await wait_until(let_in, timeout=30, every=0.2, what="the server letting the agency in")
    agency = connected[0]
    asks = {"alert_id": f"alert:{referred.referral_id}:{E02}:1", "given_name": "Zoë",
            "family_name": referred.family_name, "date_of_birth": "2010-05-17", "purpose": "fishing"}
    try:
        for subject in (S.ask(agency_id, "intake", "person.find"), S.ask("dana", "intake", "person.find"),
                        S.rpc("intake", "person.find"), S.ask(agency_id, "risk", "alerts.list"),
                        S.rpc("risk", "alerts.list"), S.rpc("scheduling", "alerts.ack"),
                        S.ask("dana", "risk", "alerts.ack")):
            with pytest.raises(nats.errors.TimeoutError):
                await agency.request(subject, json.dumps(asks).encode(), timeout=1)
            await wait_until(lambda subject=subject: any(f'"{subject}"' in e for e in refused), timeout=10,
                             what=f"the server's refusal of the agency's {subject}")
    finally:
        await agency.close()

    paths = await asyncio.to_thread(_paths, f"{ping['http_url']}/openapi.json")
    assert not [p for p in paths if re.search("person|people|alert", p)], paths
