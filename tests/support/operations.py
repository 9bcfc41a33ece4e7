"""Dead letters for the operators' pages, made in a running `reroute up` (tests/support/console.py): one that fails
for real in risk until its cause is removed (`RiskFailing`), and one kept as scheduling keeps one (for a page that
only needs one to show)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sqlalchemy import insert, text

from shared.deadletters import DeadLetterRow
from tests.support.console import ConsoleStack

_SQLITE = [("CREATE TRIGGER {name} BEFORE INSERT ON assessment BEGIN "
           "SELECT RAISE(ABORT, 'a fault planted by a test'); END")]
_POSTGRES = [("CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "RAISE EXCEPTION 'a fault planted by a test'; END $$"),
             "CREATE TRIGGER {name} BEFORE INSERT ON assessment FOR EACH ROW EXECUTE FUNCTION {name}()"]


class RiskFailing:
    """While entered, risk cannot store an assessment (a trigger in its own database refuses the insert), so a new
    referral fails in risk on every delivery and is dead-lettered; `fix()` removes the fault."""

    def __init__(self, stack: ConsoleStack) -> None:
        self.stack = stack
        self.name = f"test_fault_{uuid.uuid4().hex[:8]}"
        self.fixed = False

    def __enter__(self) -> Self:
        postgres = bool(os.environ.get("DATABASE_URL"))
        engine = self.stack.up.engine("risk")
        try:
            with engine.begin() as conn:
                for statement in _POSTGRES if postgres else _SQLITE:
                    conn.execute(text(statement.format(name=self.name)))
        finally:
            engine.dispose()
        return self

    def fix(self) -> None:
        if self.fixed:
            return
        engine = self.stack.up.engine("risk")
        try:
            with engine.begin() as conn:
                conn.execute(text(f"DROP TRIGGER {self.name}" + (" ON assessment" if os.environ.get("DATABASE_URL")
                                                                 else "")))
        finally:
            engine.dispose()
        self.fixed = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.fix()


def kept_dead_letter(stack: ConsoleStack, *, body: dict[str, object] | None = None) -> str:
    """A dead letter kept in scheduling's store as its consumer keeps one; its id."""
    dead_letter_id = f"scheduling-{uuid.uuid4().hex[:10]}"
    referral_id = f"ref_{uuid.uuid4().hex[:16]}"
    engine = stack.up.engine("scheduling")
    try:
        with engine.begin() as conn:
            conn.execute(insert(DeadLetterRow).values(
                id=dead_letter_id, message_key=f"key-{dead_letter_id}", consumer="scheduling-assessed",
                subject="risk.assessed.demo", headers=json.dumps({"Nats-Msg-Id": f"event-{dead_letter_id}"}),
                body=json.dumps(body or {"referral_id": referral_id}).encode(),
                reason="KeyError after 5 deliveries; see the service log", deliveries=5, failed_at=datetime.now(UTC),
                referral_id=referral_id, status="open"))
    finally:
        engine.dispose()
    return dead_letter_id
