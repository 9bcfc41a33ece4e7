"""The CLI as an operator runs it, given what others typed: names print as text (never markup, links or terminal
control), and a subject access export is written only to a new private file, never through a symlink."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, mentor, referral, unique, unique_language

pytestmark = pytest.mark.e2e
OSC_LINK = "\x1b]8;;"  # how a terminal hyperlink starts


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return reroute(cluster, cluster.data_dir, *args)


async def test_names_with_markup_print_as_plain_text_and_session_ids_are_shown(cluster: Cluster, probe: Probe) -> None:
    """Names with Rich markup print as typed (control and bidi characters never get in: the contracts refuse
    them, tests/e2e/test_rejections_never_echo.py), and the calendar gives the session ids `reroute session`
    needs."""
    lang, agency, arid, mentor_id = unique_language(), unique("yot"), unique("MK"), unique("m")
    mentor_name = "Amara [/] [link=https://evil.example]Okafor[/link]"
    given_name = "[link=https://evil.example]Jo[/link] [bold]"
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(mentor_id, language=lang, name=mentor_name)]})
    body = referral(arid, language=lang)
    body["young_person"]["given_name"] = given_name
    await probe.submit(agency, body)
    rid = (await probe.wait_for(cluster.subjects.accepted(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "referral_id"]
    booked = (await probe.wait_for(cluster.subjects.scheduled(agency), lambda e: e["referral_id"] == rid))[0]

    shown = await asyncio.to_thread(_cli, cluster, "calendar", mentor_id, "--names")
    listed = await asyncio.to_thread(_cli, cluster, "mentors", "list")

    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{given_name} ({rid})" in shown.stdout, "the name as typed, not styled or linked"
    assert booked["sessions"][0]["session_id"] in shown.stdout, "the ids `reroute session confirm` needs"
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for out in (shown.stdout, listed.stdout):
        assert "[link=https://evil.example]" in out and OSC_LINK not in out, "markup printed, never obeyed"


async def test_a_person_export_goes_only_to_a_new_private_file_and_never_through_a_symlink(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    lang, agency, arid = unique_language(), unique("yot"), unique("SX")
    await probe.rpc("scheduling", "mentors.import", {"mentors": [mentor(unique("m"), language=lang)]})
    await probe.submit(agency, referral(arid, language=lang))
    person = (await probe.wait_for(cluster.subjects.recorded(agency), lambda e: e["agency_referral_id"] == arid))[0][
        "person_id"]
    taken, target, link, new = (tmp_path / n for n in ("taken.json", "target.txt", "link.json", "new.json"))
    taken.write_text("keep me")
    target.write_text("someone else's file")
    link.symlink_to(target)

    def export(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        return _cli(cluster, "person", "export", person, "--out", str(out), *flags)

    onto_file = await asyncio.to_thread(export, taken)
    onto_link = await asyncio.to_thread(export, link)
    assert onto_file.returncode == 1 and "exists" in onto_file.stdout and "--force" in onto_file.stdout
    assert onto_link.returncode == 1 and "exists" in onto_link.stdout
    assert taken.read_text() == "keep me" and target.read_text() == "someone else's file"

    fresh = await asyncio.to_thread(export, new)
    forced = await asyncio.to_thread(export, link, "--force")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert target.read_text() == "someone else's file", "the symlink was replaced, not followed"
    assert not link.is_symlink()
    for written in (new, link):
        assert stat.S_IMODE(os.lstat(written).st_mode) == 0o600
        assert json.loads(written.read_text())["person_id"] == person
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left behind"
