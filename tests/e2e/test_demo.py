"""`reroute up --demo` explains itself from what the services said, not from text written for the sample: run on a
sample of this test's own (a mentor with a made-up name who works one weekday only, a very high risk referral that
raises safeguarding alerts and cannot be seen in time, one seen in time, one in a borough nobody covers), every
explanation matches risk's assessment, the alerts on the stream, scheduling's status and waitlist, and the mentors
file; and `make run`'s shipped sample shows the explained demo the README describes."""

from __future__ import annotations

import itertools
import json
import random
import re
import string
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import nats.errors
import pytest
import yaml

from apps.cli.client import ServiceClient, connect
from shared.contracts import intake_rpc, risk_rpc
from shared.contracts import scheduling_rpc as sched
from shared.contracts.risk import RiskAssessed, SafeguardingAlert
from shared.contracts.rpc import Empty
from shared.contracts.scheduling import CaseStatus
from shared.settings import ServiceSettings
from tests.support.cli import cli_rows
from tests.support.local_up import LocalUp
from tests.support.readme import code_blocks

pytestmark = [pytest.mark.e2e]
LONDON = ZoneInfo("Europe/London")
REPO = Path(__file__).resolve().parents[2]


def when(moment: datetime) -> str:
    return moment.astimezone(LONDON).strftime("%a %d %b %H:%M")


@dataclass
class Demo:
    up: LocalUp
    text: str  # what `reroute up --demo` printed, line by line

    def blocks(self) -> dict[str, str]:
        """The explanation of each referral, by referral id."""
        section = self.text.split("Why each referral went where it did", 1)[1].split("\nNext", 1)[0]
        found: dict[str, str] = {}
        for line in section.splitlines():
            if line.startswith("ref_"):
                current = line.split()[0]
                found[current] = ""
            if found:
                found[current] += line + "\n"
        return found

    def referral_ids(self) -> dict[str, str]:
        """Our referral id by the agency's reference, from the outcome table (accepted rows only)."""
        table = self.text.split("Referral outcomes", 1)[1].split("Why each referral", 1)[0]
        return {row[1]: row[2] for row in cli_rows(table) if row[2].startswith("ref_")}

    def next_commands(self) -> str:
        return self.text.split("\nNext", 1)[1].split("reroute is running", 1)[0]

    def settings(self) -> ServiceSettings:
        return ServiceSettings(data_dir=self.up.data_dir, NATS_URL=None, namespace="")  # type: ignore[call-arg]


def demo_people_loaded(up: LocalUp) -> bool:
    """nats-server has reloaded its users since `reroute up` wrote the demo people into them (the people file is
    written just before the reload is asked for). While it reloads, the server refuses connections and the replies to
    requests in flight (a publish violation), so the demo must have it done before it says it is running, or a
    command typed at once may fail."""
    people = up.data_dir / "nats-people.json"
    try:
        if not set(DEMO_PEOPLE) <= {p["person_id"] for p in json.loads(people.read_text())}:
            return False
        written = datetime.fromtimestamp(people.stat().st_mtime)
        log = (up.data_dir / "logs" / "nats.log").read_text(errors="replace").splitlines()
    except (OSError, ValueError):
        return False
    reloads = [datetime.strptime(" ".join(line.split()[1:3]), "%Y/%m/%d %H:%M:%S.%f") for line in log
               if "Reloaded server configuration" in line]
    return bool(reloads) and reloads[-1] >= written


async def run_demo(data_dir: Path, examples: Path, **env: str) -> AsyncIterator[Demo]:
    up = LocalUp.launch(data_dir, "--demo", "--examples", str(examples), **env)
    try:
        await up.until_running()
        assert demo_people_loaded(up), "reroute up --demo said it is running before NATS let its demo people in"
        yield Demo(up, up.out.read_text(errors="replace"))
    finally:
        up.stop()
        up.drop_schemas()
        print(f"--- reroute up said:\n{up.out.read_text(errors='replace')}")


@dataclass
class Sample:
    folder: Path
    mentor_id: str
    mentor_name: str
    works_on: date  # the only weekday the mentor works, three days from today
    late: str  # agency references
    on_time: str
    waits: str


def _referral(ref: str, borough: str, indicators: list[object], **more: object) -> dict[str, object]:
    return {"agency_referral_id": ref, "referrer": {"name": "Test Referrer", "role": "YOT case manager",
                                                    "email": "referrer@example.org"},
            "young_person": {"given_name": ref.split("-")[0].title(), "family_name": f"Example{ref.split('-')[1]}",
                             "date_of_birth": "2010-05-05",
                             "gender": "male", "borough": borough, "languages": ["en"]},
            "consent": {"given": True, "recorded_at": "2026-01-05T10:00:00+00:00"},
            "reason": "A test referral.", "indicators": indicators, **more}


def write_sample(folder: Path) -> Sample:
    """Files unlike the shipped ones: a mentor nobody wrote text for, who works only three days from now (so a 24-hour
    deadline is missed, whatever day the test runs, and a 7-day one is met), and a borough nobody covers."""
    tag = uuid.uuid4().hex[:6]
    surname = "".join(random.choices(string.ascii_lowercase, k=8)).title()
    name = f"{random.choice(['Ines', 'Tomasz', 'Yetunde', 'Callum'])} [bold]{surname}"  # printed as written, not as markup
    works_on = datetime.now(LONDON).date() + timedelta(days=3)
    sample = Sample(folder, f"m-{tag}", name, works_on, f"LATE-{tag}", f"ONTIME-{tag}", f"WAITS-{tag}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mentors.yaml").write_text(yaml.safe_dump([{
        "id": sample.mentor_id, "name": name, "kind": "staff", "vetting": {"enhanced_check_expires": "2035-01-31"},
        "boroughs": ["Camden"], "languages": ["en"], "gender": "female", "max_caseload": 10,
        "availability": [{"day": f"{works_on:%a}".lower(), "start": "09:00", "end": "18:00"}],
    }]))
    (folder / "referrals.json").write_text(json.dumps([
        _referral(sample.late, "Camden", ["threat_to_life_warning", "group_violence", "recent_violent_victimisation"],
                  index_offence="robbery", prior_proven_offences=3, age_at_first_proven_offence=13),
        _referral(sample.on_time, "Camden", ["out_of_education", "unexplained_money", "older_controlling_associates"]),
        _referral(sample.waits, "Bexley", ["unstructured_time", "peers_offending"]),
    ]))
    return sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory, sample: Sample) -> AsyncIterator[Demo]:
    async for running in run_demo(tmp_path_factory.mktemp("demo") / "data", sample.folder):
        yield running


async def _alerts(settings: ServiceSettings, referral_id: str) -> list[SafeguardingAlert]:
    """The alerts on the stream about this referral, read apart from the demo's own reading."""
    async with connect(settings, as_operator=True) as operator:
        return await _read_alerts(operator, referral_id)


async def _read_alerts(client: ServiceClient, referral_id: str) -> list[SafeguardingAlert]:
    sub = await client.nc.jetstream().subscribe(client.subjects.alert("demo"), ordered_consumer=True,
                                                stream=client.subjects.safeguarding_stream)
    found = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except nats.errors.TimeoutError:
                break
            alert = SafeguardingAlert.model_validate_json(msg.data)
            if alert.referral_id == referral_id:
                found.append(alert)
    finally:
        await sub.unsubscribe()
    return found


def _strongest(a: RiskAssessed) -> str:
    """The explanation of the rule with the most points on an axis that set the overall tier."""
    deciding = [ax for ax in (a.likelihood, a.harm, a.wellbeing) if ax.tier == a.tier and ax.reasons]
    return max(deciding[0].reasons, key=lambda r: r.points).explanation


async def test_the_explanation_follows_the_sample_not_text_written_for_it(demo: Demo, sample: Sample) -> None:
    blocks = demo.blocks()
    ids = demo.referral_ids()
    late, on_time, waits = ids[sample.late], ids[sample.on_time], ids[sample.waits]
    assert set(blocks) == {late, on_time, waits}, demo.text
    async with connect(demo.settings()) as client:
        for rid in (late, on_time, waits):
            a = (await client.call(risk_rpc.ASSESSMENT, risk_rpc.AssessmentRequest(referral_id=rid))).assessment
            assert f"tier {a.tier}" in blocks[rid].splitlines()[0], blocks[rid]
            assert f": {_strongest(a)}" in blocks[rid], (rid, blocks[rid])
            printed = [line.split(": ", 1) for line in blocks[rid].splitlines() if line.startswith("  · ")]
            assert printed and all((axis.removeprefix("  · "), why) in {(r.axis, r.explanation) for r in a.reasons}
                                   for axis, why in printed), blocks[rid]

        # the very high risk referral: its alerts' actions and deadlines, and why its first session is late
        a = (await client.call(risk_rpc.ASSESSMENT, risk_rpc.AssessmentRequest(referral_id=late))).assessment
        alerts = await _alerts(demo.settings(), late)
        assert a.tier == "very_high" and a.escalations and {x.rule_id for x in alerts} == set(a.escalations)
        for alert in alerts:
            assert f"safeguarding {alert.rule_id}" in blocks[late]
            assert f"actions: {', '.join(x.replace('_', ' ') for x in alert.actions)}; by {when(alert.deadline)}" \
                in blocks[late], blocks[late]
        status = await client.call(sched.STATUS, sched.ReferralRequest(referral_id=late))
        received = (await client.call(intake_rpc.STATUS, intake_rpc.StatusRequest(referral_id=late))).received_at
        assert status.status == CaseStatus.SCHEDULED and status.deadline_met is False and status.first_session_due
        assert status.sessions[0].start.astimezone(LONDON).date() == sample.works_on
        assert f"booked after the deadline with {sample.mentor_name} ({sample.mentor_id}): {len(status.sessions)} " \
               f"sessions, first {when(status.sessions[0].start)}" in blocks[late], blocks[late]
        assert f"first session due by {when(status.first_session_due)} (received {when(received)})" in blocks[late]
        assert f"{status.first_session_due.astimezone(LONDON):%A}: no suitable mentor had a free slot" in blocks[late]

        status = await client.call(sched.STATUS, sched.ReferralRequest(referral_id=on_time))
        assert status.deadline_met is True and status.first_session_due
        assert f"booked with {sample.mentor_name} ({sample.mentor_id}): {len(status.sessions)} sessions, first " \
               f"{when(status.sessions[0].start)}, in time (due by {when(status.first_session_due)})" in blocks[on_time]

        # the one nobody covers waits, with what scheduling says would place them
        waiting = {w.referral_id: w for w in (await client.call(sched.WAITLIST, Empty())).waiting}
        status = await client.call(sched.STATUS, sched.ReferralRequest(referral_id=waits))
        assert waits in waiting and status.reason and "Bexley" in waiting[waits].would_place
        assert f"waits for a mentor: {status.reason}" in blocks[waits], blocks[waits]
        assert f"would place them: {waiting[waits].would_place}" in blocks[waits], blocks[waits]
        assert not {late, on_time} & set(waiting)

        names = {m.id: m.name for m in (await client.call(sched.MENTORS, Empty())).mentors}
    assert names[sample.mentor_id] == sample.mentor_name  # the name printed is the one in the mentors file
    table = demo.text.split("Referral outcomes", 1)[1].split("Why each referral", 1)[0]
    assert f"{sample.mentor_name} ({sample.mentor_id})" in table
    tried = demo.next_commands()
    for words in (f"assessment {late}", f"calendar {sample.mentor_id}", f"recommend {waits}", "waitlist"):
        assert f" {words} " in tried, tried
    assert "m-amara" not in demo.text  # nothing of the shipped sample is said about another


@pytest.fixture(scope="module")
async def shipped(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    # as under `nohup make run > demo.log`: written to a file, with no COLUMNS to say how wide
    async for running in run_demo(tmp_path_factory.mktemp("shipped") / "data", REPO / "examples", COLUMNS=""):
        yield running


async def test_make_run_explains_the_shipped_sample_as_the_readme_shows(shipped: Demo) -> None:
    """`make run` is `reroute up --demo` on examples/: every accepted referral is explained, the sample's young
    person in a borough no mentor covers waits with what would place them, and the README's picture of it has the
    parts a run prints."""
    referrals = json.loads((REPO / "examples" / "referrals.json").read_text())
    blocks, ours = shipped.blocks(), shipped.referral_ids()
    async with connect(shipped.settings()) as client:
        waiting = {w.referral_id: w for w in (await client.call(sched.WAITLIST, Empty())).waiting}
    assert len(ours) == len(referrals) - 1 and set(blocks) == set(ours.values()), shipped.text  # one row is malformed
    assert any(rid in waiting and f"would place them: {waiting[rid].would_place}" in blocks[rid]
               for rid in ours.values()), shipped.text
    assert "⚠ safeguarding" in shipped.text
    pictured = next(b for b in code_blocks() if b.lang == "text" and "Why each referral went where it did" in b.code)
    for heading in ("Referral outcomes", "Why each referral went where it did", "⚠ safeguarding", "would place them:",
                    "Next, in another terminal:", "reroute is running"):
        assert heading in pictured.code and heading in shipped.text, heading


DEMO_PEOPLE = {"dsl-demo": "dsl", "scheduler-demo": "scheduler", "risk-demo": "risk_lead", "operator-demo": "operator",
               "dpo-demo": "dpo"}
"""The demo people the README's web console section names, with their roles."""


async def test_make_run_prints_the_console_and_a_one_time_log_in_that_works_for_each_demo_person(
        shipped: Demo) -> None:
    """Issue 14: `make run` says where the console answers and gives each demo person the README names, with their
    role, a one-time password that logs them in there (to choose their own)."""
    shown = re.search(r"^Web console: (http://127\.0\.0\.1:\d+)\. Demo log-ins, one per role .*\n((?:  .*\n)+)",
                      shipped.text, re.MULTILINE)
    assert shown, shipped.text
    url, rows = shown[1], [line.split() for line in shown[2].splitlines()]
    assert {row[0]: row[1] for row in rows} == DEMO_PEOPLE and all(len(row) == 3 for row in rows), shown[0]
    async with connect(shipped.settings()) as client:
        people = {p.person_id: p for p in (await client.call(intake_rpc.LIST_PEOPLE, Empty())).people}
    assert all(people[p].roles == [role] and people[p].status == "active" for p, role in DEMO_PEOPLE.items()), people

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for person_id, _, password in rows:
            http.cookies.clear()
            form = await http.get("/login")
            assert form.status_code == 200 and "Log in to the reroute console" in form.text, form.text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf, form.text
            logged = await http.post("/login", data={"csrf_token": csrf[1], "person_id": person_id,
                                                     "password": password, "next": "/"})
            assert (logged.status_code, logged.headers.get("location")) == (303, "/password"), (person_id, logged.text)


async def test_written_to_a_file_the_demo_cuts_no_cell_and_wraps_no_command(shipped: Demo) -> None:
    table = shipped.text.split("Referral outcomes", 1)[1].split("Why each referral", 1)[0]
    assert "…" not in table, table
    tried = list(itertools.takewhile(lambda line: line.startswith("  "), shipped.next_commands().splitlines()[1:]))
    assert tried, shipped.text
    for line in tried:  # each command whole on its line, with what it shows beside it
        assert re.fullmatch(r"  \S*reroute (assessment|status|calendar|recommend|waitlist|trace)( \S+)?  +\S.*", line), \
            tried


async def test_the_start_leaves_no_error_in_the_nats_log(shipped: Demo) -> None:
    """Every start once logged `"$G/user:operator" - authentication error`: a connection of `reroute up` closing
    while the server reloaded its users."""
    log = (shipped.up.data_dir / "logs" / "nats.log").read_text()
    assert "[ERR]" not in log, [line for line in log.splitlines() if "[ERR]" in line]
