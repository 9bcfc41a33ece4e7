"""Seeded, London-like scheduling instances for the quality benchmark (bench/scheduling_quality.py).

Same (mentors, referrals, seed, GENERATOR_VERSION) → same instance. Bump the version whenever a draw changes,
so numbers in docs/scheduling-benchmark.md stay comparable only with their own generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.scheduling.constraints import TIER_POINTS, Case, GenderRequest, MentorState
from services.scheduling.routes import NEIGHBOURS
from shared.contracts.codes import LONDON_BOROUGHS, Gender, Tier, place_key
from shared.contracts.common import WeeklyWindow
from shared.contracts.scheduling import Licence, MentorKind, MentorRecord, VenueRecord, Vetting

GENERATOR_VERSION = 3
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # a Monday; the 28-day horizon crosses the spring clock change
AREA_BOROUGH = {  # neighbourhoods named as unsafe areas, and the borough each lies in
    "Peckham": "Southwark", "Brixton": "Lambeth", "Tottenham": "Haringey", "Stratford": "Newham",
    "Walworth": "Southwark", "Edmonton": "Enfield", "Harlesden": "Brent", "Deptford": "Lewisham",
}
AREAS = tuple(AREA_BOROUGH)
SECOND_LANGUAGES = ("so", "pl", "bn", "ur", "pt", "ar", "tr", "es", "yo")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Instance:
    """One planning round: the mentors as they stand and the referrals waiting."""

    name: str
    seed: int
    now: datetime
    mentors: list[MentorState]
    cases: list[Case]


def _window(day: str, start: str, end: str) -> WeeklyWindow:
    return WeeklyWindow.model_validate({"day": day, "start": start, "end": end})


def _near(rng: random.Random, home: str, most: int) -> list[str]:
    """`home` and up to `most` of its neighbours on the map, home first."""
    neighbours = list(NEIGHBOURS[home])
    return [home, *rng.sample(neighbours, rng.randint(0, min(most, len(neighbours))))]


def london_venues(rng: random.Random) -> list[VenueRecord]:
    """In each borough: a staffed office, a staffed youth centre (in a named area where there is one) and an
    unstaffed library."""
    venues = []
    for borough in LONDON_BOROUGHS:
        key = "-".join(place_key(borough).split())
        area = next((a for a, b in AREA_BOROUGH.items() if b == borough), None)
        venues += [
            VenueRecord(id=f"{key}-office", name=f"{borough} office", borough=borough, rooms=rng.randint(6, 10)),
            VenueRecord(id=f"{key}-youth", name=f"{borough} youth centre", borough=borough, area=area,
                        rooms=rng.randint(2, 4)),
            VenueRecord(id=f"{key}-library", name=f"{borough} library", borough=borough, staffed=False, rooms=2),
        ]
    return venues


def _mentor_windows(rng: random.Random, kind: MentorKind) -> list[WeeklyWindow]:
    if kind == "staff":
        days = rng.sample(WEEKDAYS, rng.choice([3, 4, 5]))
        late = rng.random() < 0.4
        return [_window(d, "09:00", "17:00") for d in days] + ([_window("thu", "17:00", "20:00")] if late else [])
    if kind == "volunteer":
        evenings = [
            _window(d, rng.choice(["17:30", "18:00"]), "20:00") for d in rng.sample(WEEKDAYS, rng.randint(1, 2))
        ]
        weekend = [_window(rng.choice(["sat", "sun"]), "10:00", "13:00")] if rng.random() < 0.5 else []
        return evenings + weekend
    return [
        _window(d, "10:00", rng.choice(["14:00", "15:00", "16:00"])) for d in rng.sample(WEEKDAYS, rng.randint(1, 3))
    ]


def _young_person_windows(rng: random.Random) -> list[WeeklyWindow]:
    if rng.random() < 0.35:
        return []  # any time
    after_school = [
        _window(d, rng.choice(["15:30", "16:00"]), rng.choice(["18:30", "19:00", "20:00"]))
        for d in rng.sample(WEEKDAYS, rng.randint(1, 4))
    ]
    if rng.random() < 0.3:  # out of education: free in the day too
        after_school.append(_window(rng.choice(WEEKDAYS), "10:00", "15:00"))
    if rng.random() < 0.4:
        after_school.append(_window(rng.choice(["sat", "sun"]), "10:00", "16:00"))
    return after_school


def _busy(rng: random.Random, windows: list[WeeklyWindow], caseload: int, now: datetime) -> list[Interval]:
    """One weekly session per current young person, for nine weeks, at a time inside the mentor's windows."""
    busy: list[Interval] = []
    monday = now.date() - timedelta(days=now.weekday())
    for _ in range(caseload if windows else 0):
        window = rng.choice(windows)
        first = -(-(window.start_time.hour * 60 + window.start_time.minute) // 30) * 30
        last = window.end_time.hour * 60 + window.end_time.minute - 60
        if last < first:
            continue
        minutes = rng.randrange(first, last + 1, 30)
        day = monday + timedelta(days=ALL_DAYS.index(window.day))
        for week in range(9):
            start = datetime.combine(day + timedelta(days=7 * week), time(minutes // 60, minutes % 60), tzinfo=LONDON)
            if all(start + timedelta(hours=1) <= b or e <= start for b, e in busy):
                busy.append((start, start + timedelta(hours=1)))
    return busy


def _mentor(
    rng: random.Random, index: int, now: datetime, venues: list[VenueRecord], *, loose_points: bool
) -> MentorState:
    kinds: list[MentorKind] = ["staff", "volunteer", "rotl"]
    kind = rng.choices(kinds, weights=[35, 45, 20])[0]
    max_caseload = {"staff": rng.randint(14, 20), "volunteer": rng.randint(4, 6), "rotl": 3}[kind]
    home = rng.choice(LONDON_BOROUGHS)
    boroughs = _near(rng, home, 2)
    theirs = tuple(v for v in venues if v.borough in boroughs)
    languages = ["en"] + ([rng.choice(SECOND_LANGUAGES)] if rng.random() < 0.3 else [])
    genders: list[Gender] = ["female", "male", "non_binary"]
    gender = rng.choices(genders, weights=[50, 45, 5])[0]
    windows = _mentor_windows(rng, kind)
    licence = None
    if kind == "rotl":
        further = sorted({n for b in NEIGHBOURS[home] for n in NEIGHBOURS[b]} - {home, *boroughs})
        zones = rng.sample(AREAS, rng.randint(0, 2)) + rng.sample(further, rng.randint(0, 1))
        approved = [v.id for v in theirs if v.staffed] if rng.random() < 0.5 else None
        licence = Licence(return_by=rng.choice(["15:00", "16:30", "17:00", "19:00"]), exclusion_zones=zones,
                          establishment_borough=rng.choice(LONDON_BOROUGHS), approved_venues=approved)
    experienced = kind == "volunteer" and rng.random() < 0.3
    record = MentorRecord(
        id=f"m{index:04d}",
        name=f"Mentor {index}",
        kind=kind,
        boroughs=boroughs,
        languages=languages,
        gender=gender,
        max_caseload=max_caseload,
        availability=windows,
        licence=licence,
        experience="experienced" if experienced else None,
        max_points=3.0 * max_caseload if loose_points else None,
        vetting=Vetting(enhanced_check_expires=date(2030, 12, 31)),
    )
    caseload = rng.randint(0, max_caseload // 3)
    tiers = list(Tier) if kind == "staff" or experienced else [Tier.LOW, Tier.MEDIUM]
    points = sum(TIER_POINTS[rng.choice(tiers)] for _ in range(caseload))
    return MentorState(record=record, caseload=caseload, busy=_busy(rng, windows, caseload, now), points=points,
                       venues=theirs)


def draw_case(rng: random.Random, index: int, now: datetime, borough_weights: list[float]) -> Case:
    borough = rng.choices(LONDON_BOROUGHS, weights=borough_weights)[0]
    roll = rng.random()
    languages = (
        ["en"]
        if roll < 0.85
        else ["en", rng.choice(SECOND_LANGUAGES)]
        if roll < 0.95
        else [rng.choice(SECOND_LANGUAGES)]
    )
    preferred = next((lang for lang in languages if lang != "en"), None) if rng.random() < 0.7 else None
    requests: list[GenderRequest] = ["any", "not_stated", "male", "female", "non_binary"]
    wanted = rng.choices(requests, weights=[62, 10, 14, 12, 2])[0]
    neighbours = _near(rng, borough, 1)[1:]
    tier = rng.choices(list(Tier), weights=[30, 35, 25, 10])[0]
    return Case(
        referral_id=f"r{index:05d}",
        tier=tier,
        borough=borough,
        languages=languages,
        mentor_gender=wanted,
        preferred_language=preferred,
        availability=_young_person_windows(rng),
        unsafe_areas=rng.sample(AREAS, rng.randint(0, 2)) + neighbours[: rng.randint(0, 1)],
        accepted_at=now - timedelta(minutes=rng.randint(0, 14 * 24 * 60)),
        staffed_only=tier.rank >= Tier.HIGH.rank and rng.random() < 0.5,  # harm high or above, or risk to staff
    )


def generate(
    n_mentors: int, n_referrals: int, *, seed: int, now: datetime = NOW, loose_points: bool = True
) -> Instance:
    """A planning round with `n_mentors` mentors (staff/volunteer/rotl) and `n_referrals` waiting referrals.

    `loose_points` sets every risk-weighted points cap to 3 × max_caseload, out of reach, so that the bound in
    scheduling_quality.py (a flow, which cannot count points) stays exact; False keeps the records' default
    (2 × max_caseload), where the cap binds for mentors given many high-tier cases.
    """
    rng = random.Random(f"{GENERATOR_VERSION}:{n_mentors}:{n_referrals}:{seed}")
    venues = london_venues(rng)
    mentors = [_mentor(rng, i, now, venues, loose_points=loose_points) for i in range(n_mentors)]
    # Demand is uneven across boroughs, as it is in London: a few boroughs carry several times the average.
    borough_weights = [rng.choice([1.0, 1.0, 1.5, 3.0]) for _ in LONDON_BOROUGHS]
    cases = [draw_case(rng, i, now, borough_weights) for i in range(n_referrals)]
    return Instance(f"{n_mentors}x{n_referrals}", seed, now, mentors, cases)
