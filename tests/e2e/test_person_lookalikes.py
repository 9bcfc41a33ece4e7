"""A young person's name spelt with look-alike letters from another script (Cyrillic К, а, е for Latin K, a, e) is
the same young person: recognised as referred again, and erased with the rest of their referrals. And the matching
key can be rotated: after `reroute keys rematch`, intake runs on the new key alone and still knows everyone."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.cli import cli_rows, reroute
from tests.support.cluster import Cluster, Probe, intake_url, ready, referral, register_agency, unique
from tests.support.suite import drop_schemas, make_cluster

pytestmark = pytest.mark.e2e
REPEAT_RULE = "L06_referred_again_within_12_months"
CYRILLIC = str.maketrans("aceopxyKMBHT", "асеорхуКМВНТ")  # each the Cyrillic letter that looks the same
MATCHING_KEY = "REROUTE_INTAKE_MATCHING_KEY"


def family_name() -> str:
    """A family name no other test uses, of letters that all have a Cyrillic look-alike."""
    return "K" + "".join(random.choices("aceopxy", k=9))


def young_person(given: str, family: str, *, agency_referral_id: str | None = None) -> dict[str, Any]:
    body = referral(agency_referral_id or unique("LA"), language="en")
    body["young_person"] |= {"given_name": given, "family_name": family, "date_of_birth": "2010-03-09"}
    return body


async def person_of(probe: Probe, referral_id: str) -> str:
    found = await probe.rpc("intake", "status", {"referral_id": referral_id})
    assert "person_id" in found, found
    person: str = found["person_id"]
    return person


async def repeat_rule_fired(probe: Probe, cluster: Cluster, agency: str, referral_id: str) -> bool:
    assessed = (await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] == referral_id,
                                     timeout=30))[0]
    return any(r["rule_id"] == REPEAT_RULE for r in assessed["likelihood"]["reasons"])


async def post(agency_key: str, cluster: Cluster, body: dict[str, Any]) -> str:
    """Refer through the agencies' HTTP API with the agency's own key; our referral id."""
    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15) as http:
        answer = await http.post("/v1/referrals", json=body, headers={"Authorization": f"Bearer {agency_key}"})
    assert answer.status_code == 202, answer.text
    rid: str = answer.json()["referral_id"]
    return rid


async def test_a_name_spelt_with_look_alike_letters_is_the_same_young_person_for_matching_and_erasure(
    cluster: Cluster, probe: Probe,
) -> None:
    school, police = unique("school"), unique("police")
    school_key, police_key = await register_agency(probe, school), await register_agency(probe, police)
    family = family_name()
    latin = await post(school_key, cluster, young_person("Kwabena", family))
    lookalike = await post(police_key, cluster, young_person("Kwabena".translate(CYRILLIC), family.translate(CYRILLIC)))
    other = await post(police_key, cluster, young_person("Kwame", family))

    assert "Kwabena".translate(CYRILLIC) != "Kwabena" and family.translate(CYRILLIC) != family
    assert await person_of(probe, lookalike) == await person_of(probe, latin)
    assert await person_of(probe, other) != await person_of(probe, latin), "a different name stays another person"
    assert await repeat_rule_fired(probe, cluster, police, lookalike), "scored as referred again"
    assert not await repeat_rule_fired(probe, cluster, police, other)

    # the services' data dir: no console runs here, so the spans are erased from their span files there
    erased = reroute(cluster, cluster.data_dir, "person", "erase", await person_of(probe, latin), "--yes")

    assert erased.returncode == 0, erased.stdout + erased.stderr
    for gone in (latin, lookalike):
        assert (await probe.rpc("intake", "status", {"referral_id": gone}))["error"]["code"] == "not_found"
    assert (await probe.rpc("intake", "status", {"referral_id": other}))["referral_id"] == other


async def test_after_a_new_matching_key_and_rematch_known_young_people_are_still_recognised(
    nats_server: tuple[str, bool], tmp_path: Path
) -> None:
    cluster = await ready(make_cluster(nats_server, tmp_path / "data", "rematch", isolated=True))
    probe = await Probe.open(cluster.nats_url, cluster.subjects)
    try:
        agency, family = unique("yot"), family_name()
        known: dict[str, str] = {}
        for given in ("Kwabena", "Ama", "Kofi"):  # three people, so rematch goes in batches of two
            body = young_person(given, family)
            await probe.submit(agency, body)
            known[given] = await person_of(probe, await accepted(probe, cluster, agency, body["agency_referral_id"]))
        old = (cluster.processes.env.get(MATCHING_KEY)  # configured, or the one intake generated
               or (cluster.data_dir / "intake-matching.key").read_text().strip())
        new = Fernet.generate_key().decode()

        await restart_intake(cluster, **{MATCHING_KEY: f"{new},{old}"})  # step 1: the new key in front
        rematched = reroute(cluster, tmp_path, "keys", "rematch", "--batch", "2")  # step 2
        assert rematched.returncode == 0, rematched.stdout + rematched.stderr
        assert "Every person is stored under the first matching key" in rematched.stdout
        assert [row[:2] for row in cli_rows(rematched.stdout)] == [["3", "3"]], rematched.stdout  # checked, moved
        await restart_intake(cluster, **{MATCHING_KEY: new})  # step 3: the old key dropped

        again = young_person("Kwabena".translate(CYRILLIC), family)
        await probe.submit(agency, again)
        second = await accepted(probe, cluster, agency, again["agency_referral_id"])
        assert await person_of(probe, second) == known["Kwabena"]
        assert await repeat_rule_fired(probe, cluster, agency, second), "the repeat factor still counts"
        again_rematched = reroute(cluster, tmp_path, "keys", "rematch")
        assert [row[:3] for row in cli_rows(again_rematched.stdout)] == [["3", "0", "0"]], \
            again_rematched.stdout  # nothing left to do
    finally:
        await probe.close()
        cluster.processes.stop_all()
        drop_schemas(cluster)


async def accepted(probe: Probe, cluster: Cluster, agency: str, agency_referral_id: str) -> str:
    """Our referral id for the agency's reference, once intake has accepted it."""
    events = await probe.wait_for(cluster.subjects.accepted(agency),
                                  lambda e: e["agency_referral_id"] == agency_referral_id)
    rid: str = events[0]["referral_id"]
    return rid


async def restart_intake(cluster: Cluster, **env: str) -> None:
    cluster.processes.stop("intake")
    cluster.processes.env.update(env)
    cluster.processes.start("intake")
    await cluster.wait_ready(("intake",), timeout=60)

