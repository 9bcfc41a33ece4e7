"""Rooms at venues: which safe venue holds each session, so no room is ever double-booked and the mentor has time
to travel there from their session before and on to the next (`travel.py`)."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from datetime import datetime

from services.scheduling.constraints import SafeVenue
from services.scheduling.slots import SESSION, to_utc
from services.scheduling.travel import Itinerary

Interval = tuple[datetime, datetime]
Placed = tuple[Interval, SafeVenue | None]  # None only when no venue applies at all


class Rooms:
    """The sessions held at each venue (by venue id), and the placing of new ones."""

    def __init__(self, held: dict[str, list[Interval]] | None = None) -> None:
        self._held: dict[str, list[Interval]] = {}  # per venue, (start, end) in UTC, in order
        self._longest = SESSION
        for venue_id, intervals in (held or {}).items():
            for start, end in intervals:
                self.hold(venue_id, start, end)

    def hold(self, venue_id: str, start: datetime, end: datetime) -> None:
        """Take a room at the venue for [start, end)."""
        start, end = to_utc(start), to_utc(end)
        insort(self._held.setdefault(venue_id, []), (start, end))
        self._longest = max(self._longest, end - start)

    def release(self, venue_id: str | None, start: datetime, end: datetime) -> None:
        """Free the room a cancelled or moved session held (nothing when it held none)."""
        held = self._held.get(venue_id or "")
        if held and (to_utc(start), to_utc(end)) in held:
            held.remove((to_utc(start), to_utc(end)))

    def in_use(self, venue_id: str, start: datetime, end: datetime) -> int:
        """How many sessions the venue holds that overlap [start, end)."""
        held = self._held.get(venue_id)
        if not held:
            return 0
        start, end = to_utc(start), to_utc(end)
        count, i = 0, bisect_left(held, (end,)) - 1  # the last session starting before `end`
        earliest = start - self._longest
        while i >= 0 and held[i][0] > earliest:
            count += held[i][1] > start
            i -= 1
        return count

    def _has_room(self, fit: SafeVenue, start: datetime, end: datetime) -> bool:
        return self.in_use(fit.venue.id, start, end) < fit.venue.rooms

    def room_free(self, venues: Sequence[SafeVenue], itinerary: Itinerary | None = None) -> Callable[[datetime], bool]:
        """Whether one of these venues has a room free for a session starting then (and, given the mentor's
        `itinerary`, one they can reach in time from their session before and leave in time for the next)."""
        return venue_free(venues, itinerary, self)

    def place(self, venues: Sequence[SafeVenue], sessions: Sequence[Interval],
              itinerary: Itinerary | None = None) -> list[Placed]:
        """Each session at the first (best) venue with a free room (and, given the mentor's `itinerary`, within
        travel of their other sessions and of those placed before it here), which it then holds; a session no
        venue has room for is dropped."""
        return place(venues, sessions, itinerary, self)


def place(venues: Sequence[SafeVenue], sessions: Sequence[Interval], itinerary: Itinerary | None,
          rooms: Rooms | None = None) -> list[Placed]:
    """`Rooms.place`, with rooms in view only given `rooms` (without, the first venue within travel: the batch
    round's plan, which leaves rooms to its booking)."""
    placed: list[Placed] = []
    for start, end in sessions:
        fit = reachable(venues, start, end, itinerary, rooms)
        if fit is None and venues:
            continue
        if fit is not None:
            if rooms is not None:
                rooms.hold(fit.venue.id, start, end)
            if itinerary is not None:
                itinerary = itinerary.add(to_utc(start), to_utc(end), fit.place)
        placed.append(((start, end), fit))
    return placed


def venue_free(venues: Sequence[SafeVenue], itinerary: Itinerary | None,
               rooms: Rooms | None) -> Callable[[datetime], bool]:
    """Whether a session starting then can be held at one of the venues (`reachable`); always, with no venues."""
    if rooms is not None and not itinerary:  # no session at a known venue: rooms alone
        def with_room(start: datetime) -> bool:
            return not venues or any(rooms._has_room(f, start, start + SESSION) for f in venues)
        return with_room

    def free(start: datetime) -> bool:
        return not venues or reachable(venues, start, start + SESSION, itinerary, rooms) is not None
    return free


def reachable(venues: Sequence[SafeVenue], start: datetime, end: datetime, itinerary: Itinerary | None,
              rooms: Rooms | None = None) -> SafeVenue | None:
    """The first (best) of the venues with a room free from `start` to `end` (given `rooms`; else any) that the
    mentor can reach from their session before and leave in time for the next (given their `itinerary`)."""
    near = itinerary.near(to_utc(start), to_utc(end)) if itinerary else None
    for fit in venues:
        if rooms is not None and not rooms._has_room(fit, start, end):
            continue
        if near and itinerary is not None and itinerary.clash(to_utc(start), to_utc(end), fit.place, near):
            continue
        return fit
    return None
