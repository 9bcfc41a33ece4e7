"""Session lifecycle and cadence rules. Pure: no I/O, no clock (`now` is passed in)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from shared.contracts.codes import Tier
from shared.contracts.scheduling import CaseStatus, SessionStatus

# Sessions that will take place unless something changes: they hold the mentor's time and a room.
LIVE: frozenset[SessionStatus] = frozenset({SessionStatus.BOOKED, SessionStatus.CONFIRMED})
# Sessions a cancellation, a closure or rescheduling can still take away: live, or held while the young person is
# missing.
CANCELLABLE: frozenset[SessionStatus] = LIVE | {SessionStatus.SUSPENDED}
# Sessions that took place or did not: the attendance record.
OUTCOMES: frozenset[SessionStatus] = frozenset({SessionStatus.ATTENDED, SessionStatus.MISSED})
# Sessions that hold a room at their venue, or held one: a borough's rooms taken (booking counts the live ones).
HOLDING_A_ROOM: frozenset[SessionStatus] = LIVE | OUTCOMES
# Cases that hold a place in their mentor's caseload.
HOLDING_A_PLACE: frozenset[CaseStatus] = frozenset({CaseStatus.SCHEDULED, CaseStatus.SUSPENDED})

Action = Literal["confirm", "cancel", "attended", "missed"]
ACTIONS: dict[Action, tuple[frozenset[SessionStatus], SessionStatus]] = {
    "confirm": (frozenset({SessionStatus.BOOKED}), SessionStatus.CONFIRMED),
    "cancel": (CANCELLABLE, SessionStatus.CANCELLED),
    "attended": (LIVE, SessionStatus.ATTENDED),
    "missed": (LIVE, SessionStatus.MISSED),
}
MISSES_IN_A_ROW = 3
MISSING = "E05_missing"
DISENGAGEMENT = "E12_disengagement_with_rising_risk"
_BY_RANK = sorted(Tier, key=lambda t: t.rank)


class LifecycleRefused(ValueError):
    """A session change that is not possible; the message says why."""


def transition(status: str, action: Action, *, start: datetime, now: datetime) -> SessionStatus:
    """The session's new status after `action`, or LifecycleRefused."""
    allowed, target = ACTIONS[action]
    if status not in allowed:
        article = "an" if status[0] in "aeiou" else "a"
        raise LifecycleRefused(f"{article} {status} session cannot be marked {target}")
    if action in ("attended", "missed") and start > now:
        raise LifecycleRefused(f"the session starts {start.isoformat()}: record attendance once it has started")
    if action == "confirm" and start <= now:
        raise LifecycleRefused("the session has already started; record whether it was attended or missed")
    return target


def after_misses(outcomes: Sequence[str], wellbeing: Tier | None) -> Literal["escalate", "close"] | None:
    """After the latest attendance outcome: three misses in a row escalate when wellbeing is high or above
    (disengagement with rising risk), and otherwise close the case; None while engagement continues."""
    recent = list(outcomes)[-MISSES_IN_A_ROW:]
    if len(recent) < MISSES_IN_A_ROW or any(o != SessionStatus.MISSED for o in recent):
        return None
    return "escalate" if wellbeing is not None and wellbeing.rank >= Tier.HIGH.rank else "close"


def cadence_after(cadence: Tier, assessed: Tier, lower_reviews: int) -> tuple[Tier, int]:
    """The cadence tier and count of consecutive lower reviews after a new assessment.

    A higher tier takes effect at once; the cadence steps down one level only after two consecutive reviews at
    a lower tier (domain brief §6(e) step_down).
    """
    if assessed.rank > cadence.rank:
        return assessed, 0
    if assessed.rank == cadence.rank:
        return cadence, 0
    if lower_reviews + 1 >= 2:
        return _BY_RANK[cadence.rank - 1], 0
    return cadence, lower_reviews + 1
