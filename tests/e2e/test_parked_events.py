"""An event NATS refused for good (parked in the outbox) is resolved like a dead letter: `reroute deadletter show`
reads it, `discard` sets it aside for good with the reason, and `replay`, once the limit that refused it is raised,
puts it back in the outbox, whose relay publishes it once. Run on a nats-server of its own that carries at most
8 KiB per message, where a referral naming all 30 indicators gets a risk.assessed of about 14 KiB."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.devstack.local_nats import start_nats_server
from shared.contracts.codes import INDICATOR_CODES
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, mentor, ready, referral, unique, unique_language
from tests.support.suite import drop_schemas, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
SMALL, LARGE = 8192, 1024 * 1024


@dataclass
class SmallNats:
    cluster: Cluster
    server: subprocess.Popen[bytes]
    config: Path

    async def raise_the_limit(self) -> None:
        """What an operator does once they decide the event is fine: a larger max_payload, reloaded, and risk
        reconnected so that it knows."""
        self.config.write_text(f"max_payload: {LARGE}\n")
        self.server.send_signal(signal.SIGHUP)
        self.cluster.processes.stop("risk")
        self.cluster.processes.start("risk")
        await self.cluster.wait_ready(("risk",), timeout=60)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallNats]:
    store = tmp_path_factory.mktemp("parked-nats")
    config = store / "nats.conf"
    config.write_text(f"max_payload: {SMALL}\n")
    proc, url = start_nats_server(store, config=config, log_file=store / "nats.log")
    try:
        cluster = make_cluster((url, False), tmp_path_factory.mktemp("parked-data"), "parked", isolated=True)
        try:
            asyncio.run(ready(cluster))
            yield SmallNats(cluster, proc, config)
        finally:
            cluster.processes.stop_all()
            drop_schemas(cluster)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def parked_at_risk(probe: Probe, referral_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Risk's parked events about these referrals, by referral, once all of them are listed."""
    found: dict[str, dict[str, Any]] = {}

    async def listed() -> bool:
        reply = await probe.rpc("risk", "deadletters.list", {})
        found.clear()
        found.update({d["referral_id"]: d for d in reply["dead_letters"] if d["referral_id"] in referral_ids})
        return set(found) == referral_ids

    await wait_until(listed, timeout=20, every=0.2, what=f"risk listing parked events for {referral_ids}")
    return found


async def test_a_parked_event_is_shown_discarded_with_a_reason_or_replayed_once_the_limit_is_raised(
    small: SmallNats, tmp_path: Path
) -> None:
    cluster, s = small.cluster, small.cluster.subjects
    probe = await Probe.open(cluster.nats_url, s)
    try:
        lang, agency = unique_language(), unique("yot")
        await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
        refs = [unique("ALL"), unique("ALL")]
        for ref in refs:
            await probe.submit(agency, referral(ref, language=lang, indicators=sorted(INDICATOR_CODES)))
        accepted = {e["agency_referral_id"]: e["referral_id"] for e in await probe.wait_for(s.accepted(agency),
                                                                                          count=2)}
        kept, dropped = accepted[refs[0]], accepted[refs[1]]
        parked = await parked_at_risk(probe, {kept, dropped})

        shown = reroute(cluster, tmp_path, "deadletter", "show", parked[kept]["id"])
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert s.assessed(agency) in shown.stdout and f"max_payload of {SMALL} bytes" in shown.stdout
        assert "--body to print it" in shown.stdout

        discarded = reroute(cluster, tmp_path, "deadletter", "discard", parked[dropped]["id"], "--reason",
                            "assessed again by hand", "--by", "Kim")
        assert discarded.returncode == 0 and "discarded" in discarded.stdout, discarded.stdout + discarded.stderr
        resolved = await probe.rpc("risk", "deadletters.list", {"include_resolved": True})
        gone = [d for d in resolved["dead_letters"] if d["id"] == parked[dropped]["id"]]
        assert [(d["status"], d["note"], d["resolved_by"]) for d in gone] == [("discarded", "assessed again by hand",
                                                                             "Kim")]
        assert set(await parked_at_risk(probe, {kept})) == {kept}, "the other stays parked"

        refused = reroute(cluster, tmp_path, "deadletter", "replay", parked[kept]["id"])
        assert refused.returncode == 0, refused.stdout + refused.stderr  # back in the outbox, parked again
        await parked_at_risk(probe, {kept})
        assert not probe.matching(s.assessed(agency), lambda e: e["referral_id"] == kept)

        await small.raise_the_limit()  # (the body is read once it fits in a reply)
        with_body = reroute(cluster, tmp_path, "deadletter", "show", parked[kept]["id"], "--body")
        assert with_body.returncode == 0 and f'"referral_id":"{kept}"' in with_body.stdout.replace(" ", ""), (
            with_body.stdout + with_body.stderr)
        replayed = reroute(cluster, tmp_path, "deadletter", "replay", parked[kept]["id"])

        assert replayed.returncode == 0 and "replayed" in replayed.stdout, replayed.stdout + replayed.stderr
        await probe.wait_for(s.assessed(agency), lambda e: e["referral_id"] == kept, timeout=20)
        held = await probe.rpc("risk", "deadletters.held", {"referral_ids": [kept, dropped]})
        assert held["held"] == {}, "nothing about either referral is held any more"
        assert not probe.matching(s.assessed(agency), lambda e: e["referral_id"] == dropped), "discarded: never sent"
    finally:
        await probe.close()
