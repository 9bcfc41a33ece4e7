"""Risk's own gauges: safeguarding alerts nobody has acknowledged yet, by agency and whether overdue.

An alert counts as acknowledged once a person has recorded that they took it up (`reroute alerts ack`, which names
them): until then someone must still take it up, and past its deadline that is urgent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from services.risk.tables import AlertRecord
from shared.alerts import unacknowledged_samples
from shared.metrics import Sample


def safeguarding_samples(conn: Connection, now: datetime) -> list[Sample]:
    return unacknowledged_samples(conn, AlertRecord, now=now)
