"""The CLI's output written to a file (`nohup reroute up --demo > demo.log`) keeps every table cell and every
suggested command whole; a terminal, or COLUMNS, still sets the width."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from apps.cli.output import CliConsole

COMMAND = "reroute recommend ref_c777e1797c31a93d"
OUTCOME = "waitlisted: no mentor fits: 5 do not cover Croydon, 2 have a full caseload"


def _printed(out: io.StringIO) -> str:
    console = CliConsole(file=out)
    table = Table("#", "agency ref", "referral", "tier", "outcome", "mentor", "first session", title="Referral outcomes")
    table.add_row("6", "YOT-CRO-0219", "ref_c777e1797c31a93d", "low", OUTCOME, "-", "-")
    console.print(table)
    grid = Table.grid(padding=(0, 2))
    grid.add_row(f"  {COMMAND}", "who could take them, and why every other mentor cannot")
    console.print(grid)
    return out.getvalue()


def test_written_to_a_file_tables_and_commands_are_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    text = _printed(io.StringIO())
    assert OUTCOME in text and "…" not in text, text
    assert any(COMMAND in line for line in text.splitlines()), text


def test_columns_still_sets_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    text = _printed(io.StringIO())
    assert max(len(line) for line in text.splitlines()) <= 60, text
