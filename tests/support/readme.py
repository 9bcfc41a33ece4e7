"""The code examples in README.md, read from it as a reader sees them (so a test runs what the README says)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CodeBlock:
    lang: str  # the fence's info string: python, sh, mermaid, or empty
    code: str
    line: int  # where its opening fence is, 1-based

    def __str__(self) -> str:
        first = self.code.splitlines()[0] if self.code else ""
        return f"README.md:{self.line} ```{self.lang} ({first[:60]!r})"


def code_blocks(text: str | None = None) -> list[CodeBlock]:
    """Every fenced block of README.md, in order."""
    text = README.read_text(encoding="utf-8") if text is None else text
    return [CodeBlock(m["lang"], m["code"], text.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(text)]
