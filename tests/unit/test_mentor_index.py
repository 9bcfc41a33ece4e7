"""The matcher's shortcuts skip only what the full check would rule out: the index's candidates, the safe venues
shared between mentors, and a calendar changed without `dataclasses.replace` (its worked-out values carried over)."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta
from functools import cached_property

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.constraints import (
    MentorIndex,
    MentorState,
    candidate_exclusion,
    first_exclusion,
    venues_for,
)
from services.scheduling.matching import with_booking
from services.scheduling.slots import _WORKED_OUT_FROM, Calendar
from shared.contracts.scheduling import VenueRecord
from tests.support.matching import NOW, case, cases, mentor, mentors, window

# The rules the index answers for; any other rule must be checked on every candidate it gives.
INDEXED = {"borough", "vetting", "licence", "language", "capacity", "tier"}


@st.composite
def any_mentor(draw: st.DrawFn, mentor_id: str) -> MentorState:
    """`mentors()` and also mentors without a check in force, with a suspended licence, experienced volunteers."""
    state = draw(mentors(mentor_id))
    record = state.record
    if record.kind == "volunteer" and draw(st.booleans()):
        record = record.model_copy(update={"experience": "experienced"})
    if record.licence is not None and draw(st.booleans()):
        record = record.model_copy(update={"licence": record.licence.model_copy(update={"suspended": True})})
    return replace(state, record=record, without_check=draw(st.booleans()))


def _ids(found: list[MentorState]) -> set[str]:
    return {m.record.id for m in found}


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_mentor_the_index_leaves_out_fails_one_of_its_rules(data: st.DataObject) -> None:
    pool = [data.draw(any_mentor(f"m{i}")) for i in range(data.draw(st.integers(1, 8)))]
    index = MentorIndex(pool)
    for n in range(data.draw(st.integers(1, 4))):
        the_case = data.draw(cases(f"r{n}"))
        the_case = replace(the_case, languages=data.draw(st.sampled_from([the_case.languages, ["EN"], [" so ", "PL"]])))
        chosen = _ids(index.candidates(the_case))
        for m in pool:
            found = first_exclusion(the_case, m)
            if m.record.id not in chosen:
                assert found is not None and found.rule in INDEXED, (m.record.id, found)
            else:
                if found is not None:
                    assert found.rule not in INDEXED, (m.record.id, found)
                assert candidate_exclusion(the_case, m) == first_exclusion(the_case, m, venue=False)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_index_follows_each_new_state(data: st.DataObject) -> None:
    """After bookings (a mentor reaching their caseload), a mentor's new boroughs and a mentor removed, the
    index gives what one built afresh from the same mentors gives."""
    pool = {m.record.id: m for m in (data.draw(any_mentor(f"m{i}")) for i in range(data.draw(st.integers(1, 6))))}
    index = MentorIndex(pool.values())
    for step in range(data.draw(st.integers(1, 6))):
        mentor_id = data.draw(st.sampled_from(sorted(pool)))
        change = data.draw(st.sampled_from(["book", "move", "remove"]))
        if change == "remove":
            del pool[mentor_id], index[mentor_id]
            if not pool:
                return
        else:
            state = pool[mentor_id]
            if change == "book":
                start = NOW + timedelta(days=1 + step)
                state = with_booking(state, [(start, start + timedelta(hours=1))])
            else:
                boroughs = data.draw(st.sampled_from([["Hackney"], ["Lambeth", "Southwark"]]))
                state = replace(state, record=state.record.model_copy(update={"boroughs": boroughs}))
            pool[mentor_id] = index[mentor_id] = state
        afresh = MentorIndex(pool.values())
        assert list(index) == list(afresh)
        for n in range(3):
            the_case = data.draw(cases(f"r{step}-{n}"))
            assert _ids(index.candidates(the_case)) == _ids(afresh.candidates(the_case))
            assert _ids(index.covering(the_case.borough_key)) == _ids(afresh.covering(the_case.borough_key))


def test_mentors_with_the_same_venues_but_other_licence_conditions_do_not_share_safe_venues() -> None:
    venues = (VenueRecord(id="v-hackney", name="Hackney hub", borough="Hackney", area="Dalston"),
              VenueRecord(id="v-clapton", name="Clapton hub", borough="Hackney", area="Clapton"))
    staff = replace(mentor("s1"), venues=venues)
    zoned = replace(mentor("r1", kind="rotl", zones=("Clapton",)), venues=venues)
    free = replace(mentor("r2", kind="rotl"), venues=venues)
    the_case = case(unsafe_areas=["Peckham"])
    for order in ((staff, zoned, free), (zoned, free, staff), (free, zoned, staff)):
        fresh = {m.record.id: replace(m) for m in order}  # nothing cached on any; asked in this order
        found = {mentor_id: [v.venue.id for v in venues_for(the_case, m)] for mentor_id, m in fresh.items()}
        both = ["v-clapton", "v-hackney"]
        assert found == {"s1": both, "r1": ["v-hackney"], "r2": both}  # Clapton is in r1's zones


def test_venue_records_read_again_with_other_contents_get_their_own_answer() -> None:
    before = (VenueRecord(id="v1", name="Hub", borough="Hackney", staffed=True),)
    after = (VenueRecord(id="v1", name="Hub", borough="Hackney", staffed=False),)  # the same id, now unstaffed
    staffed_case = case(staffed_only=True)
    assert [v.venue.id for v in venues_for(staffed_case, replace(mentor("a"), venues=before))] == ["v1"]
    assert venues_for(staffed_case, replace(mentor("a"), venues=after)) == ()


def test_a_changed_calendar_is_what_replace_makes_without_what_was_worked_out() -> None:
    start = NOW + timedelta(days=1)
    own = mentor(busy=((start, start + timedelta(hours=1)),)).own_calendar
    own._overlaps(start)  # works out and caches the busy index
    changed = own.booked(start + timedelta(hours=3))
    assert changed == replace(own, busy=(*own.busy, (start + timedelta(hours=3), start + timedelta(hours=4))))
    assert "_busy_index" not in changed.__dict__
    assert changed._overlaps(start + timedelta(hours=3)) and not own._overlaps(start + timedelta(hours=3))
    with pytest.raises(TypeError, match="no field busy_until"):
        own.changed(busy_until=None)


def test_a_changed_calendar_keeps_what_was_worked_out_only_from_fields_that_did_not_change() -> None:
    windows = (window("mon", "16:00", "18:00"), window("mon", "19:00", "20:00"), window("sat", "10:00", "12:00"))
    cal = mentor().own_calendar.changed(young_person_windows=windows)
    spans = cal._young_spans
    assert spans == {"mon": ((time(16), time(18)), (time(19), time(20))), "sat": ((time(10), time(12)),)}
    assert cal.booked(NOW + timedelta(days=1))._young_spans is spans  # the same windows: carried over
    other = cal.changed(young_person_windows=(window("sun", "10:00", "11:00"),))
    assert other._young_spans == {"sun": ((time(10), time(11)),)}
    # Every cached property of Calendar names the field it is worked out from, so that `changed` knows it.
    assert {name for name, value in vars(Calendar).items() if isinstance(value, cached_property)} == set(
        _WORKED_OUT_FROM)
