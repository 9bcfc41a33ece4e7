"""The README's CLI table, read from README.md at test time, names commands and options the CLI has: each
`reroute …` command in its first column answers `--help`, and every `--option` written beside it is in that help."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from apps.cli.main import app
from tests.support.readme import README

_COMMAND = re.compile(r"^[a-z][a-z-]*$")


def cli_table_commands() -> list[tuple[tuple[str, ...], list[str]]]:
    """(command path, options) for each command in the first column of the README's CLI table."""
    section = README.read_text(encoding="utf-8").split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[tuple[str, ...], list[str]]] = []
    for row in section.splitlines():
        if not row.startswith("| `reroute "):
            continue
        cell = re.split(r"(?<!\\)\|", row)[1]
        base: tuple[str, ...] = ()
        for written in re.findall(r"`([^`]+)`", cell):
            words = written.split()
            options = re.findall(r"--[a-z][a-z-]*", written)
            if words[0] == "reroute":
                base = tuple(_command_words(words[1:]))
                paths = [base]
            else:  # an alternative: `revoke ID` beside `reroute agencies rotate ID`, or `db status`
                alternative = tuple(_command_words(words))
                paths = [alternative] if alternative[0] == base[0] else [base[:-1] + alternative]
            if paths[0] and "\\|" in paths[0][-1]:  # `session confirm\|cancel\|…`
                paths = [paths[0][:-1] + (one,) for one in paths[0][-1].split("\\|")]
            found += [(path, options) for path in paths]
    return found


def _command_words(words: list[str]) -> list[str]:
    taken = []
    for word in words:
        if not _COMMAND.match(word.split("\\|")[0]):
            break
        taken.append(word)
    return taken


COMMANDS = cli_table_commands()


def test_the_table_is_read() -> None:
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"up", "status", "agencies revoke", "session missed", "deadletter discard", "db status"} <= paths, paths


@pytest.mark.parametrize(("path", "options"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_each_command_in_the_readme_exists_with_the_options_it_names(path: tuple[str, ...], options: list[str]) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, f"README.md names `reroute {' '.join(path)}`: {shown.output}"
    for option in options:
        assert option in shown.output, f"README.md names `reroute {' '.join(path)} {option}`, which has no {option}"
