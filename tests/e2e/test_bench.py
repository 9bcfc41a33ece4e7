"""`make bench` runs end to end: at a tiny size (seconds, not its real minutes), every section runs and prints the
figures docs/performance.md records. No speed is asserted: the figures are the bench's to print, not a test's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# Each bench runs under its own time-out, inside the test's (the suite's 180 s would cut a tiny bench slowed by a
# loaded machine short, and say nothing of where it was).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(660)]
REPO = Path(__file__).resolve().parents[2]


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m bench.pipeline` with `args`; past `timeout` the test fails showing what the bench had printed."""
    try:
        return subprocess.run([sys.executable, "-m", "bench.pipeline", *args], check=False, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        said = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"bench.pipeline {' '.join(args)} still running after {timeout:.0f} s; it had printed:\n{said}")


def test_every_section_runs_and_prints_its_figures() -> None:
    done = bench("--mentors", "20", "--referrals", "30", "--rounds", "1", "--rates", "20", "--duration", "2",
                 "--backlog", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.split("\nsummary", 1)[1]
    assert re.search(r"flood: median over 1 rounds \d+\.\d+× raw", summary), summary
    assert re.search(r"CPU per referral intake \d+\.\d+ ms, risk \d+\.\d+ ms, scheduling \d+\.\d+ ms", summary), summary
    assert re.search(r"peak RSS \(highest of the rounds\) intake \d+ MiB, risk \d+ MiB, scheduling \d+ MiB", summary)
    assert re.search(r"latency @20/s: reroute p50 [\d,]+ ms, p99 [\d,]+ ms \(second half [\d,]+ / [\d,]+ ms\); "
                     r"raw relay p50 [\d,]+ ms, p99 [\d,]+ ms", summary), summary
    assert re.search(r"drain: a backlog of 30 referrals drained \d+\.\d s after the services were started", summary)


def test_a_section_can_be_run_alone_and_a_service_with_replicas() -> None:
    done = bench("--sections", "drain", "--mentors", "20", "--backlog", "10", "--replicas", "intake=2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intake ×2" in done.stdout
    assert "drain: a backlog of 10 referrals" in done.stdout
    assert "flood" not in done.stdout.split("\nsummary", 1)[1] and "latency @" not in done.stdout


@pytest.mark.parametrize(("args", "said"), [
    (["--sections", "flood,speed"], "unknown section speed: choose from flood, latency, drain"),
    (["--rates", "10,fast"], "rates are numbers a second, comma-separated (10,50,100), not '10,fast'"),
    (["--rates", "0"], "rates must be above 0"),
    (["--replicas", "intake=two"], "replicas are service=count, comma-separated (intake=2,risk=2)"),
    (["--replicas", "notifier=2"], "not 'notifier=2'"),
])
def test_bad_options_are_refused_clearly(args: list[str], said: str) -> None:
    done = bench(*args, timeout=60)
    assert done.returncode == 2
    assert said in done.stderr


def test_the_span_store_bench_runs_and_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.span_store", "--referrals", "100", "--lookups", "5",
                           "--scans", "1"], check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\| span store \(index\) \| [\d,.]+ m?s \| [\d,.]+ m?s \| 5 \|", done.stdout), done.stdout
    assert re.search(r"\| scan of every span file \| [\d,.]+ m?s \|", done.stdout), done.stdout


CONSOLE_PAGES = (  # the main pages, as each person who uses them (tests reach bench/ only as a program)
    ("waitlist", "scheduler"), ("a referral", "scheduler"), ("recommend", "scheduler"),
    ("a mentor's week", "scheduler"), ("a borough's week", "scheduler"), ("risk reviews", "risk_lead"),
    ("a risk case", "risk_lead"), ("alerts", "dsl"), ("operations overview", "operator"), ("dead letters", "operator"),
    ("traces", "operator"), ("a referral's trace", "operator"),
)


def test_the_console_pages_bench_runs_and_prints_a_row_per_page() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.console_pages", "--mentors", "20", "--referrals", "10",
                           "--requests", "2"], check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, role in CONSOLE_PAGES:
        assert re.search(rf"^\| {re.escape(name)} \| {role} \|( [\d.]+ \|){{{8}}}$", done.stdout,
                         re.MULTILINE), (name, done.stdout)
    assert re.search(r"console RSS at the end \d+ MiB", done.stdout), done.stdout
