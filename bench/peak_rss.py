"""Peak memory of a running `reroute up` and each process it started, from /proc (Linux): the figures the Kubernetes
manifests' memory requests and limits come from (README, "Operate → Kubernetes").

    .venv/bin/python -m bench.peak_rss PID      # PID of `reroute up`

Prints each process's peak resident set (VmHWM: the most it has held in RAM since it started) and its present one
(VmRSS), in MiB. Read it after the load you want to size for, before stopping the stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PROC = Path("/proc")


def status(pid: int) -> dict[str, str]:
    fields = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def mebibytes(field: str) -> float:
    """A /proc status memory field ("123456 kB") in MiB."""
    number, unit = field.split()
    assert unit == "kB", unit
    return int(number) / 1024


def children(pid: int) -> list[int]:
    found = []
    for task in (PROC / str(pid) / "task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return sorted(found)


def command(pid: int) -> str:
    return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pid", type=int, help="the pid of `reroute up`")
    pid = parser.parse_args().pid
    print(f"{'peak MiB':>9} {'now MiB':>8}  process")
    for each in [pid, *children(pid)]:
        fields = status(each)
        print(f"{mebibytes(fields['VmHWM']):9.1f} {mebibytes(fields['VmRSS']):8.1f}  {command(each)[:100]}")


if __name__ == "__main__":
    main()
