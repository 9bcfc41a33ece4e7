"""The fast online match makes exactly the choice the full ranking would (`rank(...)[0]`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.matching import Match, match, rank, with_booking
from tests.support.matching import NOW, cases, mentors


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_match_picks_the_top_ranked_option(data: st.DataObject) -> None:
    pool = [data.draw(mentors(f"m{i}")) for i in range(data.draw(st.integers(1, 6)))]
    for n in range(data.draw(st.integers(1, 6))):
        case = data.draw(cases(f"r{n}"))
        options = rank(case, pool, now=NOW)
        result = match(case, pool, now=NOW)
        if not options:
            assert not isinstance(result, Match)
            continue
        assert isinstance(result, Match)
        assert result.mentor_id == options[0].mentor_id
        assert result.sessions[0] == options[0].first
        assert result.deadline_met == options[0].deadline_met
        index = next(i for i, m in enumerate(pool) if m.record.id == result.mentor_id)
        pool[index] = with_booking(pool[index], result.sessions, case.tier)
