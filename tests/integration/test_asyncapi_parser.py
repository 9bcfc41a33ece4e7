"""The official AsyncAPI parser (@asyncapi/parser, from npm, run by node) reads both published documents without an
error or a warning. Skipped, naming node and npm, where they are missing; a failure with REROUTE_REQUIRE_NODE=1 (CI)."""

from __future__ import annotations

import json
from pathlib import Path

from shared import asyncapi
from tests.support import node

ROOT = Path(__file__).resolve().parents[2]
PARSER = ("@asyncapi/parser", "3.6.6")
SCRIPT = ROOT / "tests" / "support" / "asyncapi_parse.cjs"


def test_the_official_parser_accepts_both_documents() -> None:
    modules = node.package(*PARSER)
    files = [str(ROOT / "docs" / name) for name in (asyncapi.AGENCY_DOCUMENT, asyncapi.INTERNAL_DOCUMENT)]
    done = node.run(SCRIPT, *files, modules=modules)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def test_the_parser_refuses_a_document_that_breaks_the_specification(tmp_path: Path) -> None:
    """So that the test above can fail: a message reference that points at nothing is an error to the parser."""
    modules = node.package(*PARSER)
    document = asyncapi.agency_document()
    document["channels"]["referrals.accepted"]["messages"]["ReferralAccepted"] = {
        "$ref": "#/components/messages/NoSuchMessage"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    done = node.run(SCRIPT, str(broken), modules=modules)
    assert done.returncode == 1
    assert "NoSuchMessage" in done.stdout, done.stdout
