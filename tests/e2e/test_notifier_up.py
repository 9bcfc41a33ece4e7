"""The notifier as `reroute up` runs it: with its own NATS user on a server with users and permissions, it emails a
new alert to the leads and escalates an overdue one to the deputy (so its permissions allow all it does), and `reroute
up` says where the emails go; with no SMTP server configured, `reroute up` says loudly that emails are off."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.devstack.local_nats import free_port
from tests.support.cluster import referral
from tests.support.local_up import REROUTE, LocalUp, up_env
from tests.support.smtp import Sink

pytestmark = [pytest.mark.e2e]
E01 = "E01_immediate_danger"


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink(free_port())
    s.start()
    try:
        yield s
    finally:
        s.stop()


async def test_reroute_up_runs_the_notifier_with_its_own_user(sink: Sink, tmp_path: Path) -> None:
    up = LocalUp.launch(tmp_path / "data", REROUTE_SMTP_HOST="127.0.0.1", REROUTE_SMTP_PORT=str(sink.port),
                        REROUTE_SMTP_SECURITY="none", REROUTE_ALERT_EMAILS="dsl@example.org",
                        REROUTE_ALERT_DEPUTY_EMAILS="deputy@example.org", REROUTE_ESCALATION_CHECK_SECONDS="0.5")
    try:
        await up.until_running()
        assert "Safeguarding alerts are emailed to dsl@example.org through 127.0.0.1; overdue ones to " \
               "deputy@example.org" in up.output()
        up.register_agency("demo")  # the agency its referrals are submitted as
        arid = f"NOTIFY-UP-{uuid.uuid4().hex[:8]}"
        path = tmp_path / "referral.json"
        path.write_text(json.dumps([referral(arid, language="en", indicators=["intent_to_use_weapon"])]))
        done = await asyncio.to_thread(
            subprocess.run, [str(REROUTE), "submit", str(path), "--agency", "demo", "--timeout", "30", "--data-dir",
                             str(up.data_dir)], env=up_env(), cwd=tmp_path, capture_output=True, text=True,
            timeout=90, check=False)
        found = re.search(rf"{re.escape(arid)}\s*│\s*(ref_[0-9a-f]+)", done.stdout)
        assert found, done.stdout + done.stderr
        alert_id = f"alert:{found[1]}:{E01}:1"
        log = (up.data_dir / "logs" / "notifier.log")
        lead = await sink.wait(alert_id, to=["dsl@example.org"], why=log.read_text)
        assert found[1] in lead.text and re.search(r"https?://127\.0\.0\.1:\d+/alerts", lead.text), \
            "linked to the console reroute up runs"
        await sink.wait(alert_id, to=["deputy@example.org"], why=log.read_text)
    finally:
        up.stop()
        up.drop_schemas()
        print(f"--- reroute up said:\n{up.output()}")


async def test_reroute_up_says_loudly_when_alert_emails_are_off(tmp_path: Path) -> None:
    up = LocalUp.launch(tmp_path / "data")
    try:
        await up.until_running()
        assert "Safeguarding alert emails are OFF: REROUTE_SMTP_HOST is not set: safeguarding alerts are NOT emailed " \
               "to anyone" in up.output()
    finally:
        up.stop()
        up.drop_schemas()
