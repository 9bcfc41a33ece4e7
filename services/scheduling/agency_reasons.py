"""What a referring agency is told about its referral's sessions, and what stays with schedulers. Pure.

An agency reads `sessions.waitlisted`, `sessions.rescheduled` and `sessions.cancelled` and its status view: those say
what happened and what happens next, never a mentor's vetting or licence status (nor which mentor it concerns), a
mentor's conflict register or licence conditions, an operator's name or an operator's own note. The full reason
stays in the case row (`reason`), where `reroute status`, `reroute waitlist` and `reroute recommend` show it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from services.scheduling.constraints import Case, Rule, gender_label
from shared.contracts.scheduling import CaseStatus


@dataclass(frozen=True)
class Reason:
    """Why, twice: in full for schedulers (kept in the case row), and as the referring agency is told it."""

    detail: str
    agency: str

    @classmethod
    def shared(cls, text: str) -> Reason:
        """A reason about the young person or their tier, which their agency may read as it stands."""
        return cls(text, text)

    def then(self, more: Reason) -> Reason:
        return Reason(f"{self.detail}; {more.detail}", f"{self.agency}; {more.agency}")


MENTOR_UNAVAILABLE = "the mentor is no longer available"
NEW_MENTOR = "a new mentor takes over"
CLOSED = "closed by the service; its remaining sessions are cancelled"
CHOSEN = "the service chose another mentor for the young person"
REPLANNED = "the service re-planned its mentors' caseloads: another mentor lets more young people be placed"
KEEPS_LOOKING = "the service keeps looking and books the first session as soon as a mentor fits"


def withdrawn(agency_id: str, reason: str) -> Reason:
    """A case closed because its agency withdrew the referral: the agency's own coded reason, which it may read."""
    words = reason.replace("_", " ")
    return Reason(f"withdrawn by the referring agency ({agency_id}): {words}",
                  f"withdrawn by your agency ({words}): its remaining sessions are cancelled")


def on_leave(cancelled: int) -> str:
    """The agency's reason for sessions moved round the mentor's leave (the dates stay with schedulers)."""
    tail = f"; {cancelled} could not be moved within a week and are cancelled" if cancelled else ""
    return "the mentor is on leave: sessions move to another time that week" + tail


def no_mentor_yet(*why: str) -> str:
    """'no mentor available yet (caseloads are full; none covers Hackney): the service keeps looking …'."""
    return "no mentor available yet" + (f" ({'; '.join(why)})" if why else "") + f": {KEEPS_LOOKING}"


def waiting(case: Case, counts: Counter[Rule], *, horizon_days: int) -> str:
    """The agency's waitlist reason: what is missing by neutral category, most common first; the counts, and
    which rule ruled out which mentor, stay with schedulers (`constraints.summarise`)."""
    safety = "none passes the safety checks for the young person's areas and groups"
    category: dict[Rule, str] = {
        "borough": f"none covers {case.borough}",
        "language": "none shares a language with the young person",
        "capacity": "caseloads are full",
        "points": "caseloads are full",
        "tier": f"none takes {case.tier.value.replace('_', ' ')} tier cases",
        "gender": f"none is {gender_label(case.mentor_gender)} as requested",
        "venue": "no safe venue or safe route to one",
        # a rotl mentor's exclusion zones, a mentor's conflict register, an expired check or a suspended
        # licence say something about a mentor: never told apart
        "exclusion_zone": safety,
        "conflict": safety,
        "vetting": "none available at present",
        "licence": "none available at present",
        "no_slot": f"none has a free slot in the next {horizon_days} days",
    }
    order = list(category)
    said: list[str] = []
    for rule, _ in sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0]))):
        if category[rule] not in said:
            said.append(category[rule])
    return no_mentor_yet(*said)


NO_MENTOR_YET = no_mentor_yet()


def stored_before(status: CaseStatus) -> str | None:
    """The agency's reason for a case whose reasons were stored before agencies were told them apart: by its
    status alone, never the stored detail."""
    return {CaseStatus.WAITLISTED: NO_MENTOR_YET, CaseStatus.CLOSED: CLOSED,
            CaseStatus.SUSPENDED: "sessions are suspended"}.get(status)
