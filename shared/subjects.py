"""The one place where subjects, streams and durable consumer names are spelled.

Public subjects end in the agency id so NATS permissions can confine each agency to its own traffic.
A namespace (tests, side-by-side copies) prefixes every subject and stream name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGENCY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age_days: int


@dataclass(frozen=True)
class Subjects:
    namespace: str = ""

    def _s(self, subject: str) -> str:
        return f"{self.namespace}.{subject}" if self.namespace else subject

    def _stream(self, name: str) -> str:
        return f"{self.namespace.upper()}_{name}" if self.namespace else name

    # Public events (the contract in README.md)
    def submitted(self, agency: str = "*") -> str:
        return self._s(f"referrals.submitted.{agency}")

    def updated(self, agency: str = "*") -> str:
        return self._s(f"referrals.updated.{agency}")

    def accepted(self, agency: str = "*") -> str:
        return self._s(f"referrals.accepted.{agency}")

    def rejected(self, agency: str = "*") -> str:
        return self._s(f"referrals.rejected.{agency}")

    def assessed(self, agency: str = "*") -> str:
        return self._s(f"risk.assessed.{agency}")

    def alert(self, agency: str = "*") -> str:
        return self._s(f"safeguarding.alert.{agency}")

    def scheduled(self, agency: str = "*") -> str:
        return self._s(f"sessions.scheduled.{agency}")

    def waitlisted(self, agency: str = "*") -> str:
        return self._s(f"sessions.waitlisted.{agency}")

    def rescheduled(self, agency: str = "*") -> str:
        return self._s(f"sessions.rescheduled.{agency}")

    def cancelled(self, agency: str = "*") -> str:
        return self._s(f"sessions.cancelled.{agency}")

    def about_referrals(self, agency: str = "*") -> str:
        """Every referrals.* event of one agency (accepted, rejected), as its NATS permissions grant."""
        return self._s(f"referrals.*.{agency}")

    def sessions(self, agency: str = "*") -> str:
        """Every sessions.* event of one agency (scheduled, waitlisted, rescheduled, cancelled)."""
        return self._s(f"sessions.*.{agency}")

    def dead_letter(self, service: str) -> str:
        return self._s(f"deadletter.{service}")

    def rpc(self, service: str, verb: str) -> str:
        """Request-reply subjects the CLI uses, e.g. reroute.rpc.scheduling.calendar."""
        return self._s(f"reroute.rpc.{service}.{verb}")

    def agency_of(self, subject: str) -> str:
        """The agency id: the last token of a public subject."""
        return subject.rsplit(".", 1)[-1]

    # Streams: one per producing party, declared identically by every service (no drift).
    @property
    def referrals_stream(self) -> str:
        return self._stream("REFERRALS")

    @property
    def risk_stream(self) -> str:
        return self._stream("RISK")

    @property
    def safeguarding_stream(self) -> str:
        return self._stream("SAFEGUARDING")

    @property
    def sessions_stream(self) -> str:
        return self._stream("SESSIONS")

    @property
    def dead_letter_stream(self) -> str:
        return self._stream("DEADLETTER")

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(self.referrals_stream, [self._s("referrals.>")], max_age_days=30),
            StreamSpec(self.risk_stream, [self._s("risk.>")], max_age_days=30),
            StreamSpec(self.safeguarding_stream, [self._s("safeguarding.>")], max_age_days=90),
            StreamSpec(self.sessions_stream, [self._s("sessions.>")], max_age_days=30),
            StreamSpec(self.dead_letter_stream, [self._s("deadletter.>")], max_age_days=90),
        ]

    def durable(self, service: str, what: str) -> str:
        """Durable consumer name, shared by every replica of a service so they split the work."""
        return f"{service}-{what}"


DUPLICATE_WINDOW_SECONDS = 300
