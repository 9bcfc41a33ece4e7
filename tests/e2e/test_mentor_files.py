"""`reroute mentors import` and `reroute venues import` check a scheduler's file as strictly as intake checks a
referral, and say every problem at once, in words a scheduler reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.cli import reroute
from tests.support.cluster import Cluster, Probe, mentor, unique

pytestmark = pytest.mark.e2e


async def test_a_mentor_file_with_language_names_is_refused_whole_with_every_problem(
    cluster: Cluster, probe: Probe, tmp_path: Path
) -> None:
    """`languages: [english]` once imported, and the young person then waited for ever with "no shared
    language": now nothing is imported and each problem is named by record and field."""
    good, named, broken = unique("m"), unique("m"), unique("m")
    records = [mentor(good, language="en"), mentor(named, language="english"),
               mentor(broken, language="so", max_caseload=-1, availability=[{"day": "mon", "start": "9am", "end": "x"}])]
    file = tmp_path / "mentors.yaml"
    file.write_text(yaml.safe_dump(records))

    done = reroute(cluster, tmp_path, "mentors", "import", str(file))

    assert done.returncode == 1
    out = done.stdout
    assert f"mentor #2 ({named}): languages: 'english': not ISO 639-1" in out and "'en'" in out, out
    assert f"mentor #3 ({broken}): max_caseload:" in out and f"mentor #3 ({broken}): availability[0].start" in out
    assert "Value error" not in out and "Input should be" not in out, "no raw pydantic text"
    assert "nothing imported; fix the 4 problem(s) above" in out
    listed = await probe.rpc("scheduling", "mentors.list", {})
    assert good not in {m["id"] for m in listed["mentors"]}, "one bad record and nothing is imported"

    fixed = [mentor(good, language="en"), mentor(named, language=" EN "), mentor(broken, language="so")]
    file.write_text(yaml.safe_dump(fixed))
    assert reroute(cluster, tmp_path, "mentors", "import", str(file)).returncode == 0
    stored = {m["id"]: m for m in (await probe.rpc("scheduling", "mentors.list", {}))["mentors"]}
    assert stored[named]["languages"] == ["en"], "codes are stored as referrals carry them"


def test_a_yaml_error_is_shown_with_its_text(cluster: Cluster, tmp_path: Path) -> None:
    """The YAML parser's message has square brackets in it, which once vanished as console markup."""
    file = tmp_path / "mentors.yaml"
    file.write_text(f"- id: {unique('m')}\n  languages: [en, so\n  gender: male\n")

    done = reroute(cluster, tmp_path, "mentors", "import", str(file))

    assert done.returncode == 1
    assert "cannot be read as YAML" in done.stdout and "line" in done.stdout, done.stdout


async def test_a_venue_file_reports_every_problem_the_same_way(cluster: Cluster, probe: Probe, tmp_path: Path) -> None:
    file = tmp_path / "venues.yaml"
    file.write_text(yaml.safe_dump([{"id": unique("v"), "name": "Hall", "borough": "Atlantis", "rooms": 0},
                                    {"id": "bad id", "name": "Office", "borough": "Hackney"}]))

    done = reroute(cluster, tmp_path, "venues", "import", str(file))

    assert done.returncode == 1
    assert "venue #1" in done.stdout and "borough" in done.stdout and "rooms" in done.stdout
    assert "venue #2 (bad id): id:" in done.stdout
    assert "nothing imported" in done.stdout

