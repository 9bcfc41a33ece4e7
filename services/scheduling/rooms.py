"""Rooms at venues: which safe venue holds each session, so no room is ever double-booked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.scheduling.constraints import SafeVenue

Interval = tuple[datetime, datetime]
Placed = tuple[Interval, SafeVenue | None]  # None only when no venue applies at all


class Rooms:
    """The sessions already held at each venue (by venue id), and the placing of new ones."""

    def __init__(self, held: dict[str, list[Interval]] | None = None) -> None:
        self._held: dict[str, list[Interval]] = held if held is not None else {}

    def in_use(self, venue_id: str, start: datetime, end: datetime) -> int:
        return sum(1 for s, e in self._held.get(venue_id, ()) if s < end and start < e)

    def place(self, venues: Sequence[SafeVenue], sessions: Sequence[Interval]) -> list[Placed]:
        """Each session at the first (best) venue with a free room, which it then holds; a session no venue has
        room for is dropped."""
        placed: list[Placed] = []
        for start, end in sessions:
            fit = next((f for f in venues if self.in_use(f.venue.id, start, end) < f.venue.rooms), None)
            if fit is None and venues:
                continue
            if fit is not None:
                self._held.setdefault(fit.venue.id, []).append((start, end))
            placed.append(((start, end), fit))
        return placed
