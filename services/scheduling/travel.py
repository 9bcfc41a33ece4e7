"""Travel between a mentor's sessions: a hard rule that leaves a mentor time to get from one venue to the next.

The time is worked out from the venues' boroughs over the map of London in routes.py, by the fewest-boroughs
journey: with nothing avoided for most mentors (any safe route is their own business between sessions); for a rotl
mentor, around their licence's exclusion zones, as their journeys to a venue are (`routes.plan_route`):

- the same venue: no gap needed (the mentor stays in the building);
- another venue in the same borough: `SAME_BOROUGH`;
- another borough: `SAME_BOROUGH` plus `PER_BOROUGH` for each borough boundary the journey crosses
  (Croydon to Lambeth 30 minutes, Croydon to Enfield five boundaries: 90 minutes).

Two venues with no journey between them clear of a rotl mentor's exclusion zones are unreachable from each other:
the mentor cannot hold sessions at both on one London day (a licence brings them back to the establishment by
each day's return time, so their next day's journey starts there again).

Sessions start on :00 or :30, so a 15-minute need takes a half-hour gap in practice. Leave, and sessions stored
without a venue, are not anywhere: they need no travel either side (double-booking rules still apply to them).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from services.scheduling.routes import NEIGHBOURS, plan_route
from services.scheduling.slots import LONDON
from shared.contracts.codes import canonical_borough
from shared.contracts.scheduling import VenueRecord

SAME_BOROUGH = timedelta(minutes=15)  # leaving one venue and reaching another nearby: a short walk or bus ride
PER_BOROUGH = timedelta(minutes=15)  # each borough boundary crossed: about one stretch of a London bus or Tube ride


class Place(NamedTuple):
    """Where a session is held, as the travel rule reads it."""

    venue_id: str
    borough: str  # canonical (`canonical_borough`); "" when it is not a London borough
    name: str  # the venue's name, for a scheduler's message


def place_of(venue: VenueRecord) -> Place:
    return Place(venue.id, canonical_borough(venue.borough) or "", venue.name)


def _hops() -> dict[tuple[str, str], int]:
    """Borough boundaries crossed on the fewest-boroughs journey, for every pair of boroughs (33 × 33)."""
    found: dict[tuple[str, str], int] = {}
    for origin in NEIGHBOURS:
        seen, queue = {origin: 0}, deque([origin])
        while queue:
            here = queue.popleft()
            for there in NEIGHBOURS[here]:
                if there not in seen:
                    seen[there] = seen[here] + 1
                    queue.append(there)
        found.update(((origin, there), hops) for there, hops in seen.items())
    return found


_HOPS = _hops()
# Unknown boroughs (not on the map): as far as any two boroughs are, so no rule is broken by not knowing.
MOST = SAME_BOROUGH + PER_BOROUGH * max(_HOPS.values())


# How far around a session a rotl mentor's itinerary looks: any two sessions on one London day (25 hours long when the
# clocks go back), as far apart as a journey around exclusion zones, or no journey, may leave too little time.
WHOLE_DAY = timedelta(hours=25)


def travel_time(one: Place, other: Place, avoid: frozenset[str] = frozenset()) -> timedelta | None:
    """The least time between a session at `one` ending and a session at `other` starting (either order), on a
    journey that enters no borough in `avoid` (a rotl mentor's exclusion zones, canonical names); None when no
    journey does (unreachable: not on the same London day)."""
    if one.venue_id == other.venue_id:
        return timedelta(0)
    if avoid:
        return _around(one.borough, other.borough, avoid)
    hops = _HOPS.get((one.borough, other.borough))
    return MOST if hops is None else SAME_BOROUGH + PER_BOROUGH * hops


def _around(one: str, other: str, avoid: frozenset[str]) -> timedelta | None:
    """`travel_time` between two boroughs around `avoid`. A journey may set out from a borough to avoid but not enter
    one, so a venue in one is unreachable both ways (the rule is the same either way round)."""
    if one not in NEIGHBOURS or other not in NEIGHBOURS:  # not on the map: as far as any two boroughs are
        return MOST
    route = None if one in avoid else plan_route(one, other, avoid)
    return None if route is None else SAME_BOROUGH + PER_BOROUGH * (len(route) - 1)


Located = tuple[datetime, datetime, Place]  # a session (UTC) and where it is held


class Itinerary:
    """A mentor's sessions with their venues, in order of start: which new session leaves too little travel time.
    `avoid`: a rotl mentor's exclusion zones (canonical borough names), which their journeys go around."""

    __slots__ = ("_avoid", "_ends", "_reach", "_sessions", "_starts")

    def __init__(self, sessions: Iterable[Located] = (), avoid: frozenset[str] = frozenset()) -> None:
        self._sessions = sorted(sessions, key=lambda s: s[0])
        self._starts = [s[0] for s in self._sessions]
        longest = max((end - start for start, end, _ in self._sessions), default=timedelta(0))
        self._ends = longest  # how far before a session's start an earlier one may still end near it
        self._avoid = avoid
        self._reach = WHOLE_DAY if avoid else MOST  # the farthest from a session that another can be too close

    def __bool__(self) -> bool:
        return bool(self._sessions)

    @property
    def avoid(self) -> frozenset[str]:
        return self._avoid

    def near(self, start: datetime, end: datetime) -> list[Located]:
        """The sessions ending less than the farthest journey (`MOST`; a day around exclusion zones) before `start`
        or starting less than that after `end`: the only ones a session from `start` to `end` can be too close to
        (none, for most starts)."""
        sessions, reach = self._sessions, self._reach
        if not sessions:
            return []
        i = bisect_left(self._starts, start - self._ends - reach)
        found: list[Located] = []
        while i < len(sessions) and sessions[i][0] < end + reach:
            if sessions[i][1] > start - reach:
                found.append(sessions[i])
            i += 1
        return found

    def clash(self, start: datetime, end: datetime, place: Place, near: list[Located] | None = None) -> Located | None:
        """The first booked session that leaves too little time to travel between it and a session at `place`
        from `start` to `end` (UTC), or is unreachable from it on the same London day; None when there is time
        enough either side. `near`: `self.near(start, end)`, when already known."""
        for session in self.near(start, end) if near is None else near:
            other_start, other_end, other = session
            need = travel_time(place, other, self._avoid)
            if need is None:
                if other_start.astimezone(LONDON).date() == start.astimezone(LONDON).date():
                    return session
            elif other_start < end + need and start < other_end + need:
                return session
        return None

    def add(self, start: datetime, end: datetime, place: Place) -> Itinerary:
        """This itinerary with one more session (the original is left untouched)."""
        i = bisect_right(self._starts, start)
        added = Itinerary.__new__(Itinerary)
        added._sessions = [*self._sessions[:i], (start, end, place), *self._sessions[i:]]
        added._starts = [*self._starts[:i], start, *self._starts[i:]]
        added._ends = max(self._ends, end - start)
        added._avoid, added._reach = self._avoid, self._reach
        return added


def says(clash: Located, place: Place, start: datetime, avoid: frozenset[str] = frozenset()) -> str:
    """The travel rule a session at `place` from `start` breaks, in a scheduler's words: 'they have a session in
    Croydon until 17:00 and need 90 minutes to reach Enfield'; around exclusion zones (`avoid`) there may be no
    journey at all: 'they have a session in Croydon that day and no journey to Enfield clear of their licence's
    exclusion zones'."""
    other_start, other_end, other = clash
    time_needed = travel_time(place, other, avoid)
    if time_needed is None:
        return (f"they have a session {_at(other, place)} that day and no journey "
                f"{'to' if other_start < start else 'from'} {_where(place, other)} clear of their licence's "
                "exclusion zones")
    need = int(time_needed // timedelta(minutes=1))
    if other_start < start:
        return (f"they have a session {_at(other, place)} until {other_end.astimezone(LONDON):%H:%M} and need "
                f"{need} minutes to reach {_where(place, other)}")
    return (f"they have a session {_at(other, place)} from {other_start.astimezone(LONDON):%H:%M} and need "
            f"{need} minutes to get there from {_where(place, other)}")


def _at(place: Place, other: Place) -> str:
    return f"in {place.borough}" if place.borough != other.borough else f"at {place.name}"


def _where(place: Place, other: Place) -> str:
    return place.borough if place.borough != other.borough else place.name
