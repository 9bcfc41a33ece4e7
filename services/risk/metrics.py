"""Risk's own gauges: safeguarding alerts no practitioner has acted on yet, by agency and whether overdue.

An alert counts as acknowledged once a practitioner has reviewed the referral's tier since it was raised (an
override or confirmation recorded with `reroute override`, which names who decided): until then someone must still
take it up, and past its deadline that is urgent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, exists, func, select
from sqlmodel import col

from services.risk.tables import AlertRecord, AssessmentRecord, RiskCase
from shared.metrics import Sample


def safeguarding_samples(conn: Connection, now: datetime) -> list[Sample]:
    reviewed = exists().where(and_(col(AssessmentRecord.referral_id) == col(AlertRecord.referral_id),
                                   col(AssessmentRecord.cause) == "override",
                                   col(AssessmentRecord.assessed_at) >= col(AlertRecord.raised_at)))
    overdue = col(AlertRecord.deadline) < now
    rows = conn.execute(
        select(col(RiskCase.agency_id), overdue, reviewed, func.count())
        .join(RiskCase, col(RiskCase.referral_id) == col(AlertRecord.referral_id))
        .group_by(col(RiskCase.agency_id), overdue, reviewed))
    counts: dict[tuple[str, bool], int] = {}
    for agency, late, done, count in rows:  # every agency with an alert is reported, 0 once all are acted on
        key = (agency, bool(late))
        counts[key] = counts.get(key, 0) + (0 if done else count)
    agencies = {agency for agency, _ in counts}
    return [Sample("safeguarding_alerts_unacknowledged", counts.get((agency, late), 0),
                   {"agency": agency, "overdue": str(late).lower()})
            for agency in sorted(agencies) for late in (False, True)]
