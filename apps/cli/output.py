"""The CLI's rich console: as wide as the terminal it writes to; written to a file or a pipe (`nohup`, a log, a
script), as wide as each line needs (COLUMNS, when set, still rules), so no table cell is cut short with `…` and no
command the output suggests wraps where it cannot be copied."""

from __future__ import annotations

import os

from rich.console import Console, ConsoleDimensions

UNWRAPPED_WIDTH = 1000
"""Wider than any table or line the CLI prints: rich renders at this width only what needs it."""


class CliConsole(Console):
    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
            return size
        return ConsoleDimensions(UNWRAPPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def cli_console() -> Console:
    return CliConsole()
