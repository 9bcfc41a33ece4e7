"""Test helpers: a real NATS server, the three services as processes, and a plain nats-py probe."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from apps.devstack.processes import SERVICES, ServiceProcesses
from shared.migrations import upgrade_all
from shared.settings import ServiceSettings
from shared.streams import provision_at
from shared.subjects import Subjects
from shared.telemetry import StoredSpan, read_spans
from tests.support.waiting import wait_until

_languages = (f"{a}{b}" for a, b in itertools.product("xqzjkvwybcdfghlmnprst", "abcdefghijklmnopqrstuvwxyz")
              if f"{a}{b}" != "en")


def unique_language() -> str:
    """A two-letter language code no other test uses, so tests sharing the services never share mentors."""
    return next(_languages)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Cluster:
    """The three services running as OS processes against one NATS server and one data dir."""

    nats_url: str
    namespace: str
    data_dir: Path
    processes: ServiceProcesses
    http_urls: dict[str, str] = field(default_factory=dict)
    """Where each service serves HTTP, as it said when it last became ready (its ports are `auto`)."""
    provisioner_url: str | None = None
    """Who provisions the streams, on a server with users (the provisioner); None: `nats_url`."""

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.namespace)

    @property
    def calendar_url(self) -> str:
        return self.http_url("scheduling")

    def log_sizes(self) -> dict[str, int]:
        """How far each service's log has been written: `complaints(since=...)` reads on from there."""
        return {log.name: log.stat().st_size for log in (self.data_dir / "logs").glob("*.log")}

    def complaints(self, *, since: dict[str, int] | None = None, last: int = 10) -> str:
        """The last `last` warnings and errors (each with its traceback) in each service's log, from `since` on:
        shown beside a failed test, since a service's "try again in a minute" does not say what its log says."""
        out = []
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            with log.open("rb") as f:
                f.seek((since or {}).get(log.name, 0))
                text = f.read().decode(errors="replace")
            records = _complaints(text.splitlines())
            if records:
                out.append(f"--- {log.name}\n" + "\n".join(records[-last:]))
        return "\n".join(out)

    def http_url(self, service: str) -> str:
        """Base URL of a service's HTTP API in this cluster."""
        if service not in self.http_urls:
            raise AssertionError(f"{service} has no HTTP API here, or the cluster is not ready: await ready(cluster)")
        return self.http_urls[service]

    async def wait_ready(self, names: tuple[str, ...] = SERVICES, *, timeout: float = 60) -> None:
        """Wait until the named services answer their ping as ready (after a start or a restart), and learn
        where each serves HTTP."""
        pings = await self.processes.wait_ready(self.nats_url, self.subjects, names, timeout=timeout)
        for name, ping in pings.items():
            if ping.http_url:
                self.http_urls[name] = ping.http_url
            else:
                self.http_urls.pop(name, None)

    def spans(self) -> list[StoredSpan]:
        return list(read_spans(self.data_dir))


def launch_cluster(nats_url: str, data_dir: Path, *, namespace: str, schema_prefix: str,
                   per_service: dict[str, dict[str, str]] | None = None, provisioner_url: str | None = None) -> Cluster:
    """Start the three service processes; await `ready(cluster)` before using them. `per_service`: environment of
    one service only (on a server with users, each service's own NATS_URL, as `reroute up` gives them);
    `provisioner_url`: the user `ready` provisions the streams as, when not `nats_url`'s."""
    env = {
        "NATS_URL": nats_url,
        "REROUTE_DATA_DIR": str(data_dir),
        "REROUTE_NAMESPACE": namespace,
        "REROUTE_DB_SCHEMA_PREFIX": schema_prefix,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # scheduling's settings do not take `auto` yet (and its feed URLs are built from the setting)
        "REROUTE_CALENDAR_PORT": "auto",
        "REROUTE_LOG_LEVEL": "INFO",
        "REROUTE_INTAKE_HTTP_PORT": "auto",  # bound by the service itself: no port chosen here that it could lose
    }
    if os.environ.get("DATABASE_URL"):  # outside the embedded default intake needs its keys configured
        from cryptography.fernet import Fernet

        env["REROUTE_INTAKE_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
        env["REROUTE_INTAKE_MATCHING_KEY"] = Fernet.generate_key().decode()
    procs = ServiceProcesses(env, log_dir=data_dir / "logs", per_service=per_service)
    procs.env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    upgrade_all(ServiceSettings(data_dir=data_dir, namespace=namespace, db_schema_prefix=schema_prefix,
                                DATABASE_URL=os.environ.get("DATABASE_URL")))  # type: ignore[call-arg]  # as `reroute up`
    procs.start_all()
    return Cluster(nats_url, namespace, data_dir, procs, provisioner_url=provisioner_url)


async def ready(cluster: Cluster) -> Cluster:
    """Provision the streams (as `reroute up` does), then wait until all three services answer; on failure stop
    them and show their logs."""
    try:
        await provision_at([cluster.provisioner_url or cluster.nats_url], cluster.subjects, replicas=1)
        await cluster.wait_ready(timeout=60)
    except BaseException:
        cluster.processes.stop_all()
        for log in sorted((cluster.data_dir / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    return cluster


@dataclass
class Probe:
    """An outside observer with plain nats-py: publishes as an agency and records every event it sees."""

    nc: Client
    subjects: Subjects
    events: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    @classmethod
    async def open(cls, nats_url: str, subjects: Subjects) -> Probe:
        nc = await nats.connect(nats_url)
        probe = cls(nc, subjects)
        prefix = f"{subjects.namespace}." if subjects.namespace else ""
        for pattern in ("referrals.accepted.*", "referrals.rejected.*", "referrals.withdrawn.*", "intake.recorded.*",
                        "intake.withdrawn.*", "risk.assessed.*", "safeguarding.alert.*", "sessions.*.*"):
            await nc.subscribe(prefix + pattern, cb=probe._record)
        return probe

    async def _record(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
        except ValueError:
            return
        self.events.append((msg.subject, body, dict(msg.headers or {})))

    async def submit(self, agency: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.nc.jetstream().publish(self.subjects.submitted(agency), data, headers=headers)

    async def withdraw(self, agency: str, agency_referral_id: str, reason: str = "consent_withdrawn",
                       **more: Any) -> None:
        """Publish an agency's withdrawal of one of its referrals, as the agency does."""
        body = {"agency_referral_id": agency_referral_id, "reason": reason, **more}
        await self.nc.jetstream().publish(self.subjects.withdraw(agency), json.dumps(body).encode())

    async def rpc(self, service: str, verb: str, payload: dict[str, Any], *, timeout: float = 10) -> dict[str, Any]:
        reply = await self.nc.request(self.subjects.rpc(service, verb), json.dumps(payload).encode(), timeout=timeout)
        result: dict[str, Any] = json.loads(reply.data)
        return result

    def matching(self, subject: str, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
        return [body for subj, body, _ in self.events if subj == subject and where(body)]

    async def wait_for(self, subject: str, where: Callable[[dict[str, Any]], bool] = lambda _: True, *,
                       count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        """The events on `subject` that match `where`, once there are at least `count` of them."""
        await wait_until(lambda: len(self.matching(subject, where)) >= count, timeout=timeout, every=0.02,
                         what=lambda: f"{count} event(s) on {subject} (got {len(self.matching(subject, where))}; "
                                      f"subjects seen: {sorted({s for s, _, _ in self.events})})")
        return self.matching(subject, where)

    async def stored_count(self, subject: str) -> int:
        """How many messages the stream holds on `subject`: every one a consumer gets, repeats included."""
        js = self.nc.jetstream()
        info = await js.stream_info(await js.find_stream_name_by_subject(subject), subjects_filter=subject)
        return (info.state.subjects or {}).get(subject, 0)

    async def wait_processed(self, subject: str, *, by: list[str], timeout: float = 15) -> None:
        """Wait until the durable consumers `by` have acked every message the stream holds on `subject` so far
        (their ack floors have passed the last one). A consumer publishes the events a batch caused before it
        acks the batch, so whatever those messages caused is stored by then too."""
        js = self.nc.jetstream()
        stream = await js.find_stream_name_by_subject(subject)
        last = (await js.get_last_msg(stream, subject)).seq or 0
        floors: dict[str, int] = {}

        async def passed() -> bool:
            for durable in by:
                floor = (await js.consumer_info(stream, durable)).ack_floor
                floors[durable] = floor.stream_seq if floor is not None else 0
            return all(f >= last for f in floors.values())

        await wait_until(passed, timeout=timeout, every=0.05,
                         what=lambda: f"{', '.join(by)} acking {subject} up to #{last} (ack floors: {floors})")

    async def close(self) -> None:
        await self.nc.close()


def referral(agency_referral_id: str, *, language: str, borough: str = "Hackney", **overrides: Any) -> dict[str, Any]:
    """A valid referral body (fictional person)."""
    body: dict[str, Any] = {
        "agency_referral_id": agency_referral_id,
        "referrer": {"name": "Test Referrer", "role": "YOT case manager", "email": "referrer@example.org"},
        "young_person": {
            "given_name": "Jordan",
            "family_name": "Testperson",
            "date_of_birth": "2010-05-17",
            "gender": "male",
            "borough": borough,
            "languages": [language],
        },
        "consent": {"given": True, "recorded_at": "2026-11-20T10:00:00+00:00"},
        "reason": "Worried about older associates and knife carrying.",
        "indicators": ["peers_offending", "unstructured_time"],
    }
    body.update(overrides)
    return body


def mentor(mentor_id: str, *, language: str, borough: str = "Hackney", max_caseload: int = 10,
           kind: str = "staff", **overrides: Any) -> dict[str, Any]:
    """A mentor available every day 08:00–20:00."""
    body: dict[str, Any] = {
        "id": mentor_id,
        "name": f"Mentor {mentor_id}",
        "kind": kind,
        "boroughs": [borough],
        "languages": [language],
        "gender": "male",
        "max_caseload": max_caseload,
        "availability": [{"day": d, "start": "08:00", "end": "20:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")],
        "vetting": {"enhanced_check_expires": "2030-12-31"},  # in force: without one a mentor takes no case
    }
    body.update(overrides)
    return body


def env_flag(name: str) -> bool:
    return bool(os.environ.get(name))


def intake_url(cluster: Cluster) -> str:
    """Base URL of the cluster's intake HTTP API."""
    return cluster.http_url("intake")


def bearer(key: str) -> dict[str, str]:
    """The headers that give an agency's API key to intake's HTTP API."""
    return {"Authorization": f"Bearer {key}"}


async def register_agency(probe: Probe, agency_id: str, name: str = "Test agency") -> str:
    """Register an agency with intake and return its API key."""
    reply = await probe.rpc("intake", "agencies.add", {"agency_id": agency_id, "name": name})
    assert "api_key" in reply, reply
    key: str = reply["api_key"]
    return key


def service_engine(cluster: Cluster, service: str) -> Any:
    """A SQLAlchemy engine on a service's own database in this cluster (SQLite file or PostgreSQL schema)."""
    from shared.db import make_engine
    from shared.settings import ServiceSettings

    settings = ServiceSettings(data_dir=cluster.data_dir, namespace=cluster.namespace,
                               db_schema_prefix=cluster.processes.env["REROUTE_DB_SCHEMA_PREFIX"])
    return make_engine(service, settings)


def fresh_language() -> str:
    """The same as `unique_language` (one pool, large enough for the whole suite)."""
    return unique_language()


_LOUD = ("WARNING", "ERROR", "CRITICAL")


def _complaints(lines: list[str]) -> list[str]:
    """Each warning or error of a log, plain or JSON (`REROUTE_LOG_FORMAT`), with the traceback below it."""
    records: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                current = None
                if entry.get("level") in _LOUD:
                    records.append(f"{entry.get('time')} {entry.get('level')} {entry.get('logger')}: "
                                   f"{entry.get('message')}" + (f"\n{entry['exception']}" if entry.get("exception") else ""))
                continue
        if line[:4].isdigit():  # a plain record: "2026-12-07 05:00:01,123 LEVEL service logger: message"
            level = line.split(" ", 3)[2] if line.count(" ") >= 3 else ""
            current = [line] if level in _LOUD else None
            if current is not None:
                records.append(line)
        elif current is not None:  # a traceback's line, under the record it belongs to
            records[-1] += "\n" + line
    return records

