"""What an agency may be told of its referral: nothing of a mentor's vetting, licence or conflict register, and no
operator's name or note. Those stay with schedulers (scheduling's status reply `reason`, `reroute status`)."""

from __future__ import annotations

SCHEDULERS_ONLY = ("licence", "enhanced check", "vetting", "dbs", "exclusion zone", "conflict", "rotl", "expired",
                   "assigned by", "barred")


def assert_told_neutrally(reason: str, *private: str) -> None:
    """`reason`, as an agency received it, says none of `SCHEDULERS_ONLY` nor any of `private` (mentor ids, an
    operator's name or note)."""
    said = reason.casefold()
    for word in (*SCHEDULERS_ONLY, *private):
        assert word.casefold() not in said, f"the agency was told {word!r}: {reason!r}"
