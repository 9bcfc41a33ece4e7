"""Rooms at venues: which safe venue holds each session, so no room is ever double-booked."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from datetime import datetime

from services.scheduling.constraints import SafeVenue
from services.scheduling.slots import SESSION, to_utc

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

    def room_free(self, venues: Sequence[SafeVenue]) -> Callable[[datetime], bool]:
        """Whether one of these venues has a room free for a session starting then."""
        def free(start: datetime) -> bool:
            return not venues or any(self._has_room(f, start, start + SESSION) for f in venues)
        return free

    def place(self, venues: Sequence[SafeVenue], sessions: Sequence[Interval]) -> list[Placed]:
        """Each session at the first (best) venue with a free room, which it then holds; a session no venue has
        room for is dropped."""
        placed: list[Placed] = []
        for start, end in sessions:
            fit = next((f for f in venues if self._has_room(f, start, end)), None)
            if fit is None and venues:
                continue
            if fit is not None:
                self.hold(fit.venue.id, start, end)
            placed.append(((start, end), fit))
        return placed
