"""What the schedulers' pages need in the console's stack, made through the CLI as its admin: mentors of a language
no other test uses, referrals in that language, and a case waiting for a mentor at caseload."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.cluster import mentor, referral, unique_language
from tests.support.console import ConsoleStack, said


def import_mentors(stack: ConsoleStack, *mentors: dict[str, Any]) -> None:
    path = stack.home / f"mentors-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(list(mentors)))
    done = stack.reroute("mentors", "import", str(path))
    assert done.returncode == 0, said(done)


def refer(stack: ConsoleStack, language: str, outcome: str, **overrides: Any) -> str:
    """A referral from the agency `demo` in `language`; its referral id once scheduling has given it `outcome`
    (scheduled or waitlisted: `reroute submit` waits for it)."""
    arid = f"SCHED-{uuid.uuid4().hex[:8]}"
    path = stack.home / f"{arid}.json"
    path.write_text(json.dumps([referral(arid, language=language, **overrides)]))
    done = stack.reroute("submit", str(path), "--agency", "demo", "--timeout", "30")
    found = re.search(rf"{re.escape(arid)}\s*│\s*(ref_[0-9a-f]+)\s*│[^│]*│\s*{outcome}", done.stdout)
    assert found, said(done)
    return found[1]


@dataclass(frozen=True)
class Waiting:
    """`referral_id` waits ("at caseload"): `mentor_id` would take it but has one place, held by `taken`'s case
    (closing it frees the place); `far_mentor_id` speaks its language but does not cover its borough (Hackney)."""

    referral_id: str
    mentor_id: str
    far_mentor_id: str
    language: str
    taken: str


def waiting_at_caseload(stack: ConsoleStack) -> Waiting:
    language = unique_language()
    tag = uuid.uuid4().hex[:6]
    near, far = f"m-near-{tag}", f"m-far-{tag}"
    import_mentors(stack, mentor(near, language=language, max_caseload=1),
                   mentor(far, language=language, borough="Croydon"))
    first = refer(stack, language, "scheduled")
    second = refer(stack, language, "waitlisted")
    return Waiting(second, near, far, language, first)


def scheduled_with_another_who_fits(stack: ConsoleStack) -> tuple[str, str, str]:
    """A case booked with one mentor, and a second mentor registered since who could take it as well:
    (booked mentor, other mentor, referral)."""
    language = unique_language()
    tag = uuid.uuid4().hex[:6]
    booked, other = f"m-booked-{tag}", f"m-other-{tag}"
    import_mentors(stack, mentor(booked, language=language))
    referral_id = refer(stack, language, "scheduled")
    import_mentors(stack, mentor(other, language=language))
    return booked, other, referral_id


def rotl_mentor_with_a_session(stack: ConsoleStack) -> tuple[str, str]:
    """A rotl mentor (back by 17:00, sessions from 10:00 on licence days) with one case booked: (mentor, referral)."""
    language = unique_language()
    rotl = f"m-rotl-{uuid.uuid4().hex[:6]}"
    import_mentors(stack, mentor(rotl, language=language, kind="rotl", borough="Lewisham",
                                 licence={"return_by": "17:00", "window_start": "10:00"}))
    return rotl, refer(stack, language, "scheduled", borough="Lewisham")

