"""The end-to-end tests' shared fixtures, beside tests/conftest.py's cluster and probe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.cluster import Cluster, intake_url


@pytest.fixture
async def http(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the cluster's intake HTTP API (give an agency's key with `bearer`)."""
    async with httpx.AsyncClient(base_url=intake_url(cluster), timeout=15) as client:
        yield client
