"""The NATS services API under the real permissions: each service may answer $SRV.PING/INFO/STATS as its own user,
the operator may ask, and an agency may not (it would learn which services run and how they are)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import nats
import pytest

from apps.devstack.local_nats import start_nats_server
from shared.contracts.rpc import Health
from shared.nats_auth import admin_user, agency_inbox_prefix, agency_user, hash_password, render_config, service_user
from shared.ops import micro_name, register
from tests.support.waiting import wait_until

PASSWORD = "pw-test"
SERVICES = ("intake", "risk", "scheduling")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("nats-srv")
    users = [*(service_user(s, hash_password(PASSWORD)) for s in SERVICES), admin_user(hash_password(PASSWORD)),
             agency_user("yot-srv", hash_password(PASSWORD))]
    conf = store / "auth.conf"
    conf.write_text(render_config(users))
    proc, url = start_nats_server(store / "js", config=conf)
    yield url.removeprefix("nats://")
    proc.terminate()
    proc.wait(timeout=10)


async def test_each_service_answers_the_services_api_for_the_operator_and_not_for_an_agency(server: str) -> None:
    violations: list[str] = []

    async def error(exc: Exception) -> None:
        violations.append(str(exc))

    services = {s: await nats.connect(f"nats://{s}:{PASSWORD}@{server}", error_cb=error) for s in SERVICES}
    operator = await nats.connect(f"nats://operator:{PASSWORD}@{server}")
    agency_errors: list[str] = []

    async def agency_error(exc: Exception) -> None:
        agency_errors.append(str(exc))

    agency = await nats.connect(f"nats://agency-yot-srv:{PASSWORD}@{server}", error_cb=agency_error,
                                inbox_prefix=agency_inbox_prefix("yot-srv").encode())
    try:
        for s, nc in services.items():
            await register(nc, service=s, namespace="", health=lambda s=s: Health(  # type: ignore[misc]
                service=s, pid=1, live=True, ready=True, problems=[]))
            await nc.flush()
        for s in SERVICES:
            reply = json.loads((await operator.request(f"$SRV.INFO.{micro_name(s, '')}", b"", timeout=5)).data)
            assert (reply["name"], reply["metadata"]["ready"]) == (micro_name(s, ""), "true")
        assert violations == [], "a service was refused the services API"
        with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.errors.Error)):
            await agency.request("$SRV.PING", b"", timeout=2)
        await agency.flush()
        await wait_until(lambda: any('permissions violation for publish to "$srv.ping"' in e.lower()
                                     for e in agency_errors), timeout=5, every=0.05,
                         what=lambda: f"the agency refused $SRV.PING (errors: {agency_errors})")
    finally:
        for nc in (*services.values(), operator, agency):
            await nc.close()
