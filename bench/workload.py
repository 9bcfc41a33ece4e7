"""What the pipeline benches send: a realistic registry (mentors of all three kinds across the 33 boroughs, the
boroughs' venues with rooms, leave) and referrals drawn from the same sample distribution (bench/instances.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nats.aio.client import Client as NatsClient

from bench.instances import NOW, draw_case, generate, london_venues
from services.scheduling.slots import LONDON
from shared.contracts.codes import LONDON_BOROUGHS, Tier
from shared.subjects import Subjects

AGENCY = "bench"  # the agency the bench submits as
MILD = ["peers_offending", "unstructured_time", "family_conflict", "substance_use", "ete_disengaged"]
LIKELY = ["peers_offending", "ete_disengaged", "substance_use", "family_conflict", "attitudes_supporting_violence",
          "impulsivity_or_anger"]
# Indicators that make risk's rules give about the tier the sample drew (bench/instances.py: 30 % low, 35 % medium,
# 25 % high, 10 % very high); risk decides the tier, and the bench reports what it decided.
INDICATORS_FOR: dict[Tier, Callable[[random.Random], list[str]]] = {
    Tier.LOW: lambda rng: rng.sample(MILD[:3], rng.randint(1, 2)),
    Tier.MEDIUM: lambda rng: ["unstructured_time", *rng.sample(LIKELY, 5)],
    Tier.HIGH: lambda rng: ["weapon_carrying", *rng.sample(MILD, 2)],
    Tier.VERY_HIGH: lambda rng: ["threat_to_life_warning", *rng.sample(MILD, 2)],
}


def agency_referral_id(i: int) -> str:
    return f"B-{i}"


def index_of(agency_referral_id: str) -> int | None:
    """The bench's number of a referral, from the agency's own id it was sent with (None: not the bench's)."""
    number = agency_referral_id.removeprefix("B-")
    return int(number) if number != agency_referral_id and number.isdigit() else None


def _letters(i: int) -> str:
    """A distinct run of letters per number (intake matches people on names' letters, so digits would make
    every bench referral the same young person)."""
    word = ""
    while True:
        i, rest = divmod(i, 26)
        word = chr(ord("a") + rest) + word
        if i == 0:
            return word


def referral(i: int, rng: random.Random, weights: list[float]) -> bytes:
    """A referral drawn from the sample distribution of bench/instances.py: borough (uneven demand), languages,
    gender request, availability, unsafe areas, and indicators for a tier."""
    case = draw_case(rng, i, NOW, weights)
    preferences: dict[str, object] = {"mentor_gender": case.mentor_gender}
    if case.preferred_language:
        preferences["language"] = case.preferred_language
    return json.dumps({
        "agency_referral_id": agency_referral_id(i),
        "referrer": {"name": "Bench Referrer", "role": "YOT", "email": "bench@example.org"},
        "young_person": {"given_name": "Bench", "family_name": f"Person{_letters(i)}", "date_of_birth": "2010-03-04",
                         "gender": rng.choice(["male", "female"]), "borough": case.borough,
                         "languages": case.languages},
        "consent": {"given": True, "recorded_at": "2026-11-20T10:00:00+00:00"},
        "reason": "Benchmark referral.",
        "indicators": INDICATORS_FOR[case.tier](rng),
        "unsafe_areas": case.unsafe_areas,
        "preferences": preferences,
        "availability": [w.model_dump(mode="json") for w in case.availability],
    }).encode()


def referrals(n: int, seed: int) -> list[bytes]:
    rng = random.Random(f"referrals:{seed}")
    weights = [rng.choice([1.0, 1.0, 1.5, 3.0]) for _ in LONDON_BOROUGHS]  # a few boroughs carry several times more
    return [referral(i, rng, weights) for i in range(n)]


@dataclass(frozen=True)
class Registry:
    """Mentors of all three kinds across the 33 boroughs, the boroughs' venues with their rooms, and leave."""

    mentors: list[dict[str, Any]]
    venues: list[dict[str, Any]]
    leave: list[dict[str, str]]


def registry(n_mentors: int, seed: int) -> Registry:
    """bench/instances.py's London registry (staff, volunteers, rotl mentors with licences; the risk-weighted
    points caps left at the records' default), with a tenth of the mentors on leave for a few days."""
    inst = generate(n_mentors, 0, seed=seed, loose_points=False)
    rng = random.Random(f"registry:{seed}")
    today = datetime.now(LONDON).date()
    leave = []
    for state in rng.sample(inst.mentors, n_mentors // 10):
        first = today + timedelta(days=rng.randint(0, 20))
        leave.append({"mentor_id": state.record.id, "first_day": first.isoformat(),
                      "last_day": (first + timedelta(days=rng.randint(1, 7))).isoformat()})
    return Registry([s.record.model_dump(mode="json", exclude_none=True) for s in inst.mentors],
                    [v.model_dump(mode="json", exclude_none=True) for v in london_venues(random.Random(seed))], leave)


async def register(nc: NatsClient, subjects: Subjects, reg: Registry) -> None:
    for verb, body in (("venues.import", {"venues": reg.venues}), ("mentors.import", {"mentors": reg.mentors})):
        reply = json.loads((await nc.request(subjects.rpc("scheduling", verb), json.dumps(body).encode(),
                                             timeout=120)).data)
        if reply.get("errors") or reply.get("error"):
            raise RuntimeError(f"{verb}: {reply}")
    for leave in reg.leave:
        await nc.request(subjects.rpc("scheduling", "mentors.leave"), json.dumps(leave).encode(), timeout=30)
