"""A rejection names each field and the rule it breaks, never the value given, through both of an agency's doors
(`referrals.rejected` and the HTTP API's 422): a name typed in the wrong field is not stored or sent back."""

from __future__ import annotations

import httpx
import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, register_agency, unique

pytestmark = pytest.mark.e2e


async def test_a_rejection_names_each_field_and_rule_but_never_the_value_given(
    cluster: Cluster, probe: Probe, http: httpx.AsyncClient
) -> None:
    name, agency = "Zebedee Quartermaine", unique("police")
    body = referral("Zebedee Quartermaine", language="en", index_offence=name, indicators=[name],
                    protective_factors=["engaged_in_education", name], preferences={"mentor_gender": name},
                    availability=[{"day": name, "start": name, "end": "10:00"}])
    body["young_person"].update(date_of_birth=name, gender=name, borough=name, languages=[name])
    body["referrer"]["email"] = name

    await probe.submit(agency, body)
    rejected = (await probe.wait_for(cluster.subjects.rejected(agency)))[0]
    key = await register_agency(probe, agency)
    refused = await http.post("/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"})

    assert refused.status_code == 422
    for answer in (rejected, refused.json()):
        errors = {e["field"]: e["message"] for e in answer["errors"]}
        assert set(errors) >= {
            "agency_referral_id", "young_person.date_of_birth", "young_person.gender", "young_person.borough",
            "young_person.languages[0]", "index_offence", "indicators[0].code", "protective_factors",
            "preferences.mentor_gender", "availability[0].day", "availability[0].start", "referrer.email"}, errors
        for word in ("zebedee", "quartermaine"):
            assert word not in repr(answer).casefold(), answer
        assert answer["agency_referral_id"] is None, "not an id the contract allows: not echoed either"
        assert errors["young_person.gender"] == "must be 'female', 'male', 'non_binary' or 'not_stated'"
        assert errors["young_person.date_of_birth"] == "not a date in YYYY-MM-DD form"
        assert errors["protective_factors"].startswith("unknown protective factor code at [1]")
        assert "'any'" in errors["preferences.mentor_gender"]


@pytest.mark.parametrize("hidden", ["\u202e", "\x1b]8;;http://evil.example\x1b\\", "\n", "\u2066"])
async def test_a_name_with_control_or_bidi_characters_is_refused_naming_the_field(
    cluster: Cluster, probe: Probe, hidden: str
) -> None:
    """A name that reads differently from what is stored (a bidi override) or plants a terminal link is refused at
    the door; so is a mentor's in a mentor file."""
    agency = unique("police")
    body = referral(unique("BIDI"), language="en")
    body["young_person"]["given_name"] = f"Ama{hidden}ran"
    body["referrer"]["name"] = f"PC {hidden}Smith"
    await probe.submit(agency, body)
    rejected = (await probe.wait_for(cluster.subjects.rejected(agency)))[0]
    errors = {e["field"]: e["message"] for e in rejected["errors"]}
    assert set(errors) == {"young_person.given_name", "referrer.name"}, errors
    assert all("control characters" in m and hidden not in m for m in errors.values())

    imported = await probe.rpc("scheduling", "mentors.import", {"mentors": [
        {**mentor(unique("m"), language="en"), "name": f"Jo{hidden}e"}]})
    assert imported["imported"] == 0 and [e["field"] for e in imported["errors"]] == ["name"]
