"""The README's code examples, read from README.md at test time and run as written: the agency's NATS example with
a real registered agency's own credentials against a running `reroute up`, and its curl example with the agency's
API key. Every fenced block of the README is either run here or named here with the reason it is not code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from apps.cli.up import Faces
from apps.devstack.processes import die_with_parent
from tests.support.readme import README, CodeBlock, code_blocks
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
REPO = README.parent
REROUTE = Path(sys.executable).with_name("reroute")


def only(lang: str, *, containing: str) -> CodeBlock:
    found = [b for b in code_blocks() if b.lang == lang and containing in b.code]
    assert len(found) == 1, f"README.md should have one ```{lang} block with {containing!r}, not {len(found)}"
    return found[0]


def test_every_code_block_in_the_readme_is_run_here_or_is_not_code() -> None:
    """A new example fails this until a test runs it (or it is said here why it is not code)."""
    for block in code_blocks():
        if block.lang == "python" and "nats.connect" in block.code or block.lang == "sh" and "curl" in block.code:
            continue  # run by the tests below
        if block.lang == "mermaid":
            continue  # a diagram
        if block.lang == "" and block.code.startswith("services/intake/"):
            continue  # the layout tree
        if block.lang == "" and all(line.startswith("make ") for line in block.code.splitlines()):
            continue  # the quick start, whose targets the next test checks
        if block.lang == "text" and "Why each referral went where it did" in block.code:
            continue  # what `make run` prints, held against a run by tests/e2e/test_demo.py
        pytest.fail(f"{block} is neither run by tests/e2e/test_readme_examples.py nor known not to be code")


def test_the_quick_starts_make_targets_exist() -> None:
    block = next(b for b in code_blocks() if b.lang == "" and b.code.startswith("make "))
    targets = [line.split()[1] for line in block.code.splitlines()]
    assert targets, block
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=False)
        assert dry.returncode == 0, f"`make {target}` from the README: {dry.stderr}"


@dataclass
class Stack:
    data_dir: Path
    console: Path
    api: str

    def reroute(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(REROUTE), *args], env=_env() | {"REROUTE_DATA_DIR": str(self.data_dir)},
                              capture_output=True, text=True, check=False, timeout=90)

    @property
    def nats_url(self) -> str:
        return (self.data_dir / "nats.url").read_text().strip()


def _env() -> dict[str, str]:
    """Nothing that would point `reroute up` elsewhere than its own NATS and SQLite; ports it chooses."""
    dropped = {"NATS_URL", "REROUTE_NATS_URL", "DATABASE_URL", "REROUTE_DATABASE_URL", "REROUTE_DATA_DIR",
               "REROUTE_NAMESPACE", "OTEL_EXPORTER_OTLP_ENDPOINT"}
    return {k: v for k, v in os.environ.items() if k not in dropped} | {
        "COLUMNS": "250", "PYTHONUNBUFFERED": "1", "REROUTE_INTAKE_HTTP_PORT": "auto", "REROUTE_CALENDAR_PORT": "auto",
        "REROUTE_CONSOLE_PORT": "auto"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`make run`'s `reroute up --demo` of its own: NATS with users and permissions, no namespace, the demo agency."""
    data_dir = tmp_path_factory.mktemp("readme") / "data"
    console = data_dir.parent / "up.out"
    with console.open("wb") as out:
        up = subprocess.Popen([str(REROUTE), "up", "--demo", "--examples", str(REPO / "examples"), "--data-dir",
                               str(data_dir)], env=_env(), stdout=out, stderr=subprocess.STDOUT,
                              preexec_fn=die_with_parent())  # noqa: PLW1509
    try:
        def said() -> str:
            assert up.poll() is None, f"reroute up exited with {up.returncode}: {console.read_text()}"
            return " ".join(console.read_text(errors="replace").split())

        asyncio.run(wait_until(lambda: "reroute is running" in said(), timeout=120, what="reroute up to be running"))
        api = re.search(r"Agencies' HTTP API: (http://[\d.]+:\d+) ", said())
        assert api, said()
        yield Stack(data_dir, console, api[1])
    finally:
        up.terminate()
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


@dataclass(frozen=True)
class Agency:
    agency_id: str
    api_key: str
    nats_password: str
    inbox_prefix: str


async def register(stack: Stack) -> Agency:
    """`reroute agencies add`, as an operator runs it; what it printed, once the server knows the new user."""
    agency_id = f"yot-{uuid.uuid4().hex[:8]}"
    added = stack.reroute("agencies", "add", agency_id, "--name", "Readme YOT")
    assert added.returncode == 0, added.stdout + added.stderr
    text = added.stdout
    api_key = re.search(r"HTTP API key:\s+(\S+)", text)
    password = re.search(r"user agency-\S+, password\s+(\S+)", text)
    prefix = re.search(r"inbox prefix (\S+?);", text)
    assert api_key and password and prefix, text
    agency = Agency(agency_id, api_key[1], password[1], prefix[1])

    async def user_is_live() -> bool:  # `reroute up` reloads the server's users within seconds
        try:
            nc = await nats.connect(stack.nats_url, user=f"agency-{agency_id}", password=agency.nats_password,
                                    allow_reconnect=False, connect_timeout=2)
        except Exception:  # noqa: BLE001 - authorization refused until the reload
            return False
        await nc.close()
        return True

    await wait_until(user_is_live, timeout=60, every=0.5, what="the new agency's NATS user to be live")
    return agency


def a_referral(folder: Path) -> tuple[Path, str]:
    """examples/referrals.json's first referral under a reference of its own, saved as referral.json."""
    body = json.loads((REPO / "examples" / "referrals.json").read_text())[0]
    body["agency_referral_id"] = f"README-{uuid.uuid4().hex[:8]}"
    path = folder / "referral.json"
    path.write_text(json.dumps(body))
    return path, body["agency_referral_id"]


def run_python(code: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (folder / "submit.py").write_text(code)
    return subprocess.run([sys.executable, "submit.py", "referral.json"], cwd=folder, env={**os.environ, **env},
                          capture_output=True, text=True, check=False, timeout=90)


def run_shell(code: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-e", "-c", code], cwd=folder, env={**os.environ, **env}, capture_output=True,
                          text=True, check=False, timeout=60)


async def test_the_nats_example_submits_a_referral_with_a_registered_agencys_own_credentials(
    stack: Stack, tmp_path: Path
) -> None:
    example = only("python", containing="nats.connect")
    agency = await register(stack)
    _, reference = a_referral(tmp_path)
    env = {"AGENCY_ID": agency.agency_id, "NATS_URL": stack.nats_url, "NATS_PASSWORD": agency.nats_password}

    ran = run_python(example.code, tmp_path, env)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    outcome = re.fullmatch(r"accepted (ref_\w+)\n", ran.stdout)
    assert outcome, ran.stdout
    assert agency.inbox_prefix == f"_INBOX_AGENCY.{agency.agency_id}" and "_INBOX_AGENCY." in example.code
    shown = stack.reroute("status", outcome[1])
    assert shown.returncode == 0 and f"from {agency.agency_id} (their ref {reference})" in shown.stdout, shown.stdout


async def test_without_the_inbox_prefix_the_same_example_fails_as_the_readme_says(stack: Stack, tmp_path: Path) -> None:
    example = only("python", containing="nats.connect")
    without = re.sub(r",\s*inbox_prefix=[^)]*\)", ")", example.code)
    assert without != example.code, "the example names its inbox prefix"
    agency = await register(stack)
    a_referral(tmp_path)

    ran = run_python(without, tmp_path, {"AGENCY_ID": agency.agency_id, "NATS_URL": stack.nats_url,
                                         "NATS_PASSWORD": agency.nats_password})

    assert ran.returncode != 0 and "Timeout" in ran.stderr, ran.stdout + ran.stderr


def in_the_checkout(stack: Stack, folder: Path) -> None:
    """`folder` as the checkout `make run` ran in: its `.reroute` is the stack's data dir."""
    (folder / ".reroute").symlink_to(stack.data_dir, target_is_directory=True)


async def test_the_curl_example_submits_a_referral_as_the_demo_agency_with_its_kept_key(
    stack: Stack, tmp_path: Path
) -> None:
    """As written, from where `make run` ran: the demo agency's key from `.reroute/demo-agency.key`, and the API at
    the address `reroute up` printed (the README's is the default port; this run's is its own)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the README's curl example cannot run")
    example = only("sh", containing="curl")
    assert "REROUTE_API=http://127.0.0.1:8081 " in example.code and Faces.model_fields["intake_http_port"].default == 8081
    said = " ".join(stack.console.read_text().split())
    assert f"Agencies' HTTP API: {stack.api} (try-it page {stack.api}/docs)" in said, said
    key = (stack.data_dir / "demo-agency.key").read_text().strip()
    assert key not in stack.console.read_text(), "the key is kept in a file, never printed"
    assert f"HTTP API key is in {stack.data_dir / 'demo-agency.key'}" in said, said
    assert (stack.data_dir / "demo-agency.key").stat().st_mode & 0o777 == 0o600
    in_the_checkout(stack, tmp_path)
    _, reference = a_referral(tmp_path)

    ran = run_shell(example.code.replace("http://127.0.0.1:8081", stack.api), tmp_path, {})

    assert ran.returncode == 0, ran.stdout + ran.stderr
    reply = json.loads(ran.stdout)
    assert (reply["outcome"], reply["agency_referral_id"]) == ("accepted", reference), reply
    shown = stack.reroute("status", reply["referral_id"])
    assert shown.returncode == 0 and "from demo" in shown.stdout, shown.stdout
    listed = stack.reroute("agencies", "list")
    assert re.search(r"│ demo\s+│[^│]*│ active", listed.stdout), listed.stdout


async def test_the_nats_example_runs_as_the_demo_agency_with_the_files_the_readme_names(
    stack: Stack, tmp_path: Path
) -> None:
    example = only("python", containing="nats.connect")
    command = re.search(r"`(AGENCY_ID=demo NATS_URL=\$\(cat [^`]+ python\s+submit\.py referral\.json)`",
                        README.read_text(encoding="utf-8"))
    assert command, "the README says how to run the example as the demo agency"
    in_the_checkout(stack, tmp_path)
    _, reference = a_referral(tmp_path)
    (tmp_path / "submit.py").write_text(example.code)
    assert (stack.data_dir / "demo-agency.nats-password").stat().st_mode & 0o777 == 0o600

    ran = run_shell(" ".join(command[1].split()).replace("python ", f"{sys.executable} "), tmp_path, {})

    assert ran.returncode == 0, ran.stdout + ran.stderr
    outcome = re.fullmatch(r"accepted (ref_\w+)\n", ran.stdout)
    assert outcome, ran.stdout
    shown = stack.reroute("status", outcome[1])
    assert shown.returncode == 0 and f"from demo (their ref {reference})" in shown.stdout, shown.stdout
