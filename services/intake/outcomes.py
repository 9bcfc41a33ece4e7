"""Each agency's durable consumers of its own outcomes, which intake makes and keeps: an agency offline when its
outcome is published reads it when it comes back, from where it left off.

The agency cannot make them itself: a consumer's deliver subject is where the server publishes for it, and no
permission can confine a field of the request body, so an agency allowed to make its own could have the server
publish onto another agency's subjects. Intake makes them with a fixed configuration, filtered to the agency's
own subjects and delivering into the agency's own inbox namespace (shared/subjects.py, `agency_outcomes`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.intake.agencies import AgencyRegistry
from shared.service import ServiceHost
from shared.subjects import AgencyOutcomes, Subjects

log = logging.getLogger(__name__)

ACK_WAIT_SECONDS = 30
"""An outcome the agency's client has not acknowledged within this is delivered again."""
MAX_ACK_PENDING = 1000
"""At most this many outcomes delivered and not yet acknowledged; the rest wait on the server."""


def consumer_config(outcomes: AgencyOutcomes) -> ConsumerConfig:
    """Everything from the stream's start (it keeps 30 days), acknowledged one by one."""
    return ConsumerConfig(name=outcomes.durable, durable_name=outcomes.durable, filter_subject=outcomes.filter_subject,
                          deliver_subject=outcomes.deliver_subject, deliver_policy=DeliverPolicy.ALL,
                          ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS, max_ack_pending=MAX_ACK_PENDING,
                          description="an agency's own outcomes, kept while it is offline (made by intake)")


async def keep_outcome_consumers(js: JetStreamContext, subjects: Subjects, agency_ids: Iterable[str]) -> int:
    """Make (or bring back to this configuration) the durable consumers of these agencies; how many it made or
    updated. Creating one that exists as configured changes nothing, so it is safe to repeat."""
    done = 0
    for agency_id in agency_ids:
        for outcomes in subjects.agency_outcomes(agency_id):
            await js.add_consumer(outcomes.stream, consumer_config(outcomes))
            done += 1
    return done


async def keep_for_agencies(host: ServiceHost, agency_ids: Iterable[str]) -> None:
    """`keep_outcome_consumers` on the service's connection; a failure is logged, not raised: the periodic round
    (`keep_for_active_agencies`) makes what is missing once NATS answers again."""
    try:
        await keep_outcome_consumers(host.broker.connection.jetstream(), host.subjects, agency_ids)
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning("could not make agencies' outcome consumers yet (%s); the next round tries again",
                    type(exc).__name__)


async def keep_for_active_agencies(host: ServiceHost, agencies: AgencyRegistry) -> None:
    """Every active agency's consumers: as intake starts (an install upgraded to this version), then now and then."""
    active = await host.database.run(agencies.nats_credentials)
    await keep_for_agencies(host, [a.agency_id for a in active])
