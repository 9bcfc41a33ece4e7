"""`reroute submit`: publish referrals as an agency would, then follow each one to its outcome."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg

from apps.cli.client import NoAnswer, ServiceClient
from apps.cli.referral_files import ReferralRow
from shared.contracts.risk_rpc import ASSESSMENT, AssessmentRequest
from shared.contracts.rpc import unless_not_found
from shared.contracts.scheduling_rpc import STATUS, ReferralRequest
from shared.server_replies import is_server_reply


@dataclass
class Outcome:
    row: int
    agency_referral_id: str | None
    referral_id: str | None = None
    rejected: list[dict[str, str]] = field(default_factory=list)
    duplicate: bool = False
    tier: str | None = None
    status: str | None = None
    mentor_id: str | None = None
    first_session: datetime | None = None
    deadline_met: bool | None = None
    reason: str | None = None
    sent: bool = True  # False: the row could not be read, so it was never published

    @property
    def finished(self) -> bool:
        return bool(self.rejected) or self.status in {"scheduled", "waitlisted"}


def count(outcomes: list[Outcome]) -> dict[str, int]:
    """The closing counts: a re-run after an interruption shows what was sent before as duplicates."""
    return {
        "accepted": sum(1 for o in outcomes if o.referral_id and not o.duplicate),
        "duplicates": sum(1 for o in outcomes if o.duplicate),
        "rejected": sum(1 for o in outcomes if o.rejected),
        "unanswered": sum(1 for o in outcomes if o.sent and not o.referral_id and not o.rejected),
    }


def _arid(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("agency_referral_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def submit(client: ServiceClient, rows: list[ReferralRow], agency: str, *, timeout: float = 30,
                 on_progress: Any = None, update: bool = False) -> list[Outcome]:
    """Publish every readable row on referrals.submitted.<agency>; wait for intake's answers and the final outcomes.

    Rows that could not be read come back rejected with their problems, unsent."""
    s = client.subjects
    outcomes = [
        Outcome(row=r.number, agency_referral_id=_arid(r.body)) if r.body is not None
        else Outcome(row=r.number, agency_referral_id=r.agency_referral_id, rejected=list(r.problems), sent=False)
        for r in rows
    ]
    bodies = [r.body for r in rows if r.body is not None]
    to_answer = sum(1 for o in outcomes if o.sent)
    by_arid: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if not o.sent:
            continue
        if o.agency_referral_id:
            by_arid.setdefault(o.agency_referral_id, []).append(o)
    unidentified = [o for o in outcomes if o.sent and o.agency_referral_id is None]
    answered: set[int] = set()
    heard = asyncio.Event()

    async def on_answer(msg: Msg) -> None:
        if is_server_reply(msg.data):  # the server's answer, aimed here as a reply subject: no one's outcome
            return
        event = json.loads(msg.data)
        arid = event.get("agency_referral_id")
        candidates = by_arid.get(arid, []) if arid else unidentified
        target = next((o for o in candidates if o.row not in answered), None)
        if target is None:
            return
        answered.add(target.row)
        if msg.subject == s.accepted(agency):
            target.referral_id, target.duplicate = event["referral_id"], event["duplicate"]
        else:
            target.rejected = event["errors"]
        if on_progress:
            on_progress("answered", target)
        heard.set()

    sub_ok = await client.nc.subscribe(s.accepted(agency), cb=on_answer)
    sub_no = await client.nc.subscribe(s.rejected(agency), cb=on_answer)
    js = client.nc.jetstream()
    try:
        for body in bodies:
            await js.publish(s.updated(agency) if update else s.submitted(agency), body)
            if on_progress:
                on_progress("published", None)
        deadline = time.monotonic() + timeout
        while len(answered) < to_answer and time.monotonic() < deadline:
            heard.clear()
            try:
                await asyncio.wait_for(heard.wait(), timeout=0.5)
            except TimeoutError:
                pass
    finally:
        await sub_ok.unsubscribe()
        await sub_no.unsubscribe()
    await follow(client, [o for o in outcomes if o.referral_id], timeout=max(1.0, deadline - time.monotonic()),
                 on_progress=on_progress)
    return outcomes


async def follow(client: ServiceClient, outcomes: list[Outcome], *, timeout: float, on_progress: Any = None) -> None:
    """Poll risk and scheduling until each referral is scheduled or waitlisted, or the time runs out.

    A poll a busy service does not answer in time is asked again while time remains; only when the time is up with
    a referral still unfollowed because a service never answered is that said (`NoAnswer`), rather than shown as not
    yet placed."""
    deadline = time.monotonic() + timeout
    pending = [o for o in outcomes if not o.finished]
    unanswered: NoAnswer | None = None
    while pending and time.monotonic() < deadline:
        unanswered = None
        for o in pending:
            try:
                await fill_status(client, o, timeout=min(5.0, max(1.0, deadline - time.monotonic())))
            except NoAnswer as exc:
                unanswered = exc
                break
            if o.finished and on_progress:
                on_progress("finished", o)
        pending = [o for o in pending if not o.finished]
        if pending:
            await asyncio.sleep(0.3)
    if pending and unanswered is not None:
        raise unanswered


async def fill_status(client: ServiceClient, o: Outcome, *, timeout: float = 5) -> None:
    """The referral's tier and where scheduling has it. Scheduling is asked first: it acts only on an assessment risk
    has stored, so once scheduling knows the referral its tier can be read (asked the other way round, the referral
    could be assessed and placed between the two questions, and be shown placed with no tier)."""
    assert o.referral_id
    sched = await unless_not_found(client.call(STATUS, ReferralRequest(referral_id=o.referral_id), timeout=timeout))
    assessed = await unless_not_found(client.call(ASSESSMENT, AssessmentRequest(referral_id=o.referral_id),
                                                  timeout=timeout))
    if assessed is not None:
        o.tier = assessed.assessment.tier
    if sched is None:
        return
    o.status = sched.status
    o.mentor_id = sched.mentor_id
    o.deadline_met = sched.deadline_met
    o.reason = sched.reason
    o.first_session = sched.sessions[0].start if sched.sessions else None
