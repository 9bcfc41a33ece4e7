"""A real Prometheus scrapes the running services' /metrics and, through its query API, tells what referrals did.

Skipped without Debian's prometheus (named), a failure instead with REROUTE_REQUIRE_PROMETHEUS=1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language
from tests.support.prometheus import Prometheus, running_prometheus, tool
from tests.support.suite import SERVICES
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "reroute-alerts.yml"


async def _figure(prom: Prometheus, promql: str, wanted: float, *, timeout: float = 60) -> None:
    """Wait until `promql` has the value `wanted` (gauges are sampled every 15 s, then scraped)."""
    seen: list[float | None] = [None]

    def holds() -> bool:
        seen[0] = prom.value(promql)
        return seen[0] == wanted

    await wait_until(holds, timeout=timeout, every=0.5, what=lambda: f"{promql} == {wanted:g} (last: {seen[0]})")


async def test_prometheus_reads_back_what_referrals_did_and_no_label_names_a_person(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    tool("prometheus")
    ops = {s: (await probe.rpc(s, "ping", {}))["ops_url"] for s in SERVICES}
    agency, lang = unique("yot"), unique_language()
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    booked, waiting, bad = unique("MET"), unique("WAIT"), unique("BAD")
    s = cluster.subjects
    with running_prometheus(tmp_path / "prometheus", {f"reroute-{s}": url for s, url in ops.items()},
                            rules=[RULES]) as prom:
        await wait_until(prom.ready, timeout=60, what="Prometheus answering /-/ready")
        await probe.submit(agency, referral(booked, language=lang, indicators=["threat_to_life_warning"]))
        await probe.submit(agency, referral(waiting, language=unique_language()))  # a language no mentor speaks
        broken = referral(bad, language=lang)
        del broken["reason"]
        await probe.submit(agency, broken)
        accepted = {e["agency_referral_id"]: e for e in await probe.wait_for(s.accepted(agency), count=2)}
        await probe.wait_for(s.rejected(agency))
        ids = {e[k] for e in accepted.values() for k in ("referral_id", "person_id") if e.get(k)}
        await probe.wait_for(s.scheduled(agency), lambda e: e["referral_id"] == accepted[booked]["referral_id"],
                             timeout=30)
        await probe.wait_for(s.waitlisted(agency), lambda e: e["referral_id"] == accepted[waiting]["referral_id"],
                             timeout=30)

        await wait_until(lambda: set(prom.targets_up().values()) == {"up"}, timeout=30,
                         what=lambda: f"every service scraped (targets: {prom.targets_up()})")
        a = f'agency="{agency}"'
        await _figure(prom, f"sum(reroute_referrals_received_total{{{a}}})", 3)
        await _figure(prom, f'reroute_referrals_accepted_total{{{a},duplicate="false"}}', 2)
        await _figure(prom, f"reroute_referrals_rejected_total{{{a}}}", 1)
        await _figure(prom, f'reroute_assessments_total{{{a},tier="very_high"}}', 1)
        await _figure(prom, f"sum(reroute_assessments_total{{{a}}})", 2)
        await _figure(prom, f'reroute_scheduling_outcomes_total{{{a},outcome="scheduled",tier="very_high"}}', 1)
        await _figure(prom, f'sum(reroute_scheduling_outcomes_total{{{a},outcome="waitlisted"}})', 1)
        alerts = prom.query(f"reroute_safeguarding_alerts_raised_total{{{a}}}")
        assert any(r["metric"]["rule"].startswith("E02") for r in alerts), alerts
        for stage, at_least in (("intake", 3), ("assessment", 2), ("scheduling", 2)):
            count = prom.value(f'sum(reroute_stage_latency_seconds_count{{stage="{stage}"}})')
            assert count is not None and count >= at_least, (stage, count)
        await wait_until(lambda: (prom.value('sum(reroute_waitlist_size{tier="low"})') or 0) >= 1, timeout=60,
                         what="the waitlist gauge counting the waiting referral")
        for service in SERVICES:
            await _figure(prom, f'reroute_ready{{service="{service}"}}', 1)
            for gauge in ("reroute_outbox_backlog", "reroute_outbox_parked", "reroute_dead_letters_open",
                          "reroute_consumer_pending", "reroute_consumer_redelivered"):
                assert prom.query(f'{gauge}{{service="{service}"}}'), f"{service} reports no {gauge}"

        await _figure(prom, f'reroute_safeguarding_alerts_unacknowledged{{{a},overdue="false"}}', 1)  # sampled
        # the shipped alert rules load, evaluate without error, and name only metrics the services export
        await wait_until(lambda: bool(prom.rules()) and all(r["health"] == "ok" for r in prom.rules()), timeout=30,
                         what=lambda: f"the alert rules evaluated cleanly ({prom.rules()})")
        # (the notifier's, reroute_notifier_*, are checked against the notifier in tests/e2e/test_notifier.py)
        used = {name for r in prom.rules() for name in re.findall(r"\breroute_[a-z_]+", r["query"])
                if not name.startswith("reroute_notifier_")}
        assert used, "the rules name reroute metrics"
        for name in sorted(used):
            assert prom.query(name), f"an alert rule uses {name}, which no service exports"
        # a tier review no longer counts as taking the alert up: only an acknowledgement by name does
        confirmed = await probe.rpc("risk", "override", {
            "referral_id": accepted[booked]["referral_id"], "tier": "very_high", "by": "Rita Lead",
            "reason": "Reviewed; tier stands"})
        assert confirmed["assessment"]["override"]["kind"] == "confirm", confirmed
        listed = (await probe.rpc("risk", "alerts.list", {}))["alerts"]
        mine = [x["alert_id"] for x in listed if x["referral_id"] == accepted[booked]["referral_id"]]
        assert len(mine) == 1 and prom.value(f'reroute_safeguarding_alerts_unacknowledged{{{a},overdue="false"}}') == 1
        acked = await probe.rpc("risk", "alerts.ack", {"alert_id": mine[0], "by": "Dana Lead",
                                                       "note": "MASH referral made"})
        assert acked["alert"]["acknowledged_by"] == "Dana Lead", acked
        await _figure(prom, f'reroute_safeguarding_alerts_unacknowledged{{{a},overdue="false"}}', 0)

        series: list[dict[str, Any]] = prom.query('{__name__=~"reroute_.+"}')
        values = {v for r in series for k, v in r["metric"].items() if k != "__name__"}
        assert not values & ids, "a label holds a referral or person id"
        for personal in ("Jordan", "Testperson", "Test Referrer", "referrer@example.org"):
            assert not any(personal in v for v in values), f"a label holds {personal!r}"
