"""Upgrading risk to acknowledgements by name (migration 0004): alerts someone already took up, by the earlier
version's measure (a tier review recorded after the alert), stay taken up, by that practitioner, so the upgrade
pages for nothing; the others are open; each alert gets its referral's agency. SQLite, and PostgreSQL with
DATABASE_URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, select, text

from services.risk.metrics import safeguarding_samples
from services.risk.tables import AlertRecord
from shared.db import make_engine
from shared.migrations import config, schema_of, upgrade
from shared.settings import ServiceSettings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def risk(tmp_path: Path) -> Iterator[Engine]:
    settings = ServiceSettings(data_dir=tmp_path, db_schema_prefix=f"ack{uuid.uuid4().hex[:8]}",
                               DATABASE_URL=os.environ.get("DATABASE_URL"))  # type: ignore[call-arg]
    engine = make_engine("risk", settings)
    yield engine
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_of(engine)}" CASCADE'))
    engine.dispose()


def _at_0003(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema_of(engine)}"'))
        command.upgrade(config("risk", conn), "0003")


def _in_schema(conn: Connection) -> Connection:
    """Plain SQL as the earlier version wrote it, in the service's own schema (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f'SET LOCAL search_path TO "{schema_of(conn)}"'))
    return conn


def test_alerts_reviewed_before_the_upgrade_stay_taken_up_by_whoever_reviewed_them(risk: Engine) -> None:
    _at_0003(risk)
    with risk.begin() as begun:
        conn = _in_schema(begun)
        for rid, agency in (("ref_reviewed", "yot-a"), ("ref_open", "yot-b"), ("ref_before", "yot-b")):
            conn.execute(text("INSERT INTO risk_case (referral_id, agency_id, facts, latest, tier, computed_tier, "
                              "rules_version, review_due, updated_at) VALUES (:r, :a, '{}', '{}', 'high', 'high', "
                              "'v1', :t, :t)"), {"r": rid, "a": agency, "t": T0})
            conn.execute(text("INSERT INTO safeguarding_alert (event_id, referral_id, rule_id, raised_at, deadline, "
                              "actions) VALUES (:e, :r, 'E04_weapon_disclosure', :t, :d, '[\"dsl_same_day\"]')"),
                         {"e": f"alert:{rid}:E04:1", "r": rid, "t": T0, "d": T0 + timedelta(hours=8)})
        reviews = [("ref_reviewed", "override", "rita", T0 + timedelta(hours=2)),
                   ("ref_reviewed", "override", "rob", T0 + timedelta(hours=5)),
                   ("ref_open", "update", None, T0 + timedelta(hours=1)),  # an agency's update is no review
                   ("ref_before", "override", "rita", T0 - timedelta(hours=1))]  # before the alert: not for it
        for n, (rid, cause, by, at) in enumerate(reviews):
            conn.execute(text("INSERT INTO assessment (event_id, referral_id, number, assessed_at, computed_tier, "
                              "final_tier, cause, changed_by, rules_version, event) VALUES (:e, :r, :n, :t, 'high', "
                              "'high', :c, :b, 'v1', '{}')"),
                         {"e": f"assessed:{rid}:{n}", "r": rid, "n": n + 2, "t": at, "c": cause, "b": by})

    assert upgrade(risk, "risk").before == "0003"

    with risk.connect() as conn:
        rows = {r.referral_id: r for r in conn.execute(select(AlertRecord))}
        samples = safeguarding_samples(conn, T0 + timedelta(days=1))
    assert rows["ref_reviewed"].acknowledged_by == "rita", "the first review after the alert took it up"
    acknowledged_at = rows["ref_reviewed"].acknowledged_at
    assert acknowledged_at.replace(tzinfo=UTC) == T0 + timedelta(hours=2)
    assert "migration 0004" in rows["ref_reviewed"].acknowledgement_note
    assert rows["ref_open"].acknowledged_by is None and rows["ref_before"].acknowledged_by is None
    assert {r: rows[r].agency_id for r in rows} == {"ref_reviewed": "yot-a", "ref_open": "yot-b", "ref_before": "yot-b"}
    counted = {(s.labels["agency"], s.labels["overdue"]): s.value for s in samples}
    assert counted == {("yot-a", "false"): 0, ("yot-a", "true"): 0, ("yot-b", "false"): 0, ("yot-b", "true"): 2}
