"""Session times: one-hour sessions starting on :00 or :30, Europe/London wall-clock time.

Instants are handled in UTC inside this module (aware datetimes that share a tzinfo compare by wall clock,
which is wrong across a clock change); rules about the time of day read the London wall clock.
"""

from __future__ import annotations

import copyreg
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

from shared.contracts.codes import WEEKDAYS, Weekday
from shared.contracts.common import WeeklyWindow, parse_hhmm
from shared.contracts.scheduling import MentorRecord

LONDON = ZoneInfo("Europe/London")
SESSION = timedelta(minutes=60)
STEP = timedelta(minutes=30)
NOTICE = timedelta(hours=2)
RETURN_BUFFER = timedelta(minutes=60)
_SESSION_MINUTES, _STEP_MINUTES = SESSION // timedelta(minutes=1), STEP // timedelta(minutes=1)

Interval = tuple[datetime, datetime]
Slot = tuple[datetime, Weekday, time, time]  # a start (UTC), its London weekday, and its wall-clock start and end


def to_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(f"{instant.isoformat()} has no time zone")
    return instant.astimezone(UTC)


def earliest_start(now: datetime) -> datetime:
    """`now` rounded up to the next :00 or :30, plus two hours' notice (UTC)."""
    # London's offsets are whole hours, so UTC half-hours are London half-hours.
    utc = to_utc(now)
    floor = utc.replace(minute=utc.minute - utc.minute % 30, second=0, microsecond=0)
    return (floor if floor == utc else floor + STEP) + NOTICE


def weekday(day: date) -> Weekday:
    return WEEKDAYS[day.weekday()]


def local_start(day: date, at: time) -> datetime | None:
    """The London wall-clock time `at` on `day` as a UTC instant; None when the clocks skip it."""
    return _local_start(day, at, at.fold)  # times equal but for their fold are different instants when clocks go back


@lru_cache(maxsize=8192)  # the matcher asks for the same few days' half hours for every mentor it looks at
def _local_start(day: date, at: time, fold: int) -> datetime | None:
    wall = datetime.combine(day, at, tzinfo=LONDON)
    utc = wall.astimezone(UTC)
    if utc.astimezone(LONDON).replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return utc


def leave_interval(first: date, last: date) -> Interval:
    """Leave from the start of `first` to the end of `last`, Europe/London days, both inclusive."""
    return (datetime.combine(first, time(0), tzinfo=LONDON),
            datetime.combine(last + timedelta(days=1), time(0), tzinfo=LONDON))


def wall_clock_days_later(instant: datetime, days: int) -> datetime:
    """The same London wall-clock time `days` calendar days later (UTC)."""
    local = instant.astimezone(LONDON)
    return datetime.combine(local.date() + timedelta(days=days), local.time(), tzinfo=LONDON).astimezone(UTC)


def _inside_local(windows: Sequence[WeeklyWindow], day: Weekday, begin: time, end: time) -> bool:
    """Whether a session from `begin` to `end` (London wall clock, same day) lies within one of the windows."""
    return any(w.day == day and w.start_time <= begin and end <= w.end_time for w in windows)


def returns_in_time(return_by: time, start: datetime, buffer: timedelta = RETURN_BUFFER) -> bool:
    """Licence rule: session end + travel + 60 minutes is no later than `return_by` on the session's London day."""
    back = (start.astimezone(UTC) + SESSION + buffer).astimezone(LONDON)
    return back.date() == start.astimezone(LONDON).date() and back.time() <= return_by


# The day's 48 wall-clock half hours, one object each (every mentor's cached slots hold them).
_HALF_HOURS = tuple(time(minutes // 60, minutes % 60) for minutes in range(0, 24 * 60, 30))


@lru_cache(maxsize=4096)  # 85 days of half hours
def _day_slot(day: date, at: time) -> Slot | None:
    """The session starting at London wall-clock `at` on `day` as a slot; None when the clocks skip that time or
    the session would end on another day. One object for every mentor: after a flood of 2,000 referrals, 500
    mentors' cached days (MentorState.day_slots) held about 50,000 slots, 6 MiB as copies."""
    start = local_start(day, at)
    if start is None:
        return None
    end = (start + SESSION).astimezone(LONDON)
    return (start, weekday(day), at, end.time()) if end.date() == day else None


def half_hours(windows: Sequence[WeeklyWindow], day: date) -> list[time]:
    """Wall-clock :00/:30 times on `day` that fall inside one of the windows (candidates, not yet checked)."""
    return list(_half_hours_within(spans_by_day(windows).get(weekday(day), ())))


Span = tuple[time, time]  # a window's wall-clock start and end
WeekMasks = Mapping[Weekday, int]  # by weekday, a set of session starts (`session_mask`)


def spans_by_day(windows: Sequence[WeeklyWindow]) -> dict[Weekday, tuple[Span, ...]]:
    """The windows by day as wall-clock times, read from the models once (each `start_time` parses its text)."""
    found: dict[Weekday, list[Span]] = {}
    for window in windows:
        found.setdefault(window.day, []).append((window.start_time, window.end_time))
    return {day: tuple(spans) for day, spans in found.items()}


@lru_cache(maxsize=1024)  # mentors share a few patterns of windows
def _half_hours_within(spans: tuple[Span, ...]) -> tuple[time, ...]:
    """`half_hours` of the day's windows, given as spans."""
    found: set[time] = set()
    for begin, end in spans:
        first, last = begin.hour * 60 + begin.minute, end.hour * 60 + end.minute
        for minutes in range(-(-first // 30) * 30, last, 30):
            found.add(_HALF_HOURS[minutes // 30])
    return tuple(sorted(found))


def session_mask(spans: Iterable[tuple[int, int]]) -> int:
    """The starts (bit i: a session from i × STEP past midnight, SESSION long) that lie within one of
    the spans (minutes past midnight, wall clock): on a day without a clock change, what a window allows."""
    mask = 0
    for begin, end in spans:
        low, high = -(-begin // _STEP_MINUTES), (end - _SESSION_MINUTES) // _STEP_MINUTES
        if high >= low:
            mask |= ((1 << (high + 1)) - 1) ^ ((1 << low) - 1)
    return mask


def minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def case_masks(young: Mapping[Weekday, Sequence[Span]] | None, end_by: time | None) -> dict[Weekday, int]:
    """By weekday, the starts (`session_mask`) the young person's windows (None: any time) and a staffed venue's
    end allow on a day without a clock change."""
    within = session_mask([(0, minutes(end_by) if end_by is not None else 24 * 60 - 1)])
    if young is None:
        return {day: within for day in WEEKDAYS}
    return {day: session_mask((minutes(begin), minutes(end)) for begin, end in spans) & within
            for day, spans in young.items()}


DAY_BITS = 24 * 60 // _STEP_MINUTES  # a day's starts (`session_mask`): the bits of one weekday in `packed_week`


def packed_week(masks: Mapping[Weekday, int]) -> tuple[int, int]:
    """A weekly bound (`week_masks`, `case_masks`) as one number, weekday i's starts from bit DAY_BITS × i on, and
    the weekdays it names (bit i), even with no start: whether two share a start is then one `&`."""
    starts = days = 0
    for i, name in enumerate(WEEKDAYS):
        if name in masks:
            starts |= masks[name] << DAY_BITS * i
            days |= 1 << i
    return starts, days


@lru_cache(maxsize=512)
def clocks_change(day: date) -> bool:
    """Whether London's clocks go forward or back on `day` (wall-clock arithmetic is off on such a day)."""
    begin, end = datetime.combine(day, time(0), tzinfo=LONDON), datetime.combine(day, time(23, 59), tzinfo=LONDON)
    return begin.utcoffset() != end.utcoffset()


@dataclass(frozen=True)
class Calendar:
    """What decides whether a mentor can hold a session with a young person at a given instant."""

    mentor_windows: Sequence[WeeklyWindow]
    young_person_windows: Sequence[WeeklyWindow]  # empty means any time
    busy: Sequence[Interval] = field(default_factory=tuple)
    return_by: time | None = None  # rotl licence
    return_buffer: timedelta = RETURN_BUFFER  # 60 minutes plus travel back to the establishment
    licence_days: frozenset[Weekday] | None = None  # permitted days; None: any
    valid_from: date | None = None
    valid_to: date | None = None
    not_before: time | None = None  # the licence's window start
    end_by: time | None = None  # staffed-venue cases end by 19:00
    overrides: Mapping[date, tuple[WeeklyWindow, ...]] = field(default_factory=dict)  # a day's own windows
    # Whether a safe venue has a room then, and the mentor time to travel there and on (`rooms.venue_free`); None:
    # not asked
    room_free: Callable[[datetime], bool] | None = None
    # The mentor's side of this calendar worked out once for every case: the day's starts that fit the mentor's
    # windows, licence and the bookings they had when it was made (see matching.calendar). None: worked out here.
    mentor_slots: Callable[[date], Sequence[Slot]] | None = None
    shared_busy: int = 0  # how many of `busy` (the first) mentor_slots already keeps clear of
    # A bound on the mentor's side by weekday (`week_masks`), so that a day it rules out for this case is not looked
    # at, or worked out; None: no bound.
    week_masks: WeekMasks | None = None

    def windows_on(self, day: date) -> Sequence[WeeklyWindow]:
        """The mentor's windows on a London day: the day's override, else the weekly pattern."""
        return self.overrides.get(day, self.mentor_windows)

    def fits(self, start: datetime) -> bool:
        """Whether a session may start then (a start on :00 or :30 when the mentor's side is shared)."""
        start = to_utc(start)
        if self.mentor_slots is not None:
            local = start.astimezone(LONDON)
            day = local.date()
            if not self._day_mask(day) >> (minutes(local.time()) // _STEP_MINUTES) & 1:  # not on the bound: not worked out
                return False
            slot = next((s for s in self._mentor_day(day) if s[0] == start), None)
            return slot is not None and self._fits_case(slot)
        local, local_end = start.astimezone(LONDON), (start + SESSION).astimezone(LONDON)
        day = local.date()
        if local_end.date() != day:
            return False
        begin_t, end_t, name = local.time(), local_end.time(), weekday(day)
        return (
            _inside_local(self.windows_on(day), name, begin_t, end_t)
            and (not self.young_person_windows or _inside_local(self.young_person_windows, name, begin_t, end_t))
            and self._licence_allows(day, begin_t)
            and (self.end_by is None or end_t <= self.end_by)
            and not self._overlaps(start)
            and (self.return_by is None or returns_in_time(self.return_by, start, self.return_buffer))
            and (self.room_free is None or self.room_free(start))
        )

    def _licence_allows(self, day: date, at: time) -> bool:
        return _licence_allows(self._terms, day, at)

    @cached_property
    def _terms(self) -> LicenceTerms:
        return LicenceTerms(return_by=self.return_by, return_buffer=self.return_buffer, licence_days=self.licence_days,
                            valid_from=self.valid_from, valid_to=self.valid_to, not_before=self.not_before)

    @cached_property
    def _busy_index(self) -> tuple[list[datetime], list[datetime]]:
        """Busy starts in order, with the latest end seen so far: overlap tests in O(log n)."""
        ordered = sorted((to_utc(b_start), to_utc(b_end)) for b_start, b_end in self.busy)
        latest: list[datetime] = []
        for _, b_end in ordered:
            latest.append(b_end if not latest or b_end > latest[-1] else latest[-1])
        return [b_start for b_start, _ in ordered], latest

    def _overlaps(self, start: datetime) -> bool:
        starts, latest_end = self._busy_index
        before_end = bisect_left(starts, start + SESSION)  # intervals that start before the session ends
        return before_end > 0 and latest_end[before_end - 1] > start

    def mentor_side(self, day: date) -> list[Slot]:
        """The day's starts allowed by the mentor's windows, licence and bookings alone, earliest first."""
        name = weekday(day)
        override = self.overrides.get(day)
        spans = self._mentor_spans.get(name, ()) if override is None else spans_by_day(override).get(name, ())
        allowed = _free_starts(day, spans, self._terms)
        if not self.busy:
            return list(allowed)
        return [slot for slot in allowed if not self._overlaps(slot[0])]

    def _fits_case(self, slot: Slot) -> bool:
        """The rest of `fits` for a start the mentor's side allows: the young person's windows, the staffed-venue
        end, bookings made since the mentor's side was worked out, and a room."""
        start, name, begin, end = slot
        return (
            (not self.young_person_windows or any(
                window_start <= begin and end <= window_end for window_start, window_end in self._young_spans.get(name, ())))
            and (self.end_by is None or end <= self.end_by)
            and not self._overlaps_since(start)
            and (self.room_free is None or self.room_free(start))
        )

    @cached_property
    def _young_spans(self) -> dict[Weekday, tuple[Span, ...]]:
        """The young person's windows by day, as wall-clock times (not read from the models for every start)."""
        return spans_by_day(self.young_person_windows)

    @cached_property
    def _mentor_spans(self) -> dict[Weekday, tuple[Span, ...]]:
        """The mentor's weekly windows by day, as wall-clock times (not read from the models for every start)."""
        return spans_by_day(self.mentor_windows)

    def _overlaps_since(self, start: datetime) -> bool:
        """Overlap with the bookings the mentor's side has not seen (all of them when it is worked out here)."""
        if self.mentor_slots is None:
            return False  # mentor_side checked every booking
        end = start + SESSION
        return any(b_start < end and start < b_end for b_start, b_end in self.busy[self.shared_busy:])

    def _mentor_day(self, day: date) -> Sequence[Slot]:
        return self.mentor_slots(day) if self.mentor_slots is not None else self.mentor_side(day)

    @cached_property
    def _case_masks(self) -> dict[Weekday, int]:
        return case_masks(self._young_spans if self.young_person_windows else None, self.end_by)

    def _day_mask(self, day: date) -> int:
        """The starts on `day` both sides' weekly bounds allow (bit i: i × 30 minutes past midnight); every bit
        when there is no bound, or the clocks change that day (when wall-clock sums are off)."""
        if self.week_masks is None or clocks_change(day):
            return -1 if not self.young_person_windows or weekday(day) in self._young_spans else 0
        name = weekday(day)
        return self.week_masks.get(name, 0) & self._case_masks.get(name, 0)

    def starts_on(self, day: date) -> list[datetime]:
        """Every start on the London `day` that fits, earliest first (UTC)."""
        if not self._day_mask(day):  # no start fits: the mentor's side of the day is not worked out
            return []
        return [slot[0] for slot in self._mentor_day(day) if self._fits_case(slot)]

    def first_fit(self, *, not_before: datetime, not_after: datetime) -> datetime | None:
        """The earliest start in [not_before, not_after] that fits (UTC)."""
        day, last = not_before.astimezone(LONDON).date(), not_after.astimezone(LONDON).date()
        while day <= last:
            for slot in self._mentor_day(day) if self._day_mask(day) else ():  # earliest first: stop at a fit
                start = slot[0]
                if start < not_before:
                    continue
                if start > not_after:
                    return None
                if self._fits_case(slot):
                    return start
            day += timedelta(days=1)
        return None

    def follow_up(self, *, target: date, at: time, days: int, not_after: datetime) -> datetime | None:
        """On the first of `days` days from `target` that has a fit: `at` if it fits, else that day's earliest."""
        for offset in range(days):
            day = target + timedelta(days=offset)
            same = local_start(day, at)
            if same is not None and same <= not_after and self.fits(same):
                return same
            fits = [start for start in self.starts_on(day) if start <= not_after]
            if fits:
                return fits[0]
        return None

    def booked(self, start: datetime) -> Calendar:
        """This calendar with a session at `start` marked busy (after the bookings it had)."""
        start = to_utc(start)
        return self.changed(busy=(*self.busy, (start, start + SESSION)))

    def changed(self, **changes: object) -> Calendar:
        """This calendar with some fields changed, as `dataclasses.replace` makes it but in a fifth of the time
        (the matcher makes one for each mentor it looks at, for each case): the fields are copied as they are,
        without the checks of `__init__`; what was worked out from fields that do not change is carried over. A
        caller that knows what is worked out from the fields it changes (`_WORKED_OUT_FROM`) may give that too."""
        names = frozenset(changes)
        stale = _STALE.get(names)
        if stale is None:
            unknown = names - _CALENDAR_FIELDS_SET - _WORKED_OUT_FROM.keys()
            if unknown:
                raise TypeError(f"Calendar has no field {', '.join(sorted(unknown))}")
            stale = _STALE[names] = tuple(name for name, source_fields in _WORKED_OUT_FROM.items()
                                          if not names.isdisjoint(source_fields))
        copy = object.__new__(Calendar)
        fields = copy.__dict__  # a frozen dataclass's fields live in its __dict__, as __init__ leaves them
        fields.update(self.__dict__)  # its fields and what was worked out from them, less what the changes make stale
        for name in stale:
            fields.pop(name, None)
        fields.update(changes)
        return copy


_CALENDAR_FIELDS = tuple(f.name for f in fields(Calendar))
_CALENDAR_FIELDS_SET = frozenset(_CALENDAR_FIELDS)
_WORKED_OUT_FROM = {  # each cached property, and the fields it is worked out from
    "_busy_index": ("busy",),
    "_young_spans": ("young_person_windows",),
    "_mentor_spans": ("mentor_windows",),
    "_case_masks": ("young_person_windows", "end_by"),
    "_terms": ("return_by", "return_buffer", "licence_days", "valid_from", "valid_to", "not_before"),
}
_STALE: dict[frozenset[str], tuple[str, ...]] = {}  # by the names `changed` is given: what it must work out again


@dataclass(frozen=True)
class LicenceTerms:
    """What a rotl licence limits of a mentor's session times (no limits for other mentors)."""

    return_by: time | None = None
    return_buffer: timedelta = RETURN_BUFFER
    licence_days: frozenset[Weekday] | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    not_before: time | None = None


@lru_cache(maxsize=16384)  # mentors share a few patterns of windows and licence, and the days looked at
def _free_starts(day: date, spans: tuple[Span, ...], terms: LicenceTerms) -> tuple[Slot, ...]:
    """`Calendar.mentor_side` before bookings: the day's starts within `spans` (the day's windows) that the licence
    allows, earliest first. A pure function of its key, worked out once for every mentor with the same windows that
    day and the same licence, not once per mentor."""
    found: list[Slot] = []
    for at in _half_hours_within(spans):
        slot = _day_slot(day, at)
        if slot is None:
            continue
        start, _, _, end = slot
        if (any(begin <= at and end <= until for begin, until in spans) and _licence_allows(terms, day, at)
                and (terms.return_by is None or returns_in_time(terms.return_by, start, terms.return_buffer))):
            found.append(slot)
    return tuple(found)


def _licence_allows(terms: LicenceTerms, day: date, at: time) -> bool:
    return (
        (terms.licence_days is None or weekday(day) in terms.licence_days)
        and (terms.valid_from is None or day >= terms.valid_from)
        and (terms.valid_to is None or day <= terms.valid_to)
        and (terms.not_before is None or at >= terms.not_before)
    )


def licence_terms(record: MentorRecord) -> LicenceTerms:
    """The record's licence as `Calendar` reads it (rotl mentors only)."""
    licence = record.licence if record.kind == "rotl" else None
    if licence is None:
        return LicenceTerms()
    return LicenceTerms(
        return_by=parse_hhmm(licence.return_by),
        return_buffer=RETURN_BUFFER + timedelta(minutes=licence.travel_minutes),
        licence_days=frozenset(licence.days) if licence.days is not None else None,
        valid_from=licence.valid_from,
        valid_to=licence.valid_to,
        not_before=parse_hhmm(licence.window_start) if licence.window_start else None,
    )


def mentor_calendar(record: MentorRecord, busy: Sequence[Interval]) -> Calendar:
    """A mentor's side of the calendar alone: their windows and date overrides, bookings and leave (`busy`,
    UTC, in order), and for rotl mentors the licence."""
    terms = licence_terms(record)
    return Calendar(
        mentor_windows=tuple(record.availability),
        young_person_windows=(),
        busy=busy,
        return_by=terms.return_by,
        return_buffer=terms.return_buffer,
        licence_days=terms.licence_days,
        valid_from=terms.valid_from,
        valid_to=terms.valid_to,
        not_before=terms.not_before,
        overrides={o.date: tuple(WeeklyWindow(day=weekday(o.date), start=start, end=end) for start, end in o.windows)
                   for o in record.date_overrides},
    )


def week_masks(record: MentorRecord) -> WeekMasks | None:
    """By weekday, the session starts (`session_mask`) the mentor's weekly windows and licence allow on a day
    without a clock change, bookings aside: a bound on `Calendar.mentor_side`'s. None when the record has days
    with windows of their own. Shared between mentors with the same windows and licence: not to be changed."""
    if record.date_overrides:
        return None
    terms = licence_terms(record)
    return _week_masks(tuple((w.day, w.start, w.end) for w in record.availability),
                       terms.licence_days, terms.not_before, terms.return_by, terms.return_buffer)


# A MentorState caches its week masks; it must still pickle (the round's planning process gets its mentors that way)
# and deep-copy, which a read-only mapping does not by itself.
def read_only(values: dict[Weekday, int]) -> MappingProxyType[Weekday, int]:
    return MappingProxyType(values)


copyreg.pickle(MappingProxyType, lambda proxy: (read_only, (dict(proxy),)))


@lru_cache(maxsize=4096)  # mentors share a few patterns of windows and licence (its dates aside: a weekly bound)
def _week_masks(
    windows: tuple[tuple[Weekday, str, str], ...], licence_days: frozenset[Weekday] | None, not_before: time | None,
    return_by: time | None, return_buffer: timedelta,
) -> WeekMasks:
    earliest = minutes(not_before) if not_before is not None else 0
    latest = 24 * 60 - 1  # the session's end, and with a licence the return after it
    if return_by is not None:
        latest = minutes(return_by) - return_buffer // timedelta(minutes=1)
    licence = session_mask([(earliest, latest)])
    found: dict[Weekday, int] = {}
    for day, begin, end in windows:
        if licence_days is None or day in licence_days:
            found[day] = found.get(day, 0) | session_mask([(minutes(parse_hhmm(begin)), minutes(parse_hhmm(end)))])
    return read_only({day: mask & licence for day, mask in found.items()})  # shared: read-only
