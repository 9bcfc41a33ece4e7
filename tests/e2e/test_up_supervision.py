"""`reroute up` as a person runs it: one owner per data dir, children that die with it whatever kills it,
restarts with back-off for nats-server and the services, and a hung service found by its pings."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import nats.errors
import pytest
from nats.aio.client import Client

from apps.devstack.local_nats import start_nats_server
from apps.devstack.processes import SERVICES, die_with_parent
from shared.nats_auth import ADMIN, PROVISIONER, LocalCredentials
from shared.settings import CREDENTIALS_FILE
from shared.subjects import Subjects
from tests.support.cli import cli_rows
from tests.support.waiting import Describe, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's"),
]

REROUTE = Path(sys.executable).with_name("reroute")
T = TypeVar("T")
_runs = itertools.count()


def _env() -> dict[str, str]:
    """The user's environment without anything that would point `reroute up` at another NATS or database, and
    short supervision bounds."""
    dropped = {"NATS_URL", "REROUTE_NATS_URL", "DATABASE_URL", "REROUTE_DATABASE_URL", "REROUTE_DATA_DIR",
               "REROUTE_NAMESPACE", "OTEL_EXPORTER_OTLP_ENDPOINT"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return env | {"COLUMNS": "250", "PYTHONUNBUFFERED": "1", "REROUTE_UP_PING_SECONDS": "0.5",
                  "REROUTE_UP_HUNG_AFTER_SECONDS": "3", "REROUTE_INTAKE_HTTP_PORT": "auto",
                  "REROUTE_CALENDAR_PORT": "auto", "REROUTE_CONSOLE_PORT": "auto"}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def gone(pid: int) -> bool:
    """Not running (a zombie nobody has reaped yet runs nothing and holds nothing)."""
    stat = _stat(pid)
    return stat is None or stat[0] in {"Z", "X"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


async def until(check: Callable[[], Awaitable[T | None]], *, timeout: float, what: Describe) -> T:
    """What `check` gives, once it gives something; fails saying `what` did not happen within `timeout` s."""
    found: list[T] = []

    async def given() -> bool:
        if (value := await check()) is not None:
            found.append(value)
        return bool(found)

    await wait_until(given, timeout=timeout, every=0.1, what=what)
    return found[0]


async def eventually(check: Callable[[], bool], *, timeout: float, what: Describe) -> None:
    await wait_until(check, timeout=timeout, every=0.1, what=what)


async def ping(nc: Client, service: str) -> dict[str, Any] | None:
    try:
        reply = await nc.request(Subjects().rpc(service, "ping"), b"{}", timeout=1)
    except (nats.errors.Error, TimeoutError):
        return None
    body: dict[str, Any] = json.loads(reply.data)
    return body


async def _quiet(*_: Any) -> None:
    pass


@dataclass
class Up:
    """One `reroute up` run, its console captured to a file."""

    data_dir: Path
    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def launch(cls, data_dir: Path) -> Up:
        out = data_dir.parent / f"{data_dir.name}-up-{next(_runs)}.out"
        with out.open("wb") as fh:
            proc = subprocess.Popen([str(REROUTE), "up", "--data-dir", str(data_dir)], env=_env(), stdout=fh,
                                    stderr=subprocess.STDOUT, preexec_fn=die_with_parent())  # noqa: PLW1509
        return cls(data_dir, proc, out)

    def output(self) -> str:
        """What it said so far, as one line (the console wraps long lines)."""
        return " ".join(self.out.read_text(errors="replace").split())

    async def until_running(self) -> None:
        def running() -> bool:
            assert self.proc.poll() is None, f"reroute up exited with {self.proc.returncode}:\n{self.output()}"
            return "reroute is running" in self.output()

        await eventually(running, timeout=120, what=lambda: f"reroute up to be running (it said: {self.output()})")

    def children(self) -> dict[int, str]:
        """Running processes this `reroute up` started, with their command lines."""
        kids = {}
        for entry in Path("/proc").glob("[0-9]*"):
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == self.proc.pid and stat[0] not in {"Z", "X"}:
                kids[int(entry.name)] = _cmdline(int(entry.name))
        return kids

    def nats_pid(self) -> int | None:
        return next((pid for pid, cmd in self.children().items() if "nats-server" in cmd), None)

    async def connect(self) -> Client:
        url = (self.data_dir / "nats.url").read_text().strip()
        creds = LocalCredentials(json.loads((self.data_dir / "nats-credentials.json").read_text()))
        return await nats.connect(creds.url(ADMIN, url), max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                  error_cb=_quiet, disconnected_cb=_quiet, reconnected_cb=_quiet)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # its children die with it
                self.proc.wait()


async def all_ready(nc: Client) -> dict[str, int] | None:
    """Each service's pid when all three answer ready, else None."""
    replies = await asyncio.gather(*(ping(nc, name) for name in SERVICES))
    if all(r is not None and r["ready"] for r in replies):
        return {name: r["pid"] for name, r in zip(SERVICES, replies, strict=True) if r is not None}
    return None


@dataclass
class Stack:
    up: Up
    nc: Client


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One `reroute up` that the tests below hurt one way or another; each leaves it healthy again."""
    up = Up.launch(tmp_path_factory.mktemp("up") / "data")
    nc: Client | None = None
    try:
        await up.until_running()
        nc = await up.connect()
        yield Stack(up, nc)
    finally:
        if nc is not None:
            await nc.close()
        up.stop()
        print(f"--- reroute up said:\n{up.output()}")


def _snapshot(data_dir: Path) -> dict[str, tuple[int, bytes] | None]:
    """What a second start could have written: every top-level file but the services' own databases (their
    content, and mtime), and the names in logs/."""
    files: dict[str, tuple[int, bytes] | None] = {}
    for path in data_dir.iterdir():
        if path.is_file() and ".db" not in path.name:
            files[path.name] = (path.stat().st_mtime_ns, path.read_bytes())
    files.update({f"logs/{p.name}": None for p in (data_dir / "logs").iterdir()})
    return files


async def test_a_second_up_on_the_same_data_dir_is_refused_and_touches_nothing(stack: Stack) -> None:
    data_dir, first = stack.up.data_dir, stack.up.proc.pid
    before, children = _snapshot(data_dir), stack.up.children()
    pids = await until(lambda: all_ready(stack.nc), timeout=30, what="services ready")

    second = await asyncio.to_thread(subprocess.run, [str(REROUTE), "up", "--data-dir", str(data_dir)], env=_env(),
                                     capture_output=True, text=True, timeout=60, check=False)

    said = " ".join(second.stdout.split())
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"reroute is already running from {data_dir} (pid {first})" in said, said
    assert f"Ctrl-C in its terminal or `kill {first}`" in said
    assert "Nothing was started or changed." in said
    assert _snapshot(data_dir) == before
    assert (data_dir / "up.lock").read_text() == f"{first}\n"
    assert stack.up.children() == children and len(children) == 6  # nats-server, three services, console, notifier
    assert await all_ready(stack.nc) == pids


async def test_a_service_killed_with_sigkill_is_restarted(stack: Stack) -> None:
    old = (await until(lambda: ping(stack.nc, "risk"), timeout=30, what="risk answering"))["pid"]

    os.kill(old, signal.SIGKILL)

    async def new_risk() -> dict[str, Any] | None:
        reply = await ping(stack.nc, "risk")
        return reply if reply is not None and reply["pid"] != old and reply["ready"] else None

    reply = await until(new_risk, timeout=60, what="a new risk process answering ready")
    out = stack.up.output()
    assert reply["live"] and gone(old)
    assert out.count("risk exited with code -9 (SIGKILL); restarting it in 1 s (log ") == 1, out
    await eventually(lambda: f"risk is back (pid {reply['pid']})" in stack.up.output(), timeout=10, what="risk said back")


async def test_nats_server_killed_with_sigkill_is_restarted_and_the_services_reconnect(stack: Stack) -> None:
    url = (stack.up.data_dir / "nats.url").read_text()
    old = stack.up.nats_pid()
    assert old is not None
    pids = await until(lambda: all_ready(stack.nc), timeout=30, what="services ready")

    os.kill(old, signal.SIGKILL)

    async def new_nats() -> int | None:
        pid = stack.up.nats_pid()
        return pid if pid != old else None

    new = await until(new_nats, timeout=30, what="a new nats-server")
    port = url.rsplit(":", 1)[1]
    assert f"-p {port} " in _cmdline(new) and f"-sd {stack.up.data_dir / 'nats'}" in _cmdline(new)
    assert await until(lambda: all_ready(stack.nc), timeout=60, what="services ready again") == pids  # not restarted
    out = stack.up.output()
    assert out.count("nats-server exited with code -9 (SIGKILL); restarting it in ") == 1, out
    assert f"(same port {port}, store and configuration) (log {stack.up.data_dir / 'logs' / 'nats.log'})" in out
    assert (stack.up.data_dir / "nats.url").read_text() == url


async def test_a_hung_service_is_killed_and_restarted(stack: Stack) -> None:
    old = (await until(lambda: ping(stack.nc, "scheduling"), timeout=30, what="scheduling answering"))["pid"]

    os.kill(old, signal.SIGSTOP)  # alive, but answers nothing
    try:
        async def new_scheduling() -> dict[str, Any] | None:
            reply = await ping(stack.nc, "scheduling")
            return reply if reply is not None and reply["pid"] != old and reply["ready"] else None

        await until(new_scheduling, timeout=60, what="a new scheduling process answering ready")
        assert gone(old)
        out = stack.up.output()
        # "... for N s", or "... in N s since NATS answered again" when the previous test's broker restart was
        # still fresh for `reroute up`
        assert out.count(f"scheduling (pid {old}) has not answered its ping ") == 1, out
        assert "stopping it (SIGTERM, SIGKILL after 3 s), then restarting it in 1 s" in out
    finally:
        if not gone(old):
            os.kill(old, signal.SIGCONT)


async def test_sigkill_of_up_takes_its_children_down_and_a_new_up_starts_on_the_same_dir(tmp_path: Path) -> None:
    first = Up.launch(tmp_path / "data")
    second: Up | None = None
    try:
        await first.until_running()
        children = first.children()
        assert sorted(cmd.split()[-1] if " -m " in cmd else "nats-server" for cmd in children.values()) == [
            "apps.console", "apps.notifier", "nats-server", "services.intake", "services.risk", "services.scheduling"], \
            children

        first.proc.kill()
        first.proc.wait(timeout=10)

        await eventually(lambda: all(gone(pid) for pid in children), timeout=15,
                    what=f"the children of a killed `reroute up` to die: {children}")
        second = Up.launch(tmp_path / "data")
        await second.until_running()
        nc = await second.connect()
        try:
            pids = await until(lambda: all_ready(nc), timeout=30, what="services ready")
        finally:
            await nc.close()
        assert not set(pids.values()) & set(children)
        assert (tmp_path / "data" / "up.lock").read_text() == f"{second.proc.pid}\n"
    finally:
        first.stop()
        if second is not None:
            second.stop()
            assert second.proc.returncode == 0, second.output()
            assert "Stopped." in second.output()


async def test_a_data_dir_from_before_the_provisioner_gets_its_password_at_the_next_up_which_provisions_as_it(
    tmp_path: Path,
) -> None:
    """A data dir whose credentials file was written before the `provisioner` user existed gets its password on the
    next `reroute up`, every other password kept; that up provisions the streams as it (the operator may no longer),
    the services get ready, and `reroute streams provision` on the data dir works beside it."""
    data = tmp_path / "data"
    first = Up.launch(data)
    second: Up | None = None
    try:
        await first.until_running()
        first.stop()
        assert first.proc.returncode == 0, first.output()
        path = data / CREDENTIALS_FILE
        earlier = {name: pw for name, pw in json.loads(path.read_text()).items() if name != PROVISIONER}
        path.write_text(json.dumps(earlier))

        second = Up.launch(data)
        await second.until_running()

        now = json.loads(path.read_text())
        assert {name: pw for name, pw in now.items() if name != PROVISIONER} == earlier and now[PROVISIONER]
        nc = await second.connect()
        try:
            await until(lambda: all_ready(nc), timeout=30, what="services ready")
        finally:
            await nc.close()
        again = await asyncio.to_thread(subprocess.run, [str(REROUTE), "streams", "provision", "--data-dir", str(data)],
                                        env=_env(), capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0 and "unchanged" in again.stdout and "updated" not in again.stdout, \
            again.stdout + again.stderr
    finally:
        first.stop()
        if second is not None:
            second.stop()
            assert second.proc.returncode == 0, second.output()


def _hold_lock(path: Path, owner: int) -> subprocess.Popen[str]:
    """Another process holding the lock, as a survivor of a killed `reroute up` would (`owner` the dead up)."""
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, sys.argv[2].encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path), f"{owner}\n"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _refused(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REROUTE), "up", "--data-dir", str(data_dir)], env=_env(), capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_data_dir_still_held_by_survivors_of_a_killed_up_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    dead = _dead_pid()
    holder = _hold_lock(data_dir / "up.lock", dead)
    try:
        refused = _refused(data_dir)
    finally:
        holder.kill()
        holder.wait()

    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{data_dir} is in use by python -c" in said, said
    assert f"(pid {holder.pid}); the `reroute up` that started them (pid {dead}) is gone" in said
    assert f"Stop them (`kill {holder.pid}`), then start again. Nothing was started or changed." in said
    assert sorted(p.name for p in data_dir.iterdir()) == ["up.lock"]


def test_a_nats_server_still_answering_on_the_recorded_port_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    left, url = start_nats_server(tmp_path / "left-store")
    try:
        (data_dir / "nats.url").write_text(url)
        refused = _refused(data_dir)
    finally:
        left.terminate()
        left.wait(timeout=10)

    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"A NATS server still answers at {url}, recorded in {data_dir / 'nats.url'}" in said, said
    assert "Nothing was started or changed." in said
    assert sorted(p.name for p in data_dir.iterdir()) == ["nats.url", "up.lock"]
    assert (data_dir / "up.lock").read_text() == ""


async def test_the_data_dir_and_everything_in_it_are_closed_to_other_users(stack: Stack) -> None:
    """Databases, logs, traces, keys and credentials hold children's data: 0700 directories, no file readable by
    anyone but the user running reroute."""
    await until(lambda: all_ready(stack.nc), timeout=30, what="services ready")
    data_dir = stack.up.data_dir
    assert data_dir.stat().st_mode & 0o777 == 0o700
    exposed = [f"{p.relative_to(data_dir)} {p.stat().st_mode & 0o777:o}" for p in data_dir.rglob("*")
               if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert exposed == [], f"readable or writable by others: {exposed}"
    assert any(p.suffix == ".db" for p in data_dir.iterdir()), "the services' databases were among those checked"


def test_a_port_another_program_holds_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Saved API and feed links must not silently move: a taken fixed port is said, with what to do."""
    data_dir = tmp_path / "data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        refused = subprocess.run([str(REROUTE), "up", "--data-dir", str(data_dir)], capture_output=True, text=True,
                                 env=_env() | {"REROUTE_INTAKE_HTTP_PORT": str(taken)}, timeout=60, check=False)
    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1, said + refused.stderr
    assert f"Port {taken} for the agencies' HTTP API is taken by another program" in said, said
    assert "REROUTE_INTAKE_HTTP_PORT" in said and "auto" in said
    assert not (data_dir / "nats").exists(), "nothing was started"


def test_a_port_setting_that_is_not_a_port_is_refused_naming_it(tmp_path: Path) -> None:
    refused = subprocess.run([str(REROUTE), "up", "--data-dir", str(tmp_path / "data")], capture_output=True,
                             text=True, env=_env() | {"REROUTE_CALENDAR_PORT": "eighty"}, timeout=60, check=False)
    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1 and "REROUTE_CALENDAR_PORT must be a port number 1-65535, 0 (off) or auto" in said


async def test_up_says_where_the_agencies_api_the_feeds_and_the_console_answer_and_makes_no_demo_people(
        tmp_path: Path) -> None:
    """Demo people with one-time passwords exist only under `make run` (`--demo`, tests/e2e/test_demo.py): a plain
    `reroute up` prints the console's address and how to get a log-in, and the only person it makes is the first admin."""
    up = Up.launch(tmp_path / "data")  # its own: the shared stack's services are restarted by other tests
    try:
        await up.until_running()
        said = up.output()
        api = re.search(r"Agencies' HTTP API: (http://127\.0\.0\.1:\d+) \(try-it page \1/docs\)", said)
        feeds = re.search(r"calendar feeds: (http://127\.0\.0\.1:\d+)", said)
        console = re.search(r"Web console: (http://127\.0\.0\.1:\d+) \(log in with your person id and a console "
                            r"password: `reroute people console-password NAME` issues a one-time one\)", said)
        assert api and feeds and console, said
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{api[1]}/openapi.json")).status_code == 200
            assert (await http.get(f"{api[1]}/v1/referrals/ref_0000000000000000")).status_code == 401, \
                "the base the README's curl example takes as REROUTE_API"
            assert (await http.get(f"{feeds[1]}/v1/calendars/not-a-token.ics")).status_code == 404
            login = await http.get(f"{console[1]}/login")
            assert login.status_code == 200 and "Log in to the reroute console" in login.text

        people = await asyncio.to_thread(subprocess.run, [str(REROUTE), "people", "list", "--data-dir",
                                                          str(up.data_dir)], env=_env(), capture_output=True,
                                         text=True, timeout=60, check=False)
        assert people.returncode == 0, people.stdout + people.stderr
        assert [row[0] for row in cli_rows(people.stdout)] == ["admin"], people.stdout  # the first admin `reroute up` makes, nobody else
        assert "Demo log-ins" not in said, said
    finally:
        up.stop()


async def test_the_nats_port_stays_the_same_across_restarts_of_a_data_dir_unless_another_program_takes_it(
    tmp_path: Path,
) -> None:
    """An agency developer's NATS_URL keeps working after `reroute up` is restarted; a port taken meanwhile is
    replaced by a new one, and that is said."""
    data_dir = tmp_path / "data"

    async def one_run() -> tuple[str, str]:
        up = Up.launch(data_dir)
        try:
            await up.until_running()
            return (data_dir / "nats.url").read_text().strip(), up.output()
        finally:
            up.stop()

    first, _ = await one_run()
    again, said = await one_run()
    assert again == first and f"NATS with JetStream on {first} " in said, said
    log = (data_dir / "logs" / "nats.log").read_text()  # a start, and a restart, refuse nobody on the way
    assert "[ERR]" not in log, [line for line in log.splitlines() if "[ERR]" in line]
    port = int(first.rsplit(":", 1)[1])
    with socket.socket() as other:  # another program listens there now
        other.bind(("127.0.0.1", port))
        other.listen()
        moved, said = await one_run()
    new = int(moved.rsplit(":", 1)[1])
    assert new != port
    assert (f"Port {port}, where this data dir's NATS listened before, is taken by another program: NATS listens on "
            f"{new} from now on") in said, said
    assert (await one_run())[0] == moved
