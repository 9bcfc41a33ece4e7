"""Intake's HTTP API under abuse, end to end: guessed keys are cheap and limited per client address (read from
X-Forwarded-For only behind a trusted proxy), old key hashes keep working and are upgraded, and the Host header the
caller writes is not reflected into a reply."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services.intake.settings import IntakeSettings
from services.intake.tables import AgencyRecord
from tests.support.cluster import (
    Cluster,
    Probe,
    bearer,
    intake_url,
    referral,
    register_agency,
    service_engine,
    unique,
)
from tests.support.suite import make_cluster, running

pytestmark = pytest.mark.e2e

BUDGET = IntakeSettings.model_fields["intake_auth_failures_per_minute"].default


def loopback_address() -> str:
    """A loopback address of the test's own (all of 127/8 reaches this machine), so that no other test's failed
    attempts count against it."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


@asynccontextmanager
async def client_at(base_url: str, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests come from `address`."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=15) as client:
        yield client


def wrong_key(agency: str) -> str:
    return f"rr1.{agency}.{'A' * 43}"


async def test_many_wrong_keys_from_one_address_get_429_while_an_agency_elsewhere_is_served(
    cluster: Cluster, probe: Probe
) -> None:
    agency = unique("yot")
    key = await register_agency(probe, agency)
    attacker, elsewhere = loopback_address(), loopback_address()
    async with client_at(intake_url(cluster), attacker) as guessing, client_at(intake_url(cluster), elsewhere) as real:
        answers = [await guessing.post("/v1/referrals", json=referral(unique("NOPE"), language="en"),
                                       headers={**bearer(wrong_key(agency)), "X-Forwarded-For": f"198.51.100.{i}"})
                   for i in range(BUDGET + 5)]
        served = await real.post("/v1/referrals", json=referral(unique("OK"), language="en"), headers=bearer(key))
        right_key_from_the_attackers_address = await guessing.post(
            "/v1/referrals", json=referral(unique("OK"), language="en"), headers=bearer(key))

    codes = [a.status_code for a in answers]
    assert codes == [401] * BUDGET + [429] * 5, "X-Forwarded-For is not believed without a trusted proxy"
    limited = answers[-1]
    assert int(limited.headers["retry-after"]) >= 1
    assert "too many failed API key attempts" in limited.json()["detail"]
    assert served.status_code == 202, served.text
    assert right_key_from_the_attackers_address.status_code == 202, "a right key is served whatever its address did"
    assert await probe.stored_count(cluster.subjects.accepted(agency)) == 2, "nothing stored for the wrong keys"


async def test_a_key_kept_under_the_old_scrypt_hash_still_works_and_is_then_kept_as_the_fast_hash(
    cluster: Cluster, probe: Probe
) -> None:
    agency = unique("yot")
    key = await register_agency(probe, agency)
    salt = bytes(range(16))
    old_hash = hashlib.scrypt(key.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()  # as keys were first kept
    engine = service_engine(cluster, "intake")
    try:
        with engine.begin() as conn:
            conn.execute(update(AgencyRecord).where(AgencyRecord.agency_id == agency)  # type: ignore[arg-type]
                         .values(key_salt=salt.hex(), key_hash=old_hash))
        async with client_at(intake_url(cluster), loopback_address()) as http:
            wrong = await http.post("/v1/referrals", json=referral(unique("NOPE"), language="en"),
                                    headers=bearer(key[:-1] + ("B" if key[-1] == "A" else "A")))
            first = await http.post("/v1/referrals", json=referral(unique("OLD"), language="en"), headers=bearer(key))
            with engine.connect() as conn:
                stored = conn.execute(select(AgencyRecord.key_hash).where(  # type: ignore[call-overload]
                    AgencyRecord.agency_id == agency)).scalar_one()
            again = await http.post("/v1/referrals", json=referral(unique("NEW"), language="en"), headers=bearer(key))
    finally:
        engine.dispose()

    assert wrong.status_code == 401
    assert first.status_code == 202, first.text
    assert stored == f"hmac-sha256:{hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()}"
    assert again.status_code == 202, again.text


async def test_a_forged_host_header_is_not_reflected_in_the_reply(cluster: Cluster, probe: Probe) -> None:
    key = await register_agency(probe, unique("yot"))
    forged = {"Host": "evil.example.org", "X-Forwarded-Host": "evil.example.org", "X-Forwarded-Proto": "https"}
    async with client_at(intake_url(cluster), loopback_address()) as http:
        answer = await http.post("/v1/referrals", json=referral(unique("REF"), language="en"),
                                 headers={**bearer(key), **forged})

        assert answer.status_code == 202, answer.text
        rid = answer.json()["referral_id"]
        assert answer.json()["status_url"] == f"/v1/referrals/{rid}", "a path, unless a public URL is configured"
        assert answer.headers["location"] == f"/v1/referrals/{rid}"
        assert "evil" not in answer.text and not [v for v in answer.headers.values() if "evil" in v]
        assert (await http.get(answer.json()["status_url"], headers=bearer(key))).status_code == 200


@pytest.fixture(scope="module")
def proxied_cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of their own behind a (pretended) reverse proxy at 127.0.0.1 with a public URL, and a small
    budget of failed attempts."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REROUTE_INTAKE_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
        env.setenv("REROUTE_INTAKE_PUBLIC_URL", "https://api.example.org/reroute/")
        env.setenv("REROUTE_INTAKE_AUTH_FAILURES_PER_MINUTE", "3")
        c = make_cluster(nats_server, Path(tmp_path_factory.mktemp("reroute-proxied")), "prox", isolated=True)
    with running(c):
        yield c


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(proxied_cluster: Cluster) -> None:
    c = proxied_cluster
    probe = await Probe.open(c.nats_url, c.subjects)
    try:
        agency = unique("yot")
        key = await register_agency(probe, agency)

        async def post(http: httpx.AsyncClient, key: str, forwarded: str | None) -> httpx.Response:
            headers: dict[str, Any] = bearer(key) | ({"X-Forwarded-For": forwarded} if forwarded else {})
            return await http.post("/v1/referrals", json=referral(unique("R"), language="en"), headers=headers)

        async with client_at(intake_url(c)) as proxy, client_at(intake_url(c), loopback_address()) as direct:
            # the client is the nearest address that is not a trusted proxy; what it wrote further left is ignored
            attacker = [await post(proxy, wrong_key(agency), f"{i}.{i}.{i}.{i}, 203.0.113.7, 10.1.2.3")
                        for i in range(1, 6)]
            other_client = await post(proxy, wrong_key(agency), "198.51.100.9")
            agency_via_proxy = await post(proxy, key, "192.0.2.44")
            untrusted = [await post(direct, wrong_key(agency), f"192.0.2.{i}") for i in range(1, 6)]

        assert [a.status_code for a in attacker] == [401, 401, 401, 429, 429]
        assert other_client.status_code == 401, "another forwarded client has a budget of its own"
        assert agency_via_proxy.status_code == 202, agency_via_proxy.text
        assert agency_via_proxy.json()["status_url"] == (
            f"https://api.example.org/reroute/v1/referrals/{agency_via_proxy.json()['referral_id']}")
        assert [a.status_code for a in untrusted] == [401, 401, 401, 429, 429], "a peer that is no proxy of ours " \
            "is counted by its own address, whatever it forwards"
    finally:
        await probe.close()
