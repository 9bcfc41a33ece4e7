"""Each service's JetStream permissions cover only its own consumers and streams, and the pipeline runs on them;
`reroute person erase` reaches every stream (issue 11, item 3)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from apps.devstack.local_nats import start_nats_server
from apps.devstack.processes import SERVICES
from shared.nats_auth import (
    admin_user,
    agency_inbox_prefix,
    agency_user,
    hash_password,
    inbox_prefix,
    render_config,
    service_user,
)
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, launch_cluster, mentor, ready, referral, unique, unique_language
from tests.support.stored import raw_held, stored_messages
from tests.support.suite import RUN_ID, drop_schemas

pytestmark = pytest.mark.e2e


@dataclass
class SecuredStack:
    """The three services on a nats-server with users, each service connecting as its own user."""

    cluster: Cluster
    agency: str
    agency_url: str


PASSWORD = "pw-test"


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[SecuredStack]:
    """As `reroute up` runs them: the services' users and permissions from shared/nats_auth.py, an agency user,
    and the operator; bare subjects (the permissions name them), so a nats-server of its own."""
    agency = unique("yot")
    users = [*(service_user(name, hash_password(PASSWORD)) for name in SERVICES), admin_user(hash_password(PASSWORD)),
             agency_user(agency, hash_password(PASSWORD))]
    config = tmp_path / "auth.conf"
    config.write_text(render_config(users))
    proc, url = start_nats_server(tmp_path / "nats", config=config, log_file=tmp_path / "nats.log")
    base = url.removeprefix("nats://")
    per_service = {name: {"NATS_URL": f"nats://{name}:{PASSWORD}@{base}", "REROUTE_INBOX_PREFIX": inbox_prefix(name)}
                   for name in SERVICES}
    cluster = launch_cluster(f"nats://operator:{PASSWORD}@{base}", tmp_path / "data", namespace="",
                             schema_prefix=f"t{RUN_ID}secured{uuid.uuid4().hex[:6]}", per_service=per_service)
    try:
        yield SecuredStack(await ready(cluster), agency, f"nats://agency-{agency}:{PASSWORD}@{base}")
    finally:
        cluster.processes.stop_all()
        drop_schemas(cluster)
        proc.terminate()
        proc.wait(timeout=10)


async def test_the_services_run_on_their_own_jetstream_permissions_and_erasure_reaches_every_stream(
    secured: SecuredStack, tmp_path: Path
) -> None:
    """With each service confined to its own consumers and streams, a referral goes from an agency to a booked
    session; `reroute person erase` then deletes every message the streams hold about that young person (the
    accepted event, the assessment, the sessions), and nothing about another young person."""
    cluster, agency = secured.cluster, secured.agency
    s, lang = cluster.subjects, unique_language()
    probe = await Probe.open(cluster.nats_url, s)
    client = await nats.connect(secured.agency_url, inbox_prefix=agency_inbox_prefix(agency).encode())
    try:
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        erased, kept = unique("ERASE"), unique("KEEP")
        for arid, given in ((erased, "Zephyrine"), (kept, "Ottoline")):
            body = referral(arid, language=lang)
            body["young_person"]["given_name"] = given
            ack = await client.jetstream().publish(s.submitted(agency), json.dumps(body).encode(),
                                                   headers={"Nats-Msg-Id": uuid.uuid4().hex})
            assert ack.stream == s.submissions_stream
        accepted = {e["agency_referral_id"]: e for e in await probe.wait_for(s.accepted(agency), count=2)}
        rid, person, other = accepted[erased]["referral_id"], accepted[erased]["person_id"], accepted[kept]["referral_id"]
        await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] in (rid, other), count=2, timeout=20)

        js = probe.nc.jetstream()

        async def naming(referral_id: str, agency_referral_id: str) -> list[str]:
            """The streams holding a message about this referral."""
            found = []
            for stream, subject in s.agency_events(agency):
                for _, e in await stored_messages(js, stream, subject):
                    if e.get("referral_id") == referral_id or e.get("agency_referral_id") == agency_referral_id:
                        found.append(stream)
            return sorted(found)

        before = await naming(rid, erased)
        assert before == sorted([s.referrals_stream, s.risk_stream, s.sessions_stream]), before
        done = await asyncio.to_thread(reroute, cluster, tmp_path, "person", "erase", person, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert await naming(rid, erased) == [], "every stored message about the erased young person is gone"
        assert await naming(other, kept) == before, "another young person's messages are untouched"
        assert await raw_held(js, s, agency) == 0
        logs = "".join(cluster.processes.log_file(n).read_text(errors="replace") for n in SERVICES)
        assert "permissions violation" not in logs.lower(), "no service was refused anything it needs"
    finally:
        await client.close()
        await probe.close()
