"""The Kubernetes manifests' pods, run by Docker the way a kubelet would run them (README, "Operate → Kubernetes").

There is no Kubernetes cluster on these machines, but there is a Docker engine in CI: each container of the rendered
base is started from its own spec — the image (CI's build of deploy/Dockerfile), command, the environment as the
kubelet builds it (the ConfigMap through envFrom, Secrets from deploy/k8s/create-secrets.example.sh, the pod's name,
`$(VAR)` references expanded), its user, a read-only root filesystem, every capability dropped, no privilege
escalation, emptyDirs as tmpfs, Secret volumes as read-only files and the NATS nodes' volume claims as volumes — on a
bridge network of the test's own, where the Services' and the headless Service's names are network aliases. So:
the three NATS nodes form their cluster (their startup probe command says healthy), the migrate Job's command
migrates PostgreSQL (Debian's, with deploy/postgres's roles) and makes R3 streams, and each service's `/readyz`
answers 200 through its ops port published on 127.0.0.1. One replica of each service, to spare the machine.

Needs a Docker engine and the images `make images` builds (REROUTE_K8S_TEST_IMAGE names another app image); without
them the test is skipped, naming what is missing, and with REROUTE_REQUIRE_DOCKER=1 (CI's Docker stage) that fails.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_k8s import K8S, ROOT, SERVICES, config, kubectl, one, render
from tests.support.waiting import wait_until_sync

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

APP_IMAGE = os.environ.get("REROUTE_K8S_TEST_IMAGE", "reroute-ci/app:local")
POSTGRES_IMAGE = os.environ.get("REROUTE_K8S_TEST_POSTGRES_IMAGE", "reroute-ci/postgres:15")


def _docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} … failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def missing_docker() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=30, check=False)
    if info.returncode != 0:
        return f"no Docker engine answers ({(info.stderr or info.stdout).strip()[:200]})"
    absent = [i for i in (APP_IMAGE, POSTGRES_IMAGE)
              if subprocess.run(["docker", "image", "inspect", i], capture_output=True, check=False).returncode]
    return f"images not built: {', '.join(absent)} (make images)" if absent else None


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a variable defined before is replaced, anything else is left as written."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


@dataclass
class Pods:
    """A test run's network, containers and volumes, all named after it and removed at the end."""

    run: str
    work: Path
    settings: dict[str, str]
    secrets: dict[tuple[str, str], bytes]
    network: str = ""
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def environment(self, spec: dict[str, Any], pod: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in spec.get("envFrom", []):
            assert source["configMapRef"]["name"].startswith("reroute-config")
            env.update(self.settings)
        for e in spec.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif ref := e["valueFrom"].get("secretKeyRef"):
                env[e["name"]] = self.secrets[(ref["name"], ref["key"])].decode()
            else:
                assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
                env[e["name"]] = pod
        return env

    def start(self, template: dict[str, Any], pod: str, *, aliases: list[str], publish: tuple[int, ...] = (),
              claims: dict[str, str] | None = None, detach: bool = True) -> str:
        """Run the pod's one container as its spec says; returns the container's name."""
        spec = template["spec"]
        (c,) = spec["containers"]
        pod_security, security = spec["securityContext"], c["securityContext"]
        name = f"{self.run}-{pod}"
        env_file = self.work / f"{pod}.env"
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.environment(c, pod).items()))
        args = ["run", "--name", name, "--network", self.network, "--label", f"org.reroute.test.k8s={self.run}",
                "--env-file", str(env_file), "--user", f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}",
                "--security-opt", "no-new-privileges"]
        assert pod_security["runAsNonRoot"] and pod_security["runAsUser"] != 0
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
        args += ["--cap-drop", "ALL"]
        if security["readOnlyRootFilesystem"]:
            args.append("--read-only")
        for alias in aliases:
            args += ["--network-alias", alias]
        for port in publish:
            args += ["-p", f"127.0.0.1::{port}"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in c.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:  # a StatefulSet's volume claim: a Docker volume of the run's own
                assert claims is not None and mount["name"] in claims
                args += ["-v", f"{claims[mount['name']]}:{mount['mountPath']}"]
            elif "emptyDir" in volume:
                uid, gid = pod_security["runAsUser"], pod_security["fsGroup"]
                args += ["--tmpfs", f"{mount['mountPath']}:rw,uid={uid},gid={gid},mode=0770"]
            else:
                args += ["-v", f"{self.secret_files(volume['secret'], pod)}:{mount['mountPath']}:ro"]
        command = c["command"]
        args += ["-d"] if detach else []
        args += ["--entrypoint", command[0], APP_IMAGE, *command[1:]]
        self.containers.append(name)
        _docker(*args, timeout=300 if not detach else 120, check=detach)
        return name

    def secret_files(self, secret: dict[str, Any], pod: str) -> Path:
        """A Secret volume: its keys (or the listed items) as files only the pod's user can read."""
        directory = self.work / f"{pod}-{secret['secretName']}"
        directory.mkdir(exist_ok=True)
        keys = [i["key"] for i in secret.get("items", [])] or [k for (s, k) in self.secrets if s == secret["secretName"]]
        for key in keys:
            path = directory / key
            path.write_bytes(self.secrets[(secret["secretName"], key)])
            if os.geteuid() == 0:  # as the kubelet does with fsGroup: the pod's group may read, no one else
                os.chown(path, 0, 65534)
                path.chmod(0o440)
            else:
                path.chmod(0o444)
        directory.chmod(0o755)
        return directory

    def published(self, container: str, port: int) -> int:
        return int(_docker("port", container, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1])

    def logs(self, container: str) -> str:
        done = subprocess.run(["docker", "logs", "--tail", "30", container], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
        return done.stdout.strip()


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Pods]:
    problem = missing_docker()
    if problem:
        if os.environ.get("REROUTE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"REROUTE_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
        pytest.skip(f"the Kubernetes pods were not run on Docker: {problem}")
    rendered = render("base")
    printed = subprocess.run([str(K8S / "create-secrets.example.sh"), "--print"], capture_output=True, text=True,
                             env={**os.environ, "KUBECTL": str(kubectl()), "PYTHON": sys.executable,
                                  "NAMESPACE": "reroute"}, cwd=ROOT, timeout=120, check=True)
    secrets = {(s["metadata"]["name"], k): base64.b64decode(v)
               for s in yaml.safe_load_all(printed.stdout) if s for k, v in s["data"].items()}
    run = f"reroute-k8s-{uuid.uuid4().hex[:8]}"
    p = Pods(run, tmp_path, config(rendered), secrets, network=run)
    _docker("network", "create", "--label", f"org.reroute.test.k8s={run}", run)
    try:
        yield p
    finally:
        for name in p.containers:
            print(f"--- {name}\n{p.logs(name)}")  # shown when the test failed
        if p.containers:
            _docker("rm", "-f", "-v", *p.containers, check=False, timeout=120)
        for volume in p.volumes:
            _docker("volume", "rm", "-f", volume, check=False)
        _docker("network", "rm", p.network, check=False)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_the_manifests_pods_run_read_only_as_non_root_and_become_ready(pods: Pods) -> None:
    rendered = render("base")
    secret = pods.secrets
    postgres = f"{pods.run}-postgres"
    pods.containers.append(postgres)
    _docker("run", "-d", "--name", postgres, "--network", pods.network, "--network-alias", "postgres",
            "--label", f"org.reroute.test.k8s={pods.run}", "-e", f"POSTGRES_PASSWORD={uuid.uuid4().hex}",
            "-e", "POSTGRES_DB=reroute",
            *(a for role in ("owner", "intake", "risk", "scheduling")
              for a in ("-e", f"REROUTE_DB_{role.upper()}_PASSWORD={secret[('reroute-postgres', f'{role}-password')].decode()}")),
            "-v", f"{ROOT / 'deploy' / 'postgres'}:/docker-entrypoint-initdb.d:ro", POSTGRES_IMAGE)

    nats_set = one(rendered, "StatefulSet", "nats")
    nodes = []
    for i in range(nats_set["spec"]["replicas"]):
        volume = f"{pods.run}-data-nats-{i}"
        pods.volumes.append(_docker("volume", "create", "--label", f"org.reroute.test.k8s={pods.run}", volume))
        nodes.append(pods.start(nats_set["spec"]["template"], f"nats-{i}", claims={"data": volume},
                                aliases=["nats", f"nats-{i}.{nats_set['spec']['serviceName']}"]))
    startup = nats_set["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["exec"]["command"]

    def nats_healthy() -> bool:
        return all(subprocess.run(["docker", "exec", n, *startup], capture_output=True, timeout=30,
                                  check=False).returncode == 0 for n in nodes)

    wait_until_sync(nats_healthy, timeout=180, every=1,
                    what=lambda: f"the NATS nodes' startup probe: {pods.logs(nodes[0])}")
    wait_until_sync(lambda: _docker("exec", postgres, "pg_isready", "-h", "127.0.0.1", "-U", "postgres", check=False)
                    .endswith("accepting connections"), timeout=120, every=1, what="PostgreSQL")

    job = one(rendered, "Job", "reroute-migrate")["spec"]["template"]
    migrate = pods.start(job, "migrate", aliases=[], detach=False)
    assert _docker("inspect", "-f", "{{.State.ExitCode}}", migrate) == "0", f"the Job failed: {pods.logs(migrate)}"
    assert re.search(r"REFERRALS\s.*\b3\b", pods.logs(migrate)), "streams made with 3 replicas"

    started = {}
    for name in SERVICES:
        template = one(rendered, "Deployment", name)["spec"]["template"]
        probe = template["spec"]["containers"][0]["readinessProbe"]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        container = pods.start(template, f"{name}-0", aliases=[name], publish=(ports[probe["port"]],))
        started[name] = (container, pods.published(container, ports[probe["port"]]), probe["path"])

    def until_ready(name: str, container: str, url: str) -> None:
        wait_until_sync(lambda: http_status(url) == 200, timeout=180, every=1,
                        what=lambda: f"{name}'s readiness probe: {pods.logs(container)}")

    for name, (container, port, path) in started.items():
        until_ready(name, container, f"http://127.0.0.1:{port}{path}")
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200, name
        # /var/tmp is anyone's to write to, but not on a read-only root
        assert "Read-only file system" in _docker("exec", container, "sh", "-c", "touch /var/tmp/x 2>&1 || true",
                                                  check=False), f"{name}'s root is read-only"
        assert _docker("exec", container, "id", "-u") == "65534", name
