"""Session times on the wire are Europe/London local time with that instant's offset, as the contract says:
+01:00 in British Summer Time, +00:00 in winter, never UTC's `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.contracts.common import SessionSlot
from shared.contracts.scheduling_rpc import BookedSession


@pytest.mark.parametrize(("utc", "on_the_wire"), [
    (datetime(2027, 7, 14, 15, 30, tzinfo=UTC), "2027-07-14T16:30:00+01:00"),  # BST
    (datetime(2027, 1, 14, 15, 30, tzinfo=UTC), "2027-01-14T15:30:00+00:00"),  # GMT
    (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), "2027-03-28T02:30:00+01:00"),  # the first minutes of BST
    (datetime(2027, 10, 31, 0, 30, tzinfo=UTC), "2027-10-31T01:30:00+01:00"),  # 01:30 happens twice: the first
    (datetime(2027, 10, 31, 1, 30, tzinfo=UTC), "2027-10-31T01:30:00+00:00"),  # and the second
])
def test_a_session_time_is_written_in_london_with_its_offset(utc: datetime, on_the_wire: str) -> None:
    slot = SessionSlot(session_id="ses_1", start=utc, end=utc + timedelta(hours=1))
    wire = slot.model_dump(mode="json")
    assert wire["start"] == on_the_wire
    assert SessionSlot.model_validate(wire).start == utc, "read back, the same instant"


def test_any_aware_time_and_a_naive_utc_one_are_written_the_same() -> None:
    new_york = datetime(2027, 7, 14, 11, 30, tzinfo=timezone(timedelta(hours=-4)))
    naive_utc = datetime(2027, 7, 14, 15, 30)
    assert BookedSession(session_id="s", start=new_york, end=naive_utc).model_dump(mode="json") == {
        "session_id": "s", "start": "2027-07-14T16:30:00+01:00", "end": "2027-07-14T16:30:00+01:00"}

