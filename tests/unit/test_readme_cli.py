"""The README's CLI table, read from README.md at test time, names commands and options the CLI has: each
`reroute …` command in its first column answers `--help`, and every `--option` written beside it is in that help."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
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


def _cli_commands() -> dict[tuple[str, ...], Any]:
    """Every command the CLI has (leaves of its command tree), by path (typer's own click: told apart by shape)."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[path] = command

    walk(typer.main.get_command(app), ())
    return found


def test_every_command_of_the_cli_is_in_the_readmes_table() -> None:
    """`reroute backup` was in --help and missing here."""
    written = {path for path, _ in COMMANDS}
    missing = [" ".join(path) for path in _cli_commands()  # `session confirm|…` names session's ACTION too
               if not any(w[:len(path)] == path for w in written)]
    assert not missing, f"README.md's CLI table lacks: {', '.join(missing)}"


def test_every_argument_says_what_it_is_in_one_notation() -> None:
    """Usage lines name each argument in upper case, as the README does, and its help says what it is."""
    for path, command in _cli_commands().items():
        for param in command.params:
            if param.param_type_name == "argument":
                where = f"reroute {' '.join(path)} {param.name}"
                assert param.metavar and re.fullmatch(r"[A-Z_]+(\.\.\.)?", param.metavar), f"{where}: {param.metavar}"
                assert getattr(param, "help", None), f"{where} has no help text"
