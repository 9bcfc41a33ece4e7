"""People with identities of their own, against a real `reroute up`: its first admin, `reroute people add|remove`,
each person's requests confined by the NATS server to their own roles and their own name, the services recording
the person the subject names, and a removed person's live connection dropped."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from sqlalchemy import select
from typer.testing import CliRunner

from apps.cli.main import app
from services.intake.tables import PersonalDataAccessRecord
from shared.contracts.intake_rpc import PersonCredentials
from shared.subjects import Subjects
from tests.support.cluster import referral
from tests.support.local_up import REROUTE, LocalUp, up_env
from tests.support.risk import seen
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e]
S = Subjects()
LAPSE_HOURS = 0.004
"""A lowering waits 14.4 s for its countersignature here: ample for requests over NATS, short for a test."""


@dataclass
class Stack:
    up: LocalUp
    url: str
    home: Path

    def reroute(self, *args: str, person: str | None = None) -> subprocess.CompletedProcess[str]:
        """`reroute ARGS` on this stack, as the local first admin or as `person` (their credentials file)."""
        env = up_env() | ({"REROUTE_CREDENTIALS": str(self.credentials(person))} if person else {})
        return subprocess.run([str(REROUTE), *args, "--data-dir", str(self.up.data_dir)], env=env, cwd=self.home,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, check=False)

    @asynccontextmanager
    async def at_a_terminal(self, *args: str, person: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
        """`reroute ARGS` as `person` with a terminal (a pty) for its input, and the end of it where one answers;
        killed on the way out if it still runs."""
        answers, terminal = pty.openpty()
        cli = await asyncio.create_subprocess_exec(
            str(REROUTE), *args, "--data-dir", str(self.up.data_dir), cwd=self.home,
            env=up_env() | {"REROUTE_CREDENTIALS": str(self.credentials(person))}, stdin=terminal,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        os.close(terminal)
        try:
            yield cli, answers
        finally:
            if cli.returncode is None:
                cli.kill()
                await cli.wait()
            os.close(answers)

    def add(self, person: str, *roles: str) -> PersonCredentials:
        done = self.reroute("people", "add", person, *(f"--role={r}" for r in roles), "--out",
                            str(self.credentials(person)))
        assert done.returncode == 0, done.stdout + done.stderr
        return PersonCredentials.model_validate_json(self.credentials(person).read_text())

    def credentials(self, person: str) -> Path:
        return self.home / f"{person}.json"

    async def connect(self, person: PersonCredentials, **options: object) -> Client:
        host = self.url.removeprefix("nats://")
        return await nats.connect(f"nats://{person.nats_user}:{person.password}@{host}",
                                  inbox_prefix=person.inbox_prefix.encode(), **options)


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    up = LocalUp.launch(tmp_path_factory.mktemp("people") / "data", REROUTE_PENDING_OVERRIDE_HOURS=str(LAPSE_HOURS))
    try:
        await up.until_running()
        up.register_agency("demo")  # the agency its referrals are submitted as
        yield Stack(up, (up.data_dir / "nats.url").read_text().strip(), tmp_path_factory.mktemp("home"))
    finally:
        up.stop()
        up.drop_schemas()
        print(f"--- reroute up said:\n{up.output()}")


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


async def test_up_makes_a_local_first_admin_who_gives_people_their_own_identities(stack: Stack) -> None:
    admin_file = stack.up.data_dir / "admin-credentials.json"
    assert admin_file.stat().st_mode & 0o777 == 0o600
    me = stack.reroute("people", "whoami")
    assert me.returncode == 0 and "admin: scheduler, risk_lead, dsl, operator, admin" in said(me), said(me)

    sam = stack.add("sam", "scheduler")
    async with await stack.connect(sam):  # `people add` returned once the server let sam in: no waiting here
        pass
    assert stack.credentials("sam").stat().st_mode & 0o777 == 0o600
    assert sam.person_id == "sam" and sam.nats_user == "person-sam" and sam.roles == ["scheduler"]
    again = stack.reroute("people", "add", "sam", "--role", "dsl", "--out", str(stack.home / "sam2.json"))
    assert again.returncode != 0 and "'sam' already has an identity" in said(again)
    assert not (stack.home / "sam2.json").exists()

    as_sam = stack.reroute("people", "whoami", person="sam")
    assert as_sam.returncode == 0 and "sam: scheduler" in said(as_sam), said(as_sam)
    grab = stack.reroute("people", "add", "eve", "--role", "admin", person="sam")
    assert grab.returncode != 0 and "sam (scheduler) may not ask intake people.add" in said(grab), said(grab)
    listed = stack.reroute("people", "list")
    assert "eve" not in listed.stdout and "sam" in listed.stdout


async def test_a_person_cannot_act_as_another_and_the_access_log_names_the_real_one(stack: Stack) -> None:
    """Over NATS with sam's own credentials: another person's subject is refused by the server; a body naming
    someone else is overruled by the subject, in the reply and in intake's personal-data access log."""
    sam = PersonCredentials.model_validate_json(stack.credentials("sam").read_text()) \
        if stack.credentials("sam").exists() else stack.add("sam", "scheduler")
    errors: list[str] = []

    async def record(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await stack.connect(sam, error_cb=record)
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(S.ask("admin", "intake", "people.whoami"), b"{}", timeout=1)
        await wait_until(lambda: any('"reroute.ask.admin.intake.people.whoami"' in e for e in errors), timeout=10,
                         what="the server's refusal of sam publishing as admin")

        reply = await nc.request(S.ask("sam", "intake", "people.whoami"), b'{"person_id": "admin"}', timeout=10)
        assert json.loads(reply.data) == {"person_id": "sam", "roles": ["scheduler"]}

        referral = "R-not-there-" + stack.home.name[-6:]
        reply = await nc.request(S.ask("sam", "intake", "first_name"), json.dumps(
            {"referral_id": referral, "asked_by": "admin", "purpose": "booking a session"}).encode(), timeout=10)
        assert json.loads(reply.data)["error"]["code"] == "not_found"
    finally:
        await nc.close()
    engine = stack.up.engine("intake")
    with engine.connect() as db:
        logged = db.execute(select(PersonalDataAccessRecord.asked_by, PersonalDataAccessRecord.purpose)  # type: ignore[call-overload]
                            .where(PersonalDataAccessRecord.referral_id == referral)).all()
    engine.dispose()
    assert [tuple(row) for row in logged] == [("sam", "booking a session")]


async def test_removing_a_person_drops_their_live_connection_and_shuts_them_out(stack: Stack) -> None:
    lee = stack.add("lee", "dsl")
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    async def quiet(_: Exception) -> None:
        pass

    connected: list[Client] = []

    async def let_in() -> bool:  # the server reloads its users within seconds of the change
        try:
            connected.append(await stack.connect(lee, allow_reconnect=False, closed_cb=on_closed, error_cb=quiet))
        except nats.errors.Error:
            return False
        return True

    await wait_until(let_in, timeout=30, every=0.2, what="the server letting lee in")
    nc = connected[0]
    closed.clear()  # only the connection that got in counts from here
    try:
        reply = await nc.request(S.ask("lee", "intake", "people.whoami"), b"{}", timeout=10)
        assert json.loads(reply.data)["person_id"] == "lee"

        removed = stack.reroute("people", "remove", "lee")
        assert removed.returncode == 0, said(removed)
        await asyncio.wait_for(closed.wait(), timeout=30)
        assert nc.is_closed
    finally:
        await nc.close()
    shut_out = stack.reroute("people", "whoami", person="lee")
    assert shut_out.returncode != 0 and "does not let lee in" in said(shut_out), said(shut_out)
    listed = stack.reroute("people", "list")
    assert "removed" in " ".join(line for line in listed.stdout.splitlines() if " lee " in f" {line} ")


def _referred(stack: Stack, *, tag: str) -> str:
    """A referral submitted as the first admin (an operator may submit for an agency), once it is assessed; its id."""
    arid = f"{tag}-{uuid.uuid4().hex[:8]}"
    path = stack.home / f"{arid}.json"
    path.write_text(json.dumps([referral(arid, language="en", indicators=["peers_offending"])]))
    done = stack.reroute("submit", str(path), "--agency", "demo", "--timeout", "30")
    found = re.search(rf"{re.escape(arid)}\s*│\s*(\S+)\s*│\s*low", done.stdout)
    assert done.returncode == 0 and found, said(done)
    return found[1]


class Lead:
    """A risk lead's own NATS session."""

    def __init__(self, nc: Client, person: str) -> None:
        self.nc, self.person = nc, person

    async def ask(self, verb: str, body: dict[str, object]) -> dict[str, Any]:
        reply = await self.nc.request(S.ask(self.person, "risk", verb), json.dumps(body).encode(), timeout=10)
        answer: dict[str, Any] = json.loads(reply.data)
        return answer


@pytest.fixture(scope="module")
async def leads(stack: Stack) -> AsyncIterator[tuple[Lead, Lead]]:
    """Two risk leads, each in a session of their own."""
    sessions = []
    for name in ("rita", "rob"):
        person = stack.add(name, "risk_lead")
        connected: list[Client] = []

        async def let_in(person: PersonCredentials = person, connected: list[Client] = connected) -> bool:
            try:
                connected.append(await stack.connect(person))
            except nats.errors.Error:
                return False
            return True

        await wait_until(let_in, timeout=30, every=0.2, what=f"the server letting {name} in")
        sessions.append(Lead(connected[0], name))
    yield sessions[0], sessions[1]
    for lead in sessions:
        await lead.nc.close()


async def test_a_lowered_tier_waits_for_a_second_risk_lead_and_the_asker_cannot_countersign(
    stack: Stack, leads: tuple[Lead, Lead]
) -> None:
    rita, rob = leads
    rid = _referred(stack, tag="LOWER")
    raised = await rita.ask("override", {"referral_id": rid, "tier": "high", "reason": "Knife disclosed",
                                         "by": "rob"})
    assert raised["assessment"]["tier"] == "high" and raised["assessment"]["override"]["by"] == "rita"

    asked = await rita.ask("override", {"referral_id": rid, "tier": "low", "reason": "Disclosure withdrawn"})
    assert asked["pending"]["by"] == "rita" and asked["pending"]["tier"] == "low"
    assert asked["assessment"]["tier"] == "high", "the tier in force stays until a second lead countersigns"
    shown = stack.reroute("assessment", rid)
    assert "overall tier high" in said(shown) and "Pending: lower to low, asked by rita" in said(shown), said(shown)

    named = seen(asked)
    own = await rita.ask("override.countersign", {"referral_id": rid, "by": "rob", "lowering": named})
    assert own["error"]["code"] == "refused" and "second person, not rita again" in own["error"]["message"]
    assert (await rita.ask("assessment", {"referral_id": rid}))["assessment"]["tier"] == "high"

    signed = await rob.ask("override.countersign", {"referral_id": rid, "by": "rita", "lowering": named})
    assert signed["assessment"]["tier"] == "low"
    override = signed["assessment"]["override"]
    assert (override["by"], override["countersigned_by"], override["kind"]) == ("rita", "rob", "down")
    after = await rob.ask("assessment", {"referral_id": rid})
    assert after["pending"] is None and after["history"][-1]["countersigned_by"] == "rob"


async def test_reroute_countersign_shows_the_lowering_and_signs_only_that_one(
    stack: Stack, leads: tuple[Lead, Lead]
) -> None:
    rita, rob = leads
    rid = _referred(stack, tag="CLISEEN")
    await rita.ask("override", {"referral_id": rid, "tier": "high", "reason": "Knife disclosed"})
    first = await rita.ask("override", {"referral_id": rid, "tier": "medium", "reason": "Calmer"})
    wrong = stack.reroute("countersign", rid, "--tier", "low", "--yes", person="rob")
    assert wrong.returncode == 1 and "asks for medium, not low: nothing signed" in said(wrong), said(wrong)

    # rob's CLI shows him the lowering to medium and asks; meanwhile rita withdraws it and asks for low instead
    async with stack.at_a_terminal("countersign", rid, "--tier", "medium", person="rob") as (cli, answers):
        assert cli.stdout is not None
        shown = (await asyncio.wait_for(cli.stdout.readuntil(b"Countersign this lowering?"), timeout=90)).decode()
        assert "Pending: lower to medium, asked by rita" in " ".join(shown.split()), shown
        await rita.ask("override.refuse", {"referral_id": rid, "reason": "Asked too soon", "lowering": seen(first)})
        second = (await rita.ask("override", {"referral_id": rid, "tier": "low", "reason": "Moved school"}))["pending"]
        os.write(answers, b"y\n")
        out = await asyncio.wait_for(cli.stdout.read(), timeout=90)
        await cli.wait()

    told = " ".join(out.decode().split())
    assert cli.returncode == 1, told
    assert "the lowering you saw (to medium, asked by rita at" in told and "was withdrawn by rita" in told, told
    assert "the pending one asks for low (asked by rita at" in told, told
    after = await rob.ask("assessment", {"referral_id": rid})
    assert after["assessment"]["tier"] == "high" and after["pending"] == second, "nothing signed; low still waits"
    signed = stack.reroute("countersign", rid, "--tier", "low", "--yes", person="rob")
    assert signed.returncode == 0 and f"{rid}: tier low" in said(signed), said(signed)


async def test_reroute_countersign_asks_only_at_a_terminal_and_a_no_signs_nothing(
    stack: Stack, leads: tuple[Lead, Lead]
) -> None:
    rita, rob = leads
    rid = _referred(stack, tag="CLIASK")
    await rita.ask("override", {"referral_id": rid, "tier": "high", "reason": "Knife disclosed"})
    asked = (await rita.ask("override", {"referral_id": rid, "tier": "medium", "reason": "Calmer"}))["pending"]

    piped = stack.reroute("countersign", rid, "--tier", "medium", person="rob")  # a script: no terminal, no --yes
    assert piped.returncode == 1 and "Pending: lower to medium, asked by rita" in said(piped), said(piped)
    assert ("error: nothing signed: no terminal to confirm the lowering shown above; once you have read it, pass "
            "--yes") in said(piped), said(piped)
    async with stack.at_a_terminal("countersign", rid, "--tier", "medium", person="rob") as (cli, answers):
        assert cli.stdout is not None
        await asyncio.wait_for(cli.stdout.readuntil(b"Countersign this lowering?"), timeout=90)
        os.write(answers, b"n\n")
        told = " ".join((await asyncio.wait_for(cli.stdout.read(), timeout=90)).decode().split())
        await cli.wait()
    assert cli.returncode == 1 and told.endswith("Nothing signed."), told
    after = await rob.ask("assessment", {"referral_id": rid})
    assert after["assessment"]["tier"] == "high" and after["pending"] == asked, "nothing signed; medium still waits"

    helped = CliRunner().invoke(app, ["countersign", "--help"], env={"COLUMNS": "250"})
    assert "The tier the lowering asks for (low, medium, high or very_high)" in helped.output, helped.output


async def test_a_refused_or_lapsed_lowering_leaves_the_tier_in_force(stack: Stack, leads: tuple[Lead, Lead]) -> None:
    rita, rob = leads
    refused, lapsing = _referred(stack, tag="REFUSE"), _referred(stack, tag="LAPSE")
    named = {}
    for rid in (refused, lapsing):
        await rita.ask("override", {"referral_id": rid, "tier": "high", "reason": "Knife disclosed"})
        named[rid] = seen(await rita.ask("override", {"referral_id": rid, "tier": "low", "reason": "Withdrawn"}))

    no = await rob.ask("override.refuse", {"referral_id": refused, "reason": "Not convinced",
                                           "lowering": named[refused]})
    assert no["assessment"]["tier"] == "high"
    shown = await rob.ask("assessment", {"referral_id": refused})
    assert shown["pending"] is None and shown["assessment"]["tier"] == "high"
    late = await rob.ask("override.countersign", {"referral_id": refused, "lowering": named[refused]})
    assert late["error"]["code"] == "not_found"

    async def lapsed() -> bool:
        return (await rob.ask("assessment", {"referral_id": lapsing}))["pending"] is None

    await wait_until(lapsed, timeout=60, every=0.5, what="the unsigned lowering lapsing")
    too_late = await rob.ask("override.countersign", {"referral_id": lapsing, "lowering": named[lapsing]})
    assert too_late["error"]["code"] == "refused" and "lapsed unsigned" in too_late["error"]["message"]
    assert (await rob.ask("assessment", {"referral_id": lapsing}))["assessment"]["tier"] == "high"
