"""Cases and mentors for the matcher's tests: builders whose defaults match each other (a staff mentor in
Hackney speaking English, free 09:00-17:00 every day; a medium-tier case there), and hypothesis strategies that
draw them across the rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from services.scheduling.matching import LONDON, Case, MentorState
from shared.contracts.codes import WEEKDAYS, Tier, Weekday
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import Licence, MentorKind, MentorRecord

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # a Monday
Interval = tuple[datetime, datetime]


def window(day: Weekday, start: str, end: str) -> WeeklyWindow:
    return WeeklyWindow(day=day, start=start, end=end)


ALL_WEEK = [window(day, "09:00", "17:00") for day in WEEKDAYS]


def mentor(
    mentor_id: str = "m1",
    *,
    kind: MentorKind = "staff",
    boroughs: tuple[str, ...] = ("Hackney",),
    languages: tuple[str, ...] = ("en",),
    gender: str = "female",
    max_caseload: int = 4,
    availability: list[WeeklyWindow] | None = None,
    return_by: str = "22:00",
    zones: tuple[str, ...] = (),
    caseload: int = 0,
    busy: tuple[Interval, ...] = (),
) -> MentorState:
    licence = Licence(return_by=return_by, exclusion_zones=list(zones)) if kind == "rotl" or zones else None
    record = MentorRecord.model_validate(
        {
            "id": mentor_id,
            "name": f"Mentor {mentor_id}",
            "kind": kind,
            "boroughs": list(boroughs),
            "languages": list(languages),
            "gender": gender,
            "max_caseload": max_caseload,
            "availability": ALL_WEEK if availability is None else availability,
            "licence": licence,
            "vetting": {"enhanced_check_expires": "2030-12-31"},  # in force: without one a mentor takes no case
        }
    )
    return MentorState(record=record, caseload=caseload, busy=list(busy))


def case(**changes: Any) -> Case:
    base = Case(
        referral_id="r1",
        tier=Tier.MEDIUM,
        borough="Hackney",
        languages=["en"],
        mentor_gender="any",
        preferred_language=None,
        availability=[],
        unsafe_areas=[],
        accepted_at=NOW,
    )
    return replace(base, **changes)


# --- strategies ------------------------------------------------------------------------------------------------

BOROUGHS = ["Hackney", "Lambeth", "Southwark"]
PLACES = ["Hackney", "lambeth", "Peckham", "Brixton"]
LANGUAGES = ["en", "so", "pl"]


@st.composite
def windows(draw: st.DrawFn, max_size: int) -> list[WeeklyWindow]:
    found = []
    for _ in range(draw(st.integers(0, max_size))):
        start = draw(st.integers(0, 22 * 12)) * 5
        end = min(start + draw(st.integers(6, 72)) * 5, 23 * 60 + 59)
        found.append(
            window(
                draw(st.sampled_from(WEEKDAYS)),
                f"{start // 60:02d}:{start % 60:02d}",
                f"{end // 60:02d}:{end % 60:02d}",
            )
        )
    return found


@st.composite
def mentors(draw: st.DrawFn, mentor_id: str) -> MentorState:
    kind: MentorKind = draw(st.sampled_from(["staff", "volunteer", "rotl"]))
    max_caseload = draw(st.integers(0, 4))
    busy = []
    for _ in range(draw(st.integers(0, 3))):
        start = NOW + timedelta(minutes=30 * draw(st.integers(0, 30 * 48)))
        busy.append((start, start + timedelta(minutes=draw(st.sampled_from([30, 60, 90, 180])))))
    return mentor(
        mentor_id,
        kind=kind,
        boroughs=tuple(
            draw(st.just(BOROUGHS) | st.lists(st.sampled_from(BOROUGHS), min_size=1, max_size=3, unique=True))
        ),
        languages=tuple(
            draw(st.just(["en"]) | st.lists(st.sampled_from(LANGUAGES), min_size=1, max_size=3, unique=True))
        ),
        gender=draw(st.sampled_from(["female", "male", "non_binary"])),
        max_caseload=max_caseload,
        availability=draw(windows(6)),
        return_by=f"{draw(st.integers(12, 23)):02d}:{draw(st.sampled_from([0, 30])):02d}",
        zones=tuple(draw(st.lists(st.sampled_from(PLACES), max_size=2, unique=True))) if kind == "rotl" else (),
        caseload=draw(st.integers(0, max_caseload) | st.just(0)),
        busy=tuple(busy),
    )


@st.composite
def cases(draw: st.DrawFn, referral_id: str) -> Case:
    return case(
        referral_id=referral_id,
        tier=draw(st.sampled_from(list(Tier))),
        borough=draw(st.sampled_from(BOROUGHS)),
        languages=draw(st.just(["en"]) | st.lists(st.sampled_from(LANGUAGES), min_size=1, max_size=2, unique=True)),
        mentor_gender=draw(st.sampled_from(["any", "any", "any", "female", "male"])),
        preferred_language=draw(st.none() | st.sampled_from(LANGUAGES)),
        availability=draw(st.just([]) | windows(3)),
        unsafe_areas=draw(st.lists(st.sampled_from(PLACES), max_size=2, unique=True)),
        accepted_at=NOW - timedelta(hours=draw(st.integers(0, 72))),
    )
