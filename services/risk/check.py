"""`python -m services.risk.check FILE`: validate a rules file exactly as the risk service does at start.

`reroute rules check FILE` runs this; it needs no running service. Exit 0 when the file is sound, 1 when not.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.risk.ruleset import RulesError, load_rules


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.risk.check RULES_FILE", file=sys.stderr)
        return 2
    try:
        rules = load_rules(Path(argv[0]))
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{argv[0]}: rules {rules.id} version {rules.version} are sound "
          f"({len(rules.indicator_meanings())} indicators, {len(rules.protective_meanings())} protective factors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
