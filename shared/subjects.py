"""The one place where subjects, streams and durable consumer names are spelled.

Public subjects end in the agency id so NATS permissions can confine each agency to its own traffic.
A namespace (tests, side-by-side copies) prefixes every subject and stream name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AGENCY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

DUPLICATE_WINDOW_SECONDS = 300
"""How long a stream of events drops a re-publish of the same `Nats-Msg-Id` (an outbox row sent again)."""

SUBMISSION_DUPLICATE_WINDOW_SECONDS = 0.1
"""The submissions stream's duplicate window: the least the server allows (100 ms; 0 would mean its default of
2 minutes). See `Subjects.streams` for why agencies' submissions are de-duplicated by intake instead."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age_days: int
    """0: no age limit (the submissions stream: a message stays until intake has processed it)."""
    retention: Literal["limits", "workqueue"] = "limits"
    duplicate_window: float = DUPLICATE_WINDOW_SECONDS


@dataclass(frozen=True)
class AgencyOutcomes:
    """One of an agency's durable consumers of its own outcomes (`Subjects.agency_outcomes`)."""

    stream: str
    durable: str
    """`agency-<id>`: the same name on each stream."""
    filter_subject: str
    """The agency's own subjects in that stream, and nothing else."""
    deliver_subject: str
    """Where the server pushes them: `_INBOX_AGENCY.<id>.outcomes.<stream>`, which only the agency may read."""


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

    def withdraw(self, agency: str = "*") -> str:
        """An agency asks to withdraw one of its referrals (consent withdrawn, referred in error): its request, which
        intake answers on `withdrawn` (or `rejected`)."""
        return self._s(f"referrals.withdraw.{agency}")

    def accepted(self, agency: str = "*") -> str:
        return self._s(f"referrals.accepted.{agency}")

    def rejected(self, agency: str = "*") -> str:
        return self._s(f"referrals.rejected.{agency}")

    def withdrawn(self, agency: str = "*") -> str:
        """Intake recorded an agency's withdrawal of its referral: the agency's answer."""
        return self._s(f"referrals.withdrawn.{agency}")

    # Internal events: for the services only (no agency's permissions name them)
    def recorded(self, agency: str = "*") -> str:
        """Intake's pseudonymous facts of an accepted referral, for risk and scheduling: outside `referrals.>`, so
        no agency's `referrals.*.<agency>` permission reaches it (it says whether the child is known)."""
        return self._s(f"intake.recorded.{agency}")

    def recorded_withdrawal(self, agency: str = "*") -> str:
        """Intake recorded a withdrawal, for scheduling (which closes the case): beside `recorded`, in its stream."""
        return self._s(f"intake.withdrawn.{agency}")

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
        """Every referrals.* event of one agency (accepted, rejected, withdrawn), as its NATS permissions grant: nothing here
        may say anything about another agency's referrals."""
        return self._s(f"referrals.*.{agency}")

    def sessions(self, agency: str = "*") -> str:
        """Every sessions.* event of one agency (scheduled, waitlisted, rescheduled, cancelled)."""
        return self._s(f"sessions.*.{agency}")

    def dead_letter(self, service: str) -> str:
        return self._s(f"deadletter.{service}")

    def rpc(self, service: str, verb: str) -> str:
        """Request-reply subjects the CLI uses, e.g. reroute.rpc.scheduling.calendar."""
        return self._s(f"reroute.rpc.{service}.{verb}")

    def ask(self, person: str, service: str, verb: str) -> str:
        """A person's request, e.g. reroute.ask.alice.risk.override: it ends in nothing a caller chooses freely, as
        each person's NATS permissions name only their own id here, so the service reads who asked from it."""
        return self._s(f"reroute.ask.{person}.{service}.{verb}")

    def asker(self, subject: str) -> str | None:
        """The person a request subject names (`ask`), or None on a service's own `rpc` subject."""
        prefix = self._s("reroute.ask.")
        return subject.removeprefix(prefix).split(".", 1)[0] if subject.startswith(prefix) else None

    def agency_of(self, subject: str) -> str:
        """The agency id: the last token of a public subject."""
        return subject.rsplit(".", 1)[-1]

    # Streams: provisioned in one place (shared/streams.py), checked by the services that use them.
    @property
    def submissions_stream(self) -> str:
        """Agencies' raw submissions, until intake has stored them (work-queue retention)."""
        return self._stream("SUBMISSIONS")

    @property
    def referrals_stream(self) -> str:
        """Intake's answers to agencies: referrals accepted, rejected and withdrawn."""
        return self._stream("REFERRALS")

    @property
    def intake_stream(self) -> str:
        """Intake's internal events: the pseudonymous facts of each accepted referral (intake.recorded), and each
        withdrawal (intake.withdrawn)."""
        return self._stream("INTAKE")

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

    def raw_submissions(self) -> list[str]:
        """What agencies send: names, birth date, contact details and free text in plain (a withdrawal's note too)."""
        return [self.submitted(), self.updated(), self.withdraw()]

    def streams(self) -> list[StreamSpec]:
        """Every stream, in the order provisioning creates them (REFERRALS before SUBMISSIONS: an install of the
        earlier layout must give up the raw subjects before the submissions stream can take them).

        Raw submissions have a stream of their own with work-queue retention: each message is removed as soon as
        intake acknowledges it (it has stored the referral encrypted, or its rejection, or kept it as an
        encrypted dead letter), so no plain copy of a child's name stays on the broker, while one intake has not
        processed yet waits for it however long intake is down (no age limit, which would drop it).

        Its duplicate window is the server's minimum, not the events' 300 s, because JetStream de-duplicates
        `Nats-Msg-Id` across the whole stream: agency A publishing first with agency B's (guessable) id would
        have B's referral dropped. Agencies' permissions cannot confine a header, and a stream per agency would
        need a consumer per agency, so intake's inbox de-duplicates instead, per agency: a message's key is its
        subject (which ends in the agency id) and its `Nats-Msg-Id`, recorded with the referral in one
        transaction and kept, so B's resend of an id is still processed once, at any distance in time, and A's
        use of the same id touches only A's key. What remains of the stream's own de-duplication: a message
        published within 100 ms after another agency's message with the same id is dropped, so A must know B's
        next id and publish it within 100 ms before B does (agencies are told to use random ids)."""
        return [
            StreamSpec(self.referrals_stream, [self.accepted(), self.rejected(), self.withdrawn()], max_age_days=30),
            StreamSpec(self.intake_stream, [self.recorded(), self.recorded_withdrawal()], max_age_days=30),
            StreamSpec(self.submissions_stream, self.raw_submissions(), max_age_days=0, retention="workqueue",
                       duplicate_window=SUBMISSION_DUPLICATE_WINDOW_SECONDS),
            StreamSpec(self.risk_stream, [self._s("risk.>")], max_age_days=30),
            StreamSpec(self.safeguarding_stream, [self._s("safeguarding.>")], max_age_days=90),
            StreamSpec(self.sessions_stream, [self._s("sessions.>")], max_age_days=30),
            StreamSpec(self.dead_letter_stream, [self._s("deadletter.>")], max_age_days=90),
        ]

    def agency_events(self, agency: str) -> list[tuple[str, str]]:
        """(stream, subject filter) of every stored event about one agency's referrals (what erasure searches)."""
        return [(self.referrals_stream, self.about_referrals(agency)), (self.intake_stream, self.recorded(agency)),
                (self.intake_stream, self.recorded_withdrawal(agency)),
                (self.risk_stream, self.assessed(agency)),
                (self.safeguarding_stream, self.alert(agency)), (self.sessions_stream, self.sessions(agency))]

    def agency_outcomes(self, agency: str) -> list[AgencyOutcomes]:
        """The durable consumers that keep one agency's outcomes while it is offline: one per stream its events are
        in (intake's referrals.*: accepted, rejected, withdrawn; scheduling's sessions.*), each pushing to a subject in the agency's own inbox
        namespace. Intake makes them; the agency may only read their info and acknowledge what they deliver."""
        return [AgencyOutcomes(stream, f"agency-{agency}", subject,
                               f"_INBOX_AGENCY.{agency}.outcomes.{stream}")
                for stream, subject in ((self.referrals_stream, self.about_referrals(agency)),
                                        (self.sessions_stream, self.sessions(agency)))]

    @property
    def escalations_bucket(self) -> str:
        """The notifier's key-value bucket: the alerts it has escalated to the deputies (each once)."""
        return self._stream("NOTIFIER_ESCALATIONS")

    def durable(self, service: str, what: str) -> str:
        """Durable consumer name, shared by every replica of a service so they split the work."""
        return f"{service}-{what}"
