"""A submission intake cannot store is kept by intake, sealed with its key, and nowhere on the broker in plain
(issue 11, item 3): a dead letter holds a child's name, birth date and the referrer's contact details."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import Engine, select, text
from sqlmodel import col

from shared.deadletters import DeadLetterRow
from shared.migrations import schema_of
from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, launch_cluster, referral, service_engine, unique
from tests.support.stored import raw_held
from tests.support.suite import RUN_ID, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
NAME, EMAIL = "Zebedee", "sealed.referrer@example.org"


@pytest.fixture
def cluster(nats_server: tuple[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Services of the test's own, whose intake dead-letters a message on its first failure."""
    name = f"t{RUN_ID}sealed{uuid.uuid4().hex[:6]}"
    with running(launch_cluster(nats_server[0], tmp_path_factory.mktemp("sealed"), namespace=name, schema_prefix=name,
                                per_service={"intake": {"REROUTE_MAX_DELIVER": "1"}})) as c:
        yield c


def refuse_referral(engine: Engine, agency_referral_id: str) -> None:
    """The database refuses to store this one referral (a fault intake cannot work around), nothing else."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER refuse_one BEFORE INSERT ON referral WHEN NEW.agency_referral_id = "
                              f"'{agency_referral_id}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
        else:
            schema = f'"{schema_of(engine)}"'
            conn.execute(text(f"CREATE FUNCTION {schema}.refuse_one() RETURNS trigger AS $$ BEGIN IF "
                              f"NEW.agency_referral_id = '{agency_referral_id}' THEN RAISE EXCEPTION "
                              "'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text(f"CREATE TRIGGER refuse_one BEFORE INSERT ON {schema}.referral FOR EACH ROW "
                              f"EXECUTE FUNCTION {schema}.refuse_one()"))


async def test_a_submission_intake_cannot_store_is_kept_sealed_and_never_left_plain_on_the_broker(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    s, js = cluster.subjects, probe.nc.jetstream()
    agency, arid = unique("yot"), unique("SEAL")
    engine = service_engine(cluster, "intake")
    refuse_referral(engine, arid)
    body = referral(arid, language="en")
    body["young_person"]["given_name"], body["referrer"]["email"] = NAME, EMAIL
    await js.publish(s.submitted(agency), json.dumps(body).encode(), headers={"Nats-Msg-Id": str(uuid.uuid4())})

    async def kept() -> list[dict[str, object]]:
        listed = await probe.rpc("intake", "deadletters.list", {})
        return [d for d in listed["dead_letters"] if d["subject"] == s.submitted(agency)]

    await wait_until(kept, timeout=30, what="intake keeping the submission it could not store")
    dead_letter_id = str((await kept())[0]["id"])

    with engine.connect() as conn:
        stored = conn.execute(select(col(DeadLetterRow.body)).where(col(DeadLetterRow.id) == dead_letter_id)).scalar_one()
    assert NAME.encode() not in stored and EMAIL.encode() not in stored and arid.encode() not in stored, \
        "sealed in intake's database"
    engine.dispose()

    shown = reroute(cluster, tmp_path, "deadletter", "show", dead_letter_id, "--body")
    assert shown.returncode == 0 and NAME in shown.stdout, "the operator reads it, unsealed, when asked"

    async def gone() -> bool:
        return await raw_held(js, s, agency) == 0

    await wait_until(gone, timeout=10, every=0.05, what="the submission leaving the submissions stream")
    for stream in (s.submissions_stream, s.referrals_stream, s.dead_letter_stream, s.intake_stream):
        info = await js.stream_info(stream)
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1) if info.state.messages else ():
            try:
                msg = await js.get_msg(stream, seq=seq)
            except NotFoundError:
                continue
            assert NAME.encode() not in (msg.data or b"") and EMAIL.encode() not in (msg.data or b""), \
                f"{stream} #{seq} holds the child's details in plain"
