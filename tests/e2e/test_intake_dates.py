"""Impossible dates are refused at intake's door (NATS and HTTP) with the rule they break, so they never reach
risk: an indicator observed in year 9999 used to crash the assessment and leave the referral unassessed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster, Probe, intake_url, referral, register_agency, unique
from tests.support.replies import refusal

pytestmark = pytest.mark.e2e

FUTURE_OBSERVATION = {"field": "indicators[2].observed_at",
                      "message": "cannot be in the future: at the latest the day after the referral is received"}
AGE = {"field": "young_person.date_of_birth",
       "message": "the young person must be aged 8 to 25 on the referral date"}


def observed_in_9999(arid: str) -> dict[str, Any]:
    body = referral(arid, language="en")
    body["indicators"] = [*body["indicators"], {"code": "weapon_carrying", "observed_at": "9999-12-31"}]
    return body


async def test_an_indicator_observed_in_year_9999_is_rejected_over_nats_and_the_corrected_one_is_assessed(
    cluster: Cluster, probe: Probe
) -> None:
    agency, arid = unique("yot"), unique("REF")

    await probe.submit(agency, observed_in_9999(arid))

    (rejected,) = await probe.wait_for(cluster.subjects.rejected(agency), lambda e: e["agency_referral_id"] == arid)
    assert rejected["errors"] == [FUTURE_OBSERVATION]
    assert refusal(await probe.rpc("intake", "status", {"agency_id": agency, "agency_referral_id": arid})).code == "not_found"

    corrected = observed_in_9999(arid)
    corrected["indicators"][2]["observed_at"] = "2026-10-01"
    await probe.submit(agency, corrected)
    (accepted,) = await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid)
    await probe.wait_for(cluster.subjects.assessed(agency), lambda e: e["referral_id"] == accepted["referral_id"],
                         timeout=15)


async def test_impossible_dates_get_422_over_http_with_each_rule_and_nothing_is_stored(
    cluster: Cluster, probe: Probe
) -> None:
    agency, arid = unique("yot"), unique("REF")
    key = await register_agency(probe, agency)
    body = observed_in_9999(arid)
    body["young_person"]["date_of_birth"] = "2099-01-01"
    body["consent"]["recorded_at"] = "9999-12-31T23:59:59+00:00"

    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15) as http:
        answer = await http.post("/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid"
    assert {k: answer.json()[k] for k in ("agency_referral_id", "errors")} == {"agency_referral_id": arid, "errors": [
        AGE,
        FUTURE_OBSERVATION,
        {"field": "consent.recorded_at",
         "message": "cannot be in the future: at the latest 5 minutes after the referral is received"},
    ]}
    assert "2099" not in answer.text and "9999" not in answer.text, "no rejected value is echoed back"
    (rejected,) = await probe.wait_for(cluster.subjects.rejected(agency), lambda e: e["agency_referral_id"] == arid)
    assert rejected["errors"] == answer.json()["errors"], "the same errors as referrals.rejected"
    assert refusal(await probe.rpc("intake", "status", {"agency_id": agency, "agency_referral_id": arid})).code == "not_found"
