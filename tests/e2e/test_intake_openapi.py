"""Schemathesis reads intake's OpenAPI document and throws what it allows (and what it forbids) at the running API.

No request may get a 5xx. (Schemathesis's lazy `from_fixture` loader does not run under pytest 9, so the
schema's own Hypothesis strategy is used with `@given`, as its docs describe for non-Schemathesis tests.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.support.cluster import Cluster, Probe, intake_url, register_agency, unique

pytestmark = pytest.mark.e2e


def _agency_key(cluster: Cluster) -> str:
    async def register() -> str:
        probe = await Probe.open(cluster.nats_url, cluster.subjects)
        try:
            return await register_agency(probe, unique("fuzz"))
        finally:
            await probe.close()

    return asyncio.run(register())


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_request_gets_a_server_error(cluster: Cluster, mode: schemathesis.GenerationMode) -> None:
    base_url = intake_url(cluster)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/referrals", "PUT /v1/referrals", "GET /v1/referrals", "GET /v1/referrals/{referral_id}"}
    headers = {"Authorization": f"Bearer {_agency_key(cluster)}"}
    seen: set[int] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=mode))
    def no_server_error(case: Any) -> None:
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=[not_a_server_error])
        seen.add(response.status_code)

    no_server_error()
    assert seen, "requests were made"
    assert all(code < 500 for code in seen)
