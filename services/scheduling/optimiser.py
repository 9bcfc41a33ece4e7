"""The optimiser: places many referrals at once (in the re-optimisation round, the waitlisted referrals and the
unconfirmed assignments) as an exact min-cost flow.

Pure: no I/O and no clock in the decision (`now` is passed in; the wall clock only times the solve).

The model is the research pilot's model B (scheduling-research.md §2.3). Each referral sends one unit of flow
either to a candidate first slot, a node per (mentor, start) with capacity 1 so that no two referrals get the
same slot, and on through its mentor (capacity max_caseload − caseload) to the sink; or straight to the sink
along its "unassigned" arc. The costs come in four levels, each outweighing every sum of the levels below it:

1. placements: the unassigned penalty grows with the tier, and is larger still for a young person who has a mentor
   now (`current`), so the flow places as many young people as possible, those who have a mentor first (the round
   never takes a mentor from anyone), then higher tiers;
2. moves: every arc that takes a young person who has a mentor to another mentor costs a move, so among the most
   placements the flow makes the fewest moves. A move therefore happens only where it lets the round place someone
   (a waiting young person, or one whose mentor can no longer keep them), or where the young person's mentor can
   no longer keep them (no longer eligible for them, no free start within the horizon, or fewer places than the
   young people they have): never for a better score, an earlier day or a deadline met, theirs or others', however
   many young people it would suit. Rupture and re-matching harm trust (domain.md §5.3, continuity), so keeping a young
   person's mentor is a constraint the match gives way to, not one more score term;
3. very high referrals seen within their 24 h deadline: for a very high referral who has a start that meets it,
   missing it (a later start, or no place) costs more than any sum of the match costs below, so the flow never
   trades one such referral's deadline for other deadlines met or better matches (the online matcher, taking
   the highest tier first, sees them as soon as it can too). It comes below moves and placements: a deadline
   never costs a young person their place or their mentor;
4. the match: deadline met, `matching.score`, earliest day.

The flow's picks then become bookings in two passes. First sessions: each pick is checked against every first
session given out or still reserved (two starts half an hour apart both pass the flow; a very high pick that would
miss its deadline takes its own start instead where only waiting young people's reserved starts stand in the way
and each still has another start with that mentor: they move), and against the
time-independent rules with the mentor's load so far (the risk-weighted points cap, a knapsack, is beyond a
flow), moving to the referral's next candidate or the mentor's next free start if it must; what still fails
is re-solved against what is left. Then every young person the flow moved goes back to the mentor they have where
that mentor still has a place, the points and a start for them: the flow cannot count points, so a move it made to
free a place can be for someone the cap then refuses there, and would otherwise stay, placing nobody. Follow-ups:
for every placed referral, higher tiers first, `matching.sessions_from` against a calendar holding every session
given out so far, so nothing is double-booked and no follow-up takes a time a first session needed. Each session
given out is held, for the travel rule (travel.py), at the first safe venue the mentor can reach in time from their
session before and leave in time for the next (`rooms.place` without rooms: the round's booking holds the rooms);
the flow's candidate starts do not know it (it reads the mentor's and the case's sides together), so a start it
rules out is passed over when the pick is booked, as a taken start is. Referrals still unplaced are offered to the online matcher and, if nothing fits, get its
waitlist reason. Where all that places fewer than the flow picked, or fewer who have a mentor (the points refused
picks), the online matcher's schedule of the whole round is made too, and taken if it places more: the round never
places fewer than it.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from itertools import repeat
from time import perf_counter

from services.scheduling.constraints import (
    TIER_POINTS,
    Case,
    MentorState,
    Rule,
    first_exclusion,
    summarise,
    venues_for,
)
from services.scheduling.matching import (
    HORIZON_DAYS,
    Match,
    calendar,
    deadline_for,
    match,
    score,
    sessions_from,
    with_booking,
    without_booking,
)
from services.scheduling.rooms import Rooms, place
from services.scheduling.slots import LONDON, SESSION, STEP, Calendar, Interval, earliest_start, to_utc
from shared.contracts.codes import WEEKDAYS, Tier, place_key
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import MentorRecord

__all__ = ["Allocation", "Pinned", "optimise"]

MAX_SLOTS = 25  # candidate first starts per (referral, mentor) at most; fewer when the mentor has fewer places
MAX_SOLVES = 3  # a solve after the first only places again what the previous one could not book
MISSED_DEADLINE_COST = 10_000  # outweighs any score difference, as the online ranking puts the deadline first
SCORE_UNIT = 100  # cost per point of matching.score
COST_LIMIT = 2**61
"""The largest cost times the nodes a flow may reach. OR-Tools refuses a wider cost range (BAD_COST_RANGE): measured
with 9.15, from about 0.83 x 2^62 at a thousand nodes and more, less on tiny flows (which never come near). Level 3
(below) multiplies the range by about the urgent referrals' count."""
BITS_PER_DAY = timedelta(days=1) // STEP
NO_MENTORS = "no mentors registered"


@dataclass(frozen=True)
class Pinned:
    """An assignment that must stay: the young person has confirmed a session with this mentor."""

    referral_id: str
    mentor_id: str


@dataclass(frozen=True)
class Allocation:
    """The optimiser's decision for every referral that was not pinned."""

    assignments: dict[str, Match]  # referral_id -> mentor and sessions, as the online matcher returns them
    waitlisted: dict[str, str]  # referral_id -> why nothing fits, in plain English
    solve_seconds: float
    # referral_id -> why their `current` mentor cannot keep them, in plain English for schedulers: not eligible for
    # them now, or no free start within the horizon; and where the mentor has fewer places than the young people they
    # could keep, as many of those the plan moves as they have too many. Every other move makes room for someone.
    must_move: dict[str, str] = field(default_factory=dict)
    urgent_level_dropped: bool = False
    """Whether a flow was solved without level 3 (very high referrals seen in time), its costs being too wide."""
    online_placed: int | None = None
    """How many the online matcher's schedule placed (the better of its two, see `optimise`), where it was made (the
    hand-out lost picks); None: not made; -1: each given up part way, once it could no longer place more than the
    plan it had to beat."""
    online_taken: bool = False
    """Whether the plan is that schedule, having placed more than the flow's (see `optimise`)."""


@dataclass(frozen=True)
class _Grid:
    """The possible first-session starts, [earliest start, now + horizon] every half hour (UTC), as bit numbers."""

    first: datetime
    last: datetime

    @property
    def everything(self) -> int:
        return (1 << (self.bit(self.last) + 1)) - 1 if self.last >= self.first else 0

    def at(self, bit: int) -> datetime:
        return self.first + bit * STEP

    def bit(self, start: datetime) -> int:
        return (start - self.first) // STEP

    def mask(self, cal: Calendar) -> int:
        """The starts on the grid that fit the calendar, found exactly as `Calendar.first_fit` looks for them."""
        bits, day, end = 0, self.first.astimezone(LONDON).date(), self.last.astimezone(LONDON).date()
        while day <= end:
            for start in cal.starts_on(day):
                if self.first <= start <= self.last:
                    bits |= 1 << self.bit(start)
            day += timedelta(days=1)
        return bits


@dataclass(frozen=True)
class _First:
    """A first session given out by the optimiser, before its follow-ups are booked."""

    case: Case
    mentor: int
    session: Interval


@dataclass(frozen=True)
class _Choice:
    """The flow's pick for one referral: a mentor and its candidate first starts, the chosen one first."""

    mentor: int
    starts: list[datetime]


def _low_bits(mask: int, limit: int) -> list[int]:
    found: list[int] = []
    while mask and len(found) < limit:
        low = mask & -mask
        found.append(low.bit_length() - 1)
        mask ^= low
    return found


def _back_to_back(mask: int) -> int:
    """Every other start in each run of consecutive half-hours: the starts a mentor can give one after another.

    Offering these first keeps the referrals of one mentor on one grid, so the flow's distinct slots rarely
    overlap by half an hour.
    """
    chosen, previous = 0, -2
    for bit in _low_bits(mask, mask.bit_count()):
        if bit >= previous + 2:
            chosen, previous = chosen | 1 << bit, bit
    return chosen


def _priority(case: Case) -> tuple[int, datetime, str]:
    return (-case.tier.rank, to_utc(case.accepted_at), case.referral_id)


class _Optimisation:
    """Mutable working state of one call to `optimise`: mentor states as bookings land, and cached start masks."""

    def __init__(self, mentors: list[MentorState], *, now: datetime, current: Mapping[str, str]) -> None:
        self.now = now
        self.grid = _Grid(earliest_start(now), to_utc(now) + timedelta(days=HORIZON_DAYS))
        self.states = mentors
        self.booked = frozenset(current)  # young people who have a mentor now
        self.by_id = {state.record.id: mi for mi, state in enumerate(mentors)}  # mentor id -> index
        self.held = {rid: self.by_id[mentor_id] for rid, mentor_id in current.items() if mentor_id in self.by_id}
        self.covering: dict[str, list[int]] = defaultdict(list)
        for index, mentor in enumerate(mentors):
            for borough in {place_key(b) for b in mentor.record.boroughs}:
                self.covering[borough].append(index)
        self._masks: dict[int, tuple[int, int]] = {}  # mentor index -> (fitting starts, back-to-back starts)
        self.urgent_level_dropped = False  # see Allocation
        self._windows: dict[WeeklyWindow, int] = {}
        self._end_by: dict[time, int] = {}

    def free(self, index: int) -> int:
        state = self.states[index]
        return state.record.max_caseload - state.caseload

    def mentor_starts(self, index: int) -> tuple[int, int]:
        """Starts that fit the mentor's windows, bookings and licence, whoever the young person is."""
        if index not in self._masks:
            state = self.states[index]
            cal = calendar(_ANYONE, state)
            fits = self.grid.mask(cal)
            self._masks[index] = (fits, _back_to_back(fits))
        return self._masks[index]

    def case_starts(self, case: Case) -> int:
        """Starts that fit the young person's side of the calendar: their windows and safety limits.

        `Calendar.fits` is a conjunction of rules on the mentor's side and rules on the case's side, so a start
        fits the pair exactly when it is in both masks. Should `calendar` learn another rule read from the case,
        it belongs here; the booking pass checks every start with the full calendar, so until then a missing
        rule costs a candidate, never a broken rule.
        """
        side = calendar(case, _ANY_TIME)
        bits = self.grid.everything
        if side.young_person_windows:
            bits = 0
            for window in side.young_person_windows:
                if window not in self._windows:
                    self._windows[window] = self.grid.mask(Calendar(mentor_windows=(window,), young_person_windows=()))
                bits |= self._windows[window]
        if side.end_by is not None:
            if side.end_by not in self._end_by:
                self._end_by[side.end_by] = self.grid.mask(
                    Calendar(mentor_windows=_ALL_DAY, young_person_windows=(), end_by=side.end_by)
                )
            bits &= self._end_by[side.end_by]
        return bits

    def cannot_take(self, case: Case, index: int) -> str | None:
        """Why the mentor could not take the case even on their own, if so: a rule (a place among them), or no start
        that fits both."""
        ruled_out = first_exclusion(case, self.states[index])
        if ruled_out is not None:
            return ruled_out.reason
        if not self.mentor_starts(index)[0] & self.case_starts(case):
            return f"no free slot in the next {HORIZON_DAYS} days"
        return None

    def eligible(self, case: Case) -> list[int]:
        """Mentors that pass every time-independent rule (`first_exclusion`) and have room."""
        found = []
        for index in self.covering.get(place_key(case.borough), ()):  # the borough rule, which comes first
            if first_exclusion(case, self.states[index]) is None:
                found.append(index)
        return found

    def book(self, index: int, case: Case, sessions: list[Interval]) -> list[Interval]:
        """The mentor takes the case: one more place, its risk-weighted points, and the sessions, each at the first
        safe venue within travel of the mentor's other sessions (`rooms.place`, rooms left to the booking). The
        sessions kept: a follow-up too close to another of the same young person's at another venue is dropped."""
        state = self.states[index]
        placed = place(venues_for(case, state), sessions, state.itinerary)
        kept = [interval for interval, _ in placed]
        self.states[index] = with_booking(state, kept, case.tier, venues=[venue for _, venue in placed])
        self._masks.pop(index, None)
        return kept

    def solve(self, cases: Sequence[Case], *, urgent_level: bool = True) -> dict[int, _Choice]:
        """One min-cost flow over `cases` against the current states; case index -> the flow's pick. Should level 3
        (very high referrals seen in time) widen the costs past `COST_LIMIT`, as hundreds of urgent referrals among
        thousands with a mentor could, the flow is solved without it: the very high still come first among the
        placed (level 1) and in handing out first sessions, as the online matcher does, instead of the round
        failing."""
        # Imported here, not at the top: numpy and ortools hold about 40 MiB, and only the round (in its planning
        # process, services/scheduling/planning.py) solves a flow.
        import numpy as np
        from ortools.graph.python.min_cost_flow import SimpleMinCostFlow  # type: ignore[import-untyped]

        mentor_nodes = len(cases)
        sink = mentor_nodes + len(self.states)
        slot_nodes: dict[tuple[int, int], int] = {}
        # One entry per referral → slot arc, in arrays: 8 bytes an entry, where a list held an int or a tuple each
        # (hundreds of thousands of arcs at an organisation's size).
        arc_case, arc_mentor, arc_bit, arc_node = array("q"), array("q"), array("q"), array("q")
        arc_cost = array("q")  # apart from the score
        arc_total = array("d")  # the match score
        arc_away = array("b")  # whether it takes a young person from their mentor
        on_time = [self._on_time(case) for case in cases]
        # Urgent: a very high referral with a candidate start that meets their deadline.
        urgent = [False] * len(cases)
        for ci, case in enumerate(cases):
            referral_id, very_high = case.referral_id, urgent_level and case.tier is Tier.VERY_HIGH
            for mi, total, bits in self._candidates(case):
                away = referral_id in self.booked and self.held.get(referral_id) != mi
                arc_case.extend(repeat(ci, len(bits)))
                arc_mentor.extend(repeat(mi, len(bits)))
                arc_total.extend(repeat(total, len(bits)))
                arc_away.extend(repeat(away, len(bits)))
                for bit, cost in bits:
                    arc_bit.append(bit)
                    arc_cost.append(cost)
                    arc_node.append(slot_nodes.setdefault((mi, bit), sink + 1 + len(slot_nodes)))
                if very_high and not urgent[ci]:
                    urgent[ci] = any(bit <= on_time[ci] for bit, _ in bits)
        n_arcs = len(arc_case)
        arc_cases = np.frombuffer(arc_case, dtype=np.int64) if n_arcs else np.zeros(0, dtype=np.int64)
        totals = np.frombuffer(arc_total, dtype=np.float64) if n_arcs else np.zeros(0, dtype=np.float64)
        best = float(totals.max()) if n_arcs else 0.0
        # the score's shortfall from the best, ≥ 0 so costs stay non-negative; rint rounds half to even, as round()
        costs = (np.frombuffer(arc_cost, dtype=np.int64) if n_arcs else np.zeros(0, dtype=np.int64)) + np.rint(
            SCORE_UNIT * (best - totals)).astype(np.int64)
        top = np.zeros(len(cases), dtype=np.int64)  # per referral: its dearest arc, to size each level over the below
        np.maximum.at(top, arc_cases, costs)
        dearest = [int(x) for x in top]
        urgent_arcs = np.asarray(urgent, dtype=bool)[arc_cases] if cases else np.zeros(0, dtype=bool)
        late = urgent_arcs & (np.frombuffer(arc_bit, dtype=np.int64) > np.asarray(on_time, dtype=np.int64)[arc_cases]
                              if n_arcs else np.zeros(0, dtype=bool))
        # Each level's unit outweighs any sum of the levels below: the sum of every referral's dearest arc there
        # (a referral uses one arc). Level 3 over level 4: an urgent referral not seen in time.
        seen = sum(dearest) + 1
        dearest = [top + seen if hurry else top for top, hurry in zip(dearest, urgent, strict=True)]
        # Level 2 over levels 3 and 4: a move.
        move = sum(dearest) + 1
        dearest = [top + move if cases[ci].referral_id in self.booked else top for ci, top in enumerate(dearest)]
        # The unit of the unassigned penalty outweighs any sum of assignment costs, so the flow first maximises the
        # placed weights: 1 + rank, and len(Tier) more for a young person who has a mentor, so more than anyone
        # waiting. Placeable sets of referrals form a matroid (a gammoid), so a set of maximum positive weight is also
        # a largest one, and (by the greedy algorithm) holds as many of the heavier as can be placed together: the
        # weights pick who is placed, never how many. An urgent very high referral left out is not seen in time
        # either (level 3), or a set of as much weight could leave them out for another very high one placed late.
        base = sum(dearest) + 1
        unassigned = [base * (1 + case.tier.rank + (len(Tier) if case.referral_id in self.booked else 0))
                      + (seen if urgent[ci] else 0) for ci, case in enumerate(cases)]
        # Every arc costs less than `base` (its referral's dearest, with the levels above it, is below it), so the
        # unassigned arcs are the dearest: checked before any sum below could pass 64 bits.
        if max(unassigned, default=0) * (sink + 1 + len(slot_nodes)) > COST_LIMIT:
            if any(urgent):
                self.urgent_level_dropped = True
                return self.solve(cases, urgent_level=False)
            raise RuntimeError(f"the round's costs exceed the flow's range ({len(cases)} referrals): split the round")
        costs[late] += seen
        costs[np.frombuffer(arc_away, dtype=np.int8).astype(bool) if n_arcs else np.zeros(0, dtype=bool)] += move
        slots = list(slot_nodes.items())
        mentors = range(len(self.states))
        flow = SimpleMinCostFlow()
        flow.add_arcs_with_capacity_and_unit_cost(
            np.concatenate([arc_cases, np.fromiter((node for _, node in slots), np.int64, len(slots)),
                            np.arange(mentor_nodes, mentor_nodes + len(self.states)),
                            np.arange(len(cases))]).astype(np.int32),
            np.concatenate([np.frombuffer(arc_node, dtype=np.int64) if n_arcs else np.zeros(0, dtype=np.int64),
                            np.fromiter((mentor_nodes + mi for (mi, _), _ in slots), np.int64, len(slots)),
                            np.full(len(self.states), sink), np.full(len(cases), sink)]).astype(np.int32),
            np.concatenate([np.ones(n_arcs + len(slots), dtype=np.int64),
                            np.fromiter((max(0, self.free(mi)) for mi in mentors), np.int64, len(self.states)),
                            np.ones(len(cases), dtype=np.int64)]),
            np.concatenate([costs, np.zeros(len(slots) + len(self.states), dtype=np.int64),
                            np.array(unassigned, dtype=np.int64)]),
        )
        flow.set_nodes_supplies(
            np.array([*range(len(cases)), sink], dtype=np.int32),
            np.array([*([1] * len(cases)), -len(cases)], dtype=np.int64),
        )
        status = flow.solve()
        if status == flow.BAD_COST_RANGE and any(urgent):
            self.urgent_level_dropped = True
            return self.solve(cases, urgent_level=False)
        if status != flow.OPTIMAL:
            raise RuntimeError(f"min-cost flow ended {status}")  # a bug: the unassigned arcs make it feasible
        used = np.asarray(flow.flows(np.arange(n_arcs, dtype=np.int32)))
        choices: dict[int, _Choice] = {}
        for arc in (int(a) for a in np.flatnonzero(used)):
            ci, mi, bit = arc_case[arc], arc_mentor[arc], arc_bit[arc]
            lo, hi = arc, arc + 1  # the pair's other starts: its arcs are side by side
            while lo > 0 and arc_case[lo - 1] == ci and arc_mentor[lo - 1] == mi:
                lo -= 1
            while hi < n_arcs and arc_case[hi] == ci and arc_mentor[hi] == mi:
                hi += 1
            others = sorted(b for b in arc_bit[lo:hi] if b != bit)
            choices[ci] = _Choice(mi, [self.grid.at(b) for b in (bit, *others)])
        return choices

    def _candidates(self, case: Case) -> list[tuple[int, float, list[tuple[int, int]]]]:
        """Every mentor who can take the case: (mentor, match score, [(start bit, cost apart from the score)])."""
        wanted = self.case_starts(case)
        on_time = self._on_time(case)
        found: list[tuple[int, float, list[tuple[int, int]]]] = []
        for mi in self.eligible(case):
            fits, back_to_back = self.mentor_starts(mi)
            fits &= wanted
            if not fits:
                continue
            # As many starts as the mentor has places: a mentor who takes k referrals can always give them k
            # distinct starts from these (Hall's theorem), so offering more could not place anyone more.
            limit = min(MAX_SLOTS, self.free(mi))
            bits = _low_bits(fits & back_to_back, limit)
            bits = sorted(bits + _low_bits(fits & ~back_to_back, limit - len(bits)))
            total = sum(score(case, self.states[mi]).values())
            late = MISSED_DEADLINE_COST
            found.append((mi, total, [(bit, bit // BITS_PER_DAY + (late if bit > on_time else 0)) for bit in bits]))
        return found

    def _on_time(self, case: Case) -> int:
        """The last start bit that meets the case's deadline."""
        return (to_utc(deadline_for(case)) - self.grid.first) // STEP

    def place_firsts(self, cases: Sequence[Case], choices: dict[int, _Choice]) -> tuple[dict[str, _First], list[int]]:
        """Give each pick its first session, those who have a mentor first, then higher tiers; the case indices whose
        pick no longer fits.

        A pick's start is checked against every first session already given out and every one still reserved
        for another pick, so a start half an hour from another's moves to the referral's next candidate. Those who
        have a mentor come first, as in the flow's weights, so neither the risk-weighted points the flow cannot count
        nor a waiting young person's reserved start leaves them without one.
        """
        reserved: dict[int, dict[int, Interval]] = defaultdict(dict)
        for ci, choice in choices.items():
            reserved[choice.mentor][ci] = (choice.starts[0], choice.starts[0] + SESSION)
        placed: dict[str, _First] = {}
        failed: list[int] = []
        for ci in sorted(choices, key=lambda ci: (cases[ci].referral_id not in self.booked, -cases[ci].tier.rank,
                                                  choices[ci].starts[0], cases[ci].referral_id)):
            case, choice = cases[ci], choices[ci]
            del reserved[choice.mentor][ci]
            state = self.states[choice.mentor]
            if first_exclusion(case, state) is not None:  # e.g. risk-weighted points, which the flow cannot count
                failed.append(ci)
                continue
            first = self._first_start(case, choice, reserved[choice.mentor].values())
            if case.tier is Tier.VERY_HIGH and (first is None or first > deadline_for(case)):
                first = self._in_time_before_others(cases, case, choice, reserved[choice.mentor]) or first
            if first is None and case.referral_id in self.booked:
                first = self._first_start(case, choice, [interval for cj, interval in reserved[choice.mentor].items()
                                                         if cases[cj].referral_id in self.booked])
            if first is None:
                failed.append(ci)
                continue
            session = (first.astimezone(LONDON), (first + SESSION).astimezone(LONDON))
            self.book(choice.mentor, case, [session])
            placed[case.referral_id] = _First(case, choice.mentor, session)
        return placed, failed

    def _first_start(self, case: Case, choice: _Choice, reserved: Iterable[Interval]) -> datetime | None:
        """The pick's first candidate start that fits around `reserved`, else the mentor's first free one; for a very
        high referral whose pick sees them in time, the first start around `reserved` that still does, where one is.

        Where two picks' starts are half an hour apart, the one placed first (the higher tier) moves; a very high
        referral to a start that still meets their deadline where there is one (else `_in_time_before_others`).
        """
        state = self.states[choice.mentor]
        cal = calendar(case, replace(state, busy=[*state.busy, *reserved]))
        due = deadline_for(case)
        if case.tier is Tier.VERY_HIGH and choice.starts[0] <= due:
            in_time = next((start for start in choice.starts if start <= due and cal.fits(start)), None)
            if in_time is None:
                in_time = cal.first_fit(not_before=self.grid.first, not_after=min(to_utc(due), self.grid.last))
            if in_time is not None:
                return in_time
        first = next((start for start in choice.starts if cal.fits(start)), None)
        return first if first is not None else cal.first_fit(not_before=self.grid.first, not_after=self.grid.last)

    def _in_time_before_others(self, cases: Sequence[Case], case: Case, choice: _Choice,
                               reserved: Mapping[int, Interval]) -> datetime | None:
        """A very high pick's own start, which sees them in time, when only starts reserved for other picks stand in
        its way and each of those picks is waiting for a mentor (no one's mentor is at stake) and still has a free
        start with this mentor around it: they move instead. None otherwise: a deadline never costs anyone their
        place or their mentor."""
        own, state = choice.starts[0], self.states[choice.mentor]
        if own > deadline_for(case) or not calendar(case, state).fits(own):
            return None
        session: Interval = (own, own + SESSION)
        in_the_way = [cj for cj, interval in reserved.items()
                      if not calendar(case, replace(state, busy=[*state.busy, interval])).fits(own)]
        for cj in in_the_way:
            if cases[cj].referral_id in self.booked:
                return None
            around = [interval for ck, interval in reserved.items() if ck != cj]
            elsewhere = calendar(cases[cj], replace(state, busy=[*state.busy, session, *around]))
            if elsewhere.first_fit(not_before=self.grid.first, not_after=self.grid.last) is None:
                return None
        return own

    def return_moved(self, firsts: dict[str, _First], keepable: Mapping[str, int]) -> None:
        """Take back every move that made room for nobody: a young person placed away from the mentor they have goes
        back to that mentor when the mentor still has a place, the risk-weighted points and a first start for them.

        The flow counts places, not points, so it can move a young person to free a place for someone whom the
        points cap then refuses there (or whom no start fits after all, in every re-solve); the move would then place
        nobody. A return takes nobody's place, and frees one for the online matcher. It can let a young person moved
        to make room for this one go back too, so it repeats until nothing changes. The young people moved are found
        once; on a later pass one is checked again only once their mentor's state has changed since it refused them
        (a state is replaced on every change, and the checks are pure), so a pass costs what changed.
        """
        moved = sorted((first for rid, first in firsts.items() if rid in keepable and first.mentor != keepable[rid]),
                       key=lambda f: _priority(f.case))
        refused_by: dict[str, MentorState] = {}  # referral id -> the state of their mentor that last refused them
        changed = True
        while changed:
            changed = False
            staying: list[_First] = []
            for first in moved:
                referral_id, home = first.case.referral_id, keepable[first.case.referral_id]
                state = self.states[home]
                start = None
                if refused_by.get(referral_id) is not state and first_exclusion(first.case, state) is None:
                    start = calendar(first.case, state).first_fit(not_before=self.grid.first, not_after=self.grid.last)
                if start is None:  # refused: a place and the points, among others, or no start
                    refused_by[referral_id] = state
                    staying.append(first)
                    continue
                self.states[first.mentor] = without_booking(self.states[first.mentor], [first.session[0]],
                                                            first.case.tier)
                self._masks.pop(first.mentor, None)
                session = (start.astimezone(LONDON), (start + SESSION).astimezone(LONDON))
                self.book(home, first.case, [session])
                firsts[referral_id] = _First(first.case, home, session)
                changed = True
            moved = staying

    def follow_ups(self, first: _First) -> Match:
        """The first session and the tier's follow-ups, around every session given out so far."""
        state = self.states[first.mentor]
        busy = list(state.busy)
        busy.remove(first.session)  # the mentor's calendar without this young person's own first session
        own = to_utc(first.session[0])  # nor its venue: the programme holds it again, where it was placed
        places = {start: session for start, session in state.places.items() if start != own}
        sessions = sessions_from(first.case, replace(state, busy=busy, places=places), first.session[0])
        placed = place(venues_for(first.case, state), sessions[1:], state.itinerary)  # the first is placed already
        follow_ups = [interval for interval, _ in placed]
        where = {to_utc(start): (to_utc(start), to_utc(end), venue.place) for (start, end), venue in placed
                 if venue is not None}
        self.states[first.mentor] = replace(state, busy=[*state.busy, *follow_ups], places={**state.places, **where})
        self._masks.pop(first.mentor, None)
        due = deadline_for(first.case)
        return Match(state.record.id, [sessions[0], *follow_ups], first.session[0] <= due, due)

    def fill_or_explain(self, case: Case) -> Match | str:
        """The online matcher's answer for a case the flow left over: a booking, or the waitlist reason."""
        if not self.states:
            return NO_MENTORS
        counts: Counter[Rule] = Counter()
        wanted = self.case_starts(case)
        open_to: list[int] = []
        for mi, state in enumerate(self.states):
            ruled_out = first_exclusion(case, state)
            if ruled_out is not None:
                counts[ruled_out.rule] += 1
            elif self.mentor_starts(mi)[0] & wanted:
                open_to.append(mi)
            else:
                counts["no_slot"] += 1
        if open_to:
            held = self.held.get(case.referral_id)
            for group in ([held], open_to) if held in open_to else (open_to,):  # a mentor they have, first
                result = match(case, [self.states[mi] for mi in group], now=self.now)
                if isinstance(result, Match):
                    taker = next(mi for mi in group if self.states[mi].record.id == result.mentor_id)
                    return replace(result, sessions=self.book(taker, case, result.sessions))
            counts["no_slot"] += len(open_to)
        return summarise(case, counts, horizon_days=HORIZON_DAYS)

    def online(self, cases: Sequence[Case], *, to_beat: tuple[int, int],
               keep: Mapping[str, Match] | None = None) -> tuple[dict[str, Match], dict[str, str]] | None:
        """The online matcher's schedule of `cases` from these states: one after another, as the service books
        them (rooms held as it goes, as `bench.scheduling_quality.run_online` does), those who have a mentor first,
        each with that mentor where they still fit, then the rest, higher tiers first and the longest waiting.
        None as soon as it can no longer place more than `to_beat` (`_placed`): even if everyone left were placed.

        `keep` (referral id -> the flow's plan for a young person it kept with the mentor they have) come before
        all, each at the plan's sessions where they still fit: booked one at a time at the earliest start, two young
        people of one mentor can otherwise leave no start for the second, who would move though the plan kept both.
        """
        keep = keep or {}
        rooms = Rooms()
        assignments: dict[str, Match] = {}
        waitlisted: dict[str, str] = {}
        ordered = sorted(cases, key=lambda c: (c.referral_id not in keep, c.referral_id not in self.held,
                                               *_priority(c)))
        most = [sum(case.referral_id in self.booked for case in ordered), len(ordered)]  # were all the rest placed
        for case in ordered:
            held = self.held.get(case.referral_id)
            as_planned = self._as_planned(case, keep.get(case.referral_id))
            if as_planned is not None and self._hold(case, as_planned, rooms, assignments):
                continue
            result = None if held is None else match(case, [self.states[held]], now=self.now, rooms=rooms)
            if not isinstance(result, Match):
                result = match(case, self.states, now=self.now, rooms=rooms)
            if isinstance(result, Match) and self._hold(case, result, rooms, assignments):
                continue
            waitlisted[case.referral_id] = (result.reason if not isinstance(result, Match)
                                            else "no venue had a room for the first session")
            most[0] -= case.referral_id in self.booked
            most[1] -= 1
            if tuple(most) <= to_beat:
                return None
        return assignments, waitlisted

    def _hold(self, case: Case, result: Match, rooms: Rooms, assignments: dict[str, Match]) -> bool:
        """Book the match, each session at the first venue with a room within travel (one without is dropped);
        False when none has a room for any."""
        mi = self.by_id[result.mentor_id]
        state = self.states[mi]
        placed = rooms.place(venues_for(case, state), result.sessions, state.itinerary)
        if not placed:
            return False
        kept = [interval for interval, _ in placed]
        self.states[mi] = with_booking(state, kept, case.tier, venues=[venue for _, venue in placed])
        assignments[case.referral_id] = replace(result, sessions=kept)
        return True

    def _as_planned(self, case: Case, planned: Match | None) -> Match | None:
        """The plan's booking of the case, where its mentor still takes them and its first start still fits (the
        follow-ups fitted among more bookings, the plan's); None otherwise."""
        if planned is None:
            return None
        state = self.states[self.held[case.referral_id]]
        if state.record.id != planned.mentor_id or first_exclusion(case, state) is not None:
            return None
        return planned if calendar(case, state).fits(planned.sessions[0][0]) else None


# A case with no windows and no limits: `calendar(_ANYONE, mentor)` is the mentor's side of the calendar alone.
_ANYONE = Case(
    referral_id="",
    tier=Tier.LOW,
    borough="",
    languages=[],
    mentor_gender="any",
    preferred_language=None,
    availability=[],
    unsafe_areas=[],
    accepted_at=datetime(2000, 1, 1, tzinfo=LONDON),
)
_ALL_DAY = tuple(WeeklyWindow(day=day, start="00:00", end="23:59") for day in WEEKDAYS)
# A staff mentor free all day, every day: `calendar(case, _ANY_TIME)` is the case's side of the calendar alone.
_ANY_TIME = MentorState(
    record=MentorRecord(
        id="any-time",
        name="any time",
        kind="staff",
        boroughs=["City of London"],
        languages=["-"],
        gender="not_stated",
        max_caseload=1,
        availability=list(_ALL_DAY),
    ),
    caseload=0,
    busy=[],
)


def optimise(
    cases: Sequence[Case],
    mentors: Sequence[MentorState],
    *,
    now: datetime,
    pinned: Sequence[Pinned] = (),
    current: Mapping[str, str] | None = None,
    time_limit_s: float = 10,
) -> Allocation:
    """Place as many young people as the hard rules allow, higher tiers first, moving as few from the mentor they
    have as that allows, then the best match.

    `mentors` are the mentors as they stand without these referrals' assignments: `caseload` and `points` count
    neither the referrals in `cases` nor the pinned ones, and `busy` holds every session that stays, the pinned
    referrals' confirmed sessions included. A pinned referral keeps its mentor and takes one of that mentor's
    places, and its risk-weighted points when it is among `cases` (pass it there); it is left out of the result,
    in neither `assignments` nor `waitlisted`. `current` maps referrals in `cases` who have a mentor now (sessions
    booked, none confirmed) to that mentor: counted in `mentors` as neither their place nor their sessions, as for
    every referral in `cases`, and kept unless a move is what lets the round place someone, or the mentor cannot
    keep them (`Allocation.must_move`). `time_limit_s` bounds the repair re-solves only: the first
    min-cost flow always runs to optimality (building and solving it is about 6 s of a 10 s call at 500
    mentors × 5,000 referrals on two cores).

    Never fewer than the online matcher: the flow counts places, not the risk-weighted points, so where the points
    check (or a start taken) refuses picks at hand-out the plan can place fewer than the flow picked, and fewer
    than the online matcher would. Then, and only then (fewer picks, or fewer of those who have a mentor), the online
    matcher's schedule is made as well (`online`), twice: with those the plan kept with their mentor booked first at
    the plan's sessions, so that it moves nobody the plan kept, and as the online matcher alone makes it. The better
    is taken (the first on a tie) when it places more young people who have a mentor, or as many of them and more in
    all; the second only when it places more than the first, so a move it makes that the plan did not comes with a
    young person more placed. Where the plan places as many as the flow picked, and as many who have a mentor,
    nothing can place more (the flow relaxes the points, the overlaps and travel, its weights put anyone who has a
    mentor above anyone waiting, and its candidate starts lose no one while a mentor has at most `MAX_SLOTS`
    places), so the online schedule is not made.
    """
    started = perf_counter()
    _check_unique([case.referral_id for case in cases], "referral")
    _check_unique([mentor.record.id for mentor in mentors], "mentor")
    kept: dict[str, str] = {}
    for pin in pinned:
        if kept.setdefault(pin.referral_id, pin.mentor_id) != pin.mentor_id:
            raise ValueError(f"referral {pin.referral_id} is pinned to two mentors")
    held = {rid: mentor_id for rid, mentor_id in (current or {}).items() if rid not in kept}
    unknown = sorted(set(held) - {case.referral_id for case in cases})
    if unknown:
        raise ValueError(f"current mentors for referrals not in the round: {', '.join(unknown[:5])}")
    places = Counter(kept.values())
    load: dict[str, float] = defaultdict(float)
    for case in cases:
        if case.referral_id in kept:
            load[kept[case.referral_id]] += TIER_POINTS[case.tier]
    states = [
        replace(m, caseload=m.caseload + places[m.record.id], points=m.points + load[m.record.id])
        for m in sorted(mentors, key=lambda m: m.record.id)
    ]
    work = _Optimisation(list(states), now=now, current=held)
    pending = sorted((case for case in cases if case.referral_id not in kept), key=_priority)
    planned = list(pending)
    picked: tuple[int, int] | None = None  # the first flow's picks (`_placed`): the most any schedule places
    keepable, must_move = _keepable(work, [case for case in pending if case.referral_id in held], held)
    room = {mi: max(work.free(mi), 0) for mi in keepable.values()}  # before the round fills them
    firsts: dict[str, _First] = {}
    # First sessions for everyone before any follow-up, so a follow-up never takes a time a first one needs.
    for _ in range(MAX_SOLVES):
        if not pending or not states:
            break
        choices = work.solve(pending)
        if picked is None:
            picked = (sum(pending[ci].referral_id in held for ci in choices), len(choices))
        placed, failed = work.place_firsts(pending, choices)
        firsts.update(placed)
        pending = [case for case in pending if case.referral_id not in placed]
        if not failed or perf_counter() - started > time_limit_s:
            break
    work.return_moved(firsts, keepable)
    order = sorted(firsts.values(), key=lambda f: (-f.case.tier.rank, f.session[0], f.case.referral_id))
    assignments = {first.case.referral_id: work.follow_ups(first) for first in order}
    waitlisted: dict[str, str] = {}
    for case in pending:
        outcome = work.fill_or_explain(case)
        if isinstance(outcome, Match):
            assignments[case.referral_id] = outcome
        else:
            waitlisted[case.referral_id] = outcome
    online_placed, online_taken = None, False
    if picked is not None and _placed(assignments, held) < picked:  # the hand-out lost picks: online might do better
        # The online matcher's schedule, those the plan kept with their mentor first at the plan's sessions (no move
        # the plan did not make), and the online matcher's own: the better, the first on a tie.
        best = _placed(assignments, held)
        keep = {rid: m for rid, m in assignments.items() if held.get(rid) == m.mentor_id}
        for kept_first in (keep, {}):
            online = _Optimisation(list(states), now=now, current=held).online(planned, to_beat=best, keep=kept_first)
            if online is None:
                continue
            online_placed = max(online_placed or 0, len(online[0]))
            if _placed(online[0], held) > best:
                (assignments, waitlisted), online_taken = online, True
                best = _placed(assignments, held)
        online_placed = -1 if online_placed is None else online_placed
    must_move.update(_over_places(keepable, room, assignments, [state.record.id for state in states]))
    return Allocation(assignments, waitlisted, perf_counter() - started, must_move, work.urgent_level_dropped,
                      online_placed, online_taken)


def _placed(assignments: Mapping[str, Match], held: Mapping[str, str]) -> tuple[int, int]:
    """How a plan's placements rank, as the flow's weights rank them: young people who have a mentor, then all."""
    return sum(rid in held for rid in assignments), len(assignments)


def _keepable(work: _Optimisation, booked: list[Case], held: dict[str, str]) -> tuple[dict[str, int], dict[str, str]]:
    """Of the young people who have a mentor, those the mentor could keep on their own (referral id -> mentor
    index), and why the others' mentor cannot (referral id -> why)."""
    keepable: dict[str, int] = {}
    cannot: dict[str, str] = {}
    for case in booked:
        mi = work.held.get(case.referral_id)
        why = f"{held[case.referral_id]} is not registered" if mi is None else work.cannot_take(case, mi)
        if mi is not None and why is None:
            keepable[case.referral_id] = mi
        else:
            cannot[case.referral_id] = str(why)
    return keepable, cannot


def _over_places(keepable: dict[str, int], room: dict[int, int], assignments: dict[str, Match],
                 mentor_ids: list[str]) -> dict[str, str]:
    """Where a mentor has fewer places than the young people they could keep (a caseload cut), as many of those the
    plan moves as the mentor has too many: referral id -> why."""
    keeping = Counter(keepable.values())
    moved_off: dict[int, list[str]] = defaultdict(list)
    for referral_id, mi in keepable.items():
        if referral_id in assignments and assignments[referral_id].mentor_id != mentor_ids[mi]:
            moved_off[mi].append(referral_id)
    found: dict[str, str] = {}
    for mi, moved in moved_off.items():
        why = f"places for {room[mi]} of the {keeping[mi]} young people they have"
        found.update((referral_id, why) for referral_id in sorted(moved)[:keeping[mi] - room[mi]])
    return found


def _check_unique(ids: list[str], what: str) -> None:
    repeated = sorted(name for name, n in Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"{what} ids appear more than once: {', '.join(repeated[:5])}")
