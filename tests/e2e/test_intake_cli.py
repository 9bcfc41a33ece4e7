"""`reroute agencies ...` and `reroute submit FILE.csv` as a person runs them, against the running services."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, fresh_language, mentor, unique

pytestmark = pytest.mark.e2e


def test_agencies_add_prints_the_key_once_and_rotate_and_revoke_take_effect(cluster: Cluster, tmp_path: Path) -> None:
    agency = unique("yot")

    added = reroute(cluster, tmp_path, "agencies", "add", agency, "--name", "Southwark YOT")
    again = reroute(cluster, tmp_path, "agencies", "add", agency, "--name", "Southwark YOT")
    listed = reroute(cluster, tmp_path, "agencies", "list")
    rotated = reroute(cluster, tmp_path, "agencies", "rotate", agency)
    revoked = reroute(cluster, tmp_path, "agencies", "revoke", agency)
    after = reroute(cluster, tmp_path, "agencies", "list")

    assert added.returncode == 0, added.stderr
    key = next(line for line in added.stdout.splitlines() if line.startswith(f"rr1.{agency}."))
    assert "cannot be shown again" in added.stdout
    assert again.returncode == 1 and "already registered" in again.stdout
    assert agency in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    assert rotated.returncode == 0 and key not in rotated.stdout and f"rr1.{agency}." in rotated.stdout
    assert revoked.returncode == 0 and "401" in revoked.stdout
    row = next(line for line in after.stdout.splitlines() if agency in line)
    assert "revoked" in row


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _row(arid: str, language: str, **changes: str) -> dict[str, str]:
    row = {
        "agency_referral_id": arid, "given_name": "Jordan", "family_name": "Csvperson", "date_of_birth": "2010-05-17",
        "gender": "male", "borough": "Hackney", "languages": language, "referrer_name": "Test Referrer",
        "referrer_role": "YOT case manager", "referrer_email": "referrer@example.org", "consent_given": "yes",
        "consent_recorded_at": "2026-11-20T10:00:00+00:00", "reason": "Worried about older associates.",
        "indicators": "peers_offending; unstructured_time", "prior_proven_offences": "0",
        "availability": "mon 16:00-19:00; sat 10:00-13:00",
    }
    return row | changes


async def test_submit_a_csv_file_keeps_going_past_bad_rows_and_a_rerun_reports_duplicates(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    lang, agency = fresh_language(), unique("yot")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    good = [_row(unique("CSV"), lang) for _ in range(3)]
    unreadable = _row(unique("CSV"), lang, prior_proven_offences="several")
    refused = _row(unique("CSV"), lang, borough="Atlantis")
    first_part, whole = tmp_path / "first.csv", tmp_path / "all.csv"
    _write_csv(first_part, good[:2])
    assert reroute(cluster, tmp_path, "agencies", "add", agency, "--name", "CSV YOT").returncode == 0
    _write_csv(whole, [*good, unreadable, refused])

    interrupted = await asyncio.to_thread(reroute, cluster, tmp_path, "submit", str(first_part), "--agency", agency)
    rerun = await asyncio.to_thread(reroute, cluster, tmp_path, "submit", str(whole), "--agency", agency)

    assert interrupted.returncode == 0, interrupted.stdout + interrupted.stderr
    assert "2 accepted, 0 duplicates, 0 rejected, 0 unanswered" in interrupted.stdout, interrupted.stdout
    assert rerun.returncode == 1, "a script running the command learns that rows were rejected"
    assert "1 accepted, 2 duplicates, 2 rejected, 0 unanswered" in rerun.stdout, rerun.stdout
    assert "row 5" in rerun.stdout and "'several' is not a whole number" in rerun.stdout
    assert "not sent" in rerun.stdout
    assert "row 6" in rerun.stdout and ": borough:" in rerun.stdout, "intake's rejection names the CSV column"
    assert "young_person.borough" not in rerun.stdout
    assert "2 row(s) rejected or not sent" in rerun.stdout
    await probe.wait_for(cluster.subjects.accepted(agency), count=5)
    sent = probe.matching(cluster.subjects.accepted(agency), lambda e: not e["duplicate"])
    assert sorted(e["agency_referral_id"] for e in sent) == sorted(r["agency_referral_id"] for r in good)
    assert not probe.matching(cluster.subjects.rejected(agency),
                              lambda e: e["agency_referral_id"] == unreadable["agency_referral_id"])


def test_agencies_add_refuses_a_reserved_id_and_a_look_alike(cluster: Cluster, tmp_path: Path) -> None:
    """Registering as `intake` would once have handed an agency intake's reply inbox: refused, said why."""
    reserved = reroute(cluster, tmp_path, "agencies", "add", "intake", "--name", "Impostor")
    assert reserved.returncode == 1 and "reserved for reroute itself" in reserved.stdout
    agency = unique("yot")
    assert reroute(cluster, tmp_path, "agencies", "add", agency, "--name", "YOT").returncode == 0
    alike = reroute(cluster, tmp_path, "agencies", "add", agency.replace("-", "_"), "--name", "Look-alike")
    assert alike.returncode == 1 and f"too like the registered '{agency}'" in alike.stdout
    added = reroute(cluster, tmp_path, "agencies", "add", unique("school"), "--name", "A school")
    assert "_INBOX_AGENCY." in added.stdout, "the agency is told its own inbox prefix"


async def test_submit_refuses_an_agency_that_is_not_registered_or_revoked_and_sends_nothing(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    """A typo in --agency once filed referrals under an agency nobody registered."""
    typo, revoked = unique("never-registered"), unique("yot")
    arid = unique("TYPO")
    path = tmp_path / "one.csv"
    _write_csv(path, [_row(arid, fresh_language())])
    assert reroute(cluster, tmp_path, "agencies", "add", revoked, "--name", "Revoked YOT").returncode == 0
    assert reroute(cluster, tmp_path, "agencies", "revoke", revoked).returncode == 0

    unknown = await asyncio.to_thread(reroute, cluster, tmp_path, "submit", str(path), "--agency", typo)
    gone = await asyncio.to_thread(reroute, cluster, tmp_path, "submit", str(path), "--agency", revoked)

    said = " ".join(unknown.stdout.split())
    assert unknown.returncode == 1, said
    assert f"no agency '{typo}' is registered, so nothing was sent: `reroute agencies list` shows the registered " \
           f"ones; `reroute agencies add {typo} --name NAME` registers it" in said
    said = " ".join(gone.stdout.split())
    assert gone.returncode == 1 and f"the agency '{revoked}' is revoked, so nothing was sent: `reroute agencies " \
                                     f"rotate {revoked}`" in said, said
    status = reroute(cluster, tmp_path, "status", arid)
    assert status.returncode == 1 and f"no referral with the agency's reference {arid}" in status.stdout, status.stdout
    assert not probe.matching(cluster.subjects.accepted(typo), lambda e: True)


async def test_status_says_no_referral_for_an_id_of_our_shape_and_how_to_name_the_agency_for_a_shared_reference(
    cluster: Cluster, tmp_path: Path
) -> None:
    missing = reroute(cluster, tmp_path, "status", "ref_doesnotexist")
    assert missing.returncode == 1 and "no referral ref_doesnotexist at intake" in " ".join(missing.stdout.split())
    assert "agency's reference" not in missing.stdout

    shared, first, second = unique("SHARED"), unique("yot"), unique("school")
    path = tmp_path / "shared.csv"
    _write_csv(path, [_row(shared, fresh_language())])
    for agency in (first, second):
        assert reroute(cluster, tmp_path, "agencies", "add", agency, "--name", "Sharing").returncode == 0
        sent = await asyncio.to_thread(reroute, cluster, tmp_path, "submit", str(path), "--agency", agency)
        assert "1 accepted" in sent.stdout, sent.stdout

    ambiguous = reroute(cluster, tmp_path, "status", shared)

    said = " ".join(ambiguous.stdout.split())
    assert ambiguous.returncode == 1 and "used by several agencies" in said, said
    assert f"name the agency with --agency ID: `reroute status {shared} --agency ID`" in said, said
    named = reroute(cluster, tmp_path, "status", shared, "--agency", second)
    assert named.returncode == 0 and f"from {second}" in named.stdout, named.stdout
