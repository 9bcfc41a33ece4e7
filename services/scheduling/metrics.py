"""Scheduling's own gauges: how many referrals wait for a mentor, and for how long, by tier; the disengagement
alerts it raised that nobody has acknowledged yet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from services.scheduling import store
from services.scheduling.tables import AlertRow
from shared.alerts import unacknowledged_samples
from shared.metrics import Sample, age


def waitlist_samples(conn: Connection, now: datetime) -> list[Sample]:
    samples: list[Sample] = []
    for tier, count, oldest in store.waitlist_by_tier(conn):
        samples += [Sample("waitlist_size", count, {"tier": tier}),
                    Sample("waitlist_oldest_age", age(oldest, now), {"tier": tier})]
    return samples


def safeguarding_samples(conn: Connection, now: datetime) -> list[Sample]:
    return unacknowledged_samples(conn, AlertRow, now=now)
