"""`reroute submit --timeout T` follows each referral to its outcome by asking scheduling and risk, on a real
nats-server. A service too busy to answer one question in time (a loaded machine: seen in CI, where risk took over
5 s once) is asked again while the person's time remains; only a service that never answers is said to, at the end."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from apps.cli.client import NoAnswer, ServiceClient
from apps.cli.submit import Outcome, follow
from shared.contracts.rpc import NotFound
from shared.contracts.scheduling import CaseStatus
from shared.contracts.scheduling_rpc import SchedulingStatus
from shared.subjects import Subjects


@dataclass
class Services:
    """Scheduling knows the referral as waitlisted; risk leaves its first `silent` questions unanswered."""

    silent: int
    asked_risk: list[float] = field(default_factory=list)

    async def status(self, msg: Msg) -> None:
        reply = SchedulingStatus(status=CaseStatus.WAITLISTED, tier=None, mentor_id=None, mentor_first_name=None,
                                 deadline_met=None, reason="no mentor covers the borough", sessions=[])
        await msg.respond(reply.model_dump_json().encode())

    async def assessment(self, msg: Msg) -> None:
        self.asked_risk.append(time.monotonic())
        if len(self.asked_risk) > self.silent:
            await msg.respond(NotFound("no assessment yet").reply().model_dump_json().encode())


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def _answering(nc: Client, services: Services) -> Subjects:
    subjects = Subjects(f"follow{uuid.uuid4().hex[:8]}")
    await nc.subscribe(subjects.rpc("scheduling", "status"), cb=services.status)
    await nc.subscribe(subjects.rpc("risk", "assessment"), cb=services.assessment)
    await nc.flush()
    return subjects


async def test_a_question_a_busy_service_leaves_unanswered_is_asked_again_within_the_time_given(nc: Client) -> None:
    services = Services(silent=1)
    client = ServiceClient(nc, await _answering(nc, services), "test")
    outcome = Outcome(row=1, agency_referral_id="A-1", referral_id="ref_follow")

    await follow(client, [outcome], timeout=8)

    assert len(services.asked_risk) == 2
    assert outcome.finished and outcome.status == "waitlisted"
    assert outcome.reason == "no mentor covers the borough"


async def test_a_service_that_never_answers_is_named_when_the_time_given_is_up(nc: Client) -> None:
    services = Services(silent=1_000)
    client = ServiceClient(nc, await _answering(nc, services), "test")
    outcome = Outcome(row=1, agency_referral_id="A-1", referral_id="ref_follow")

    with pytest.raises(NoAnswer, match="The risk service did not answer within 2 s"):  # the time left, not 5 s
        await follow(client, [outcome], timeout=2)

    assert not outcome.finished and services.asked_risk
