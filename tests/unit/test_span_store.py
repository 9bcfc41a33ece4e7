"""The indexed span store (shared/span_store.py) on its own: a referral's traces (its own and the callers' linked to
it) as the file scan finds them, the recent, slowest and failed traces, each answered through an index; the span
files imported once; retention and erasure, in the store and in the files; private files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from shared import span_store
from shared.span_store import SpanStore
from shared.telemetry import TRACES_DIR, StoredSpan, spans_of_referral
from tests.support.waiting import wait_until_sync

MS = 1_000_000
DAY = 86_400 * 10**9
A, B, C, D = "a" * 32, "b" * 32, "c" * 32, "d" * 32


def span(trace: str, span_id: str, start_ms: int, end_ms: int, *, parent: str | None = None, status: str = "UNSET",
         referral: str | None = None, links: list[str] | None = None) -> StoredSpan:
    return StoredSpan(trace, span_id, parent, f"work {span_id}", "intake", start_ms * MS, end_ms * MS, status,
                      {"referral.id": referral} if referral else {},
                      [{"trace_id": t, "span_id": "0" * 16} for t in links or []])


SPANS = [
    span(A, "a1", 0, 10, referral="ref_aaa111"),
    span(A, "a2", 20, 500, parent="a1", referral="ref_aaa111", links=[B]),  # an agency's update, in its own trace
    span(B, "b1", 15, 25, links=[A]),
    span(C, "c1", 100, 130, status="ERROR", referral="ref_ccc333"),
    span(D, "d1", 200, 210, referral="ref_ddd444"),
]


def stored(tmp_path: Path, spans: list[StoredSpan] = SPANS) -> SpanStore:
    store = SpanStore.of(tmp_path)
    store.add(spans)
    return store


def write_file(tmp_path: Path, name: str, spans: list[StoredSpan], tail: str = "") -> Path:
    path = tmp_path / TRACES_DIR / name
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as fh:
        fh.write("".join(json.dumps(asdict(s)) + "\n" for s in spans) + tail)
    return path


def test_a_referrals_traces_are_its_own_and_the_callers_linked_as_the_file_scan_finds_them(tmp_path: Path) -> None:
    store = stored(tmp_path)
    found = store.spans_of_referral("ref_aaa111")
    assert [s.span_id for s in found] == ["a1", "b1", "a2"]
    assert found[2].links == [{"trace_id": B, "span_id": "0" * 16}] and found[0].attributes == {
        "referral.id": "ref_aaa111"}
    write_file(tmp_path, "intake-1.jsonl", SPANS)
    assert found == spans_of_referral(tmp_path, "ref_aaa111")
    assert store.spans_of_referral("ref_0000000000000000") == []
    assert store.add(SPANS) == 0, "a span sent again is stored once"


def test_recent_slowest_and_failed_traces_in_their_order(tmp_path: Path) -> None:
    store = stored(tmp_path)
    assert store.recent(3) == [D, C, B]
    assert store.slowest(2) == [A, C]
    assert store.failed(10) == [C]
    assert [s.span_id for s in store.spans_of_traces([C, D])] == ["c1", "d1"]


def test_every_lookup_is_answered_through_an_index(tmp_path: Path) -> None:
    store = stored(tmp_path)
    asked: list[str] = []
    store.recent(1)  # connected
    assert store._db is not None
    store._db.set_trace_callback(asked.append)
    store.spans_of_referral("ref_aaa111")
    store.recent(20), store.slowest(20), store.failed(20)
    store._db.set_trace_callback(None)
    plans = {sql: [row[3] for row in sqlite3.connect(store.path).execute(f"EXPLAIN QUERY PLAN {sql}")]
             for sql in asked if sql.startswith("SELECT")}
    assert len(plans) == 6
    for sql, plan in plans.items():
        scans = [step for step in plan if step.startswith("SCAN") and "INDEX" not in step]
        assert not scans, f"{sql} reads a whole table: {plan}"


def test_span_files_are_imported_once_each_line_a_torn_last_line_when_whole(tmp_path: Path) -> None:
    path = write_file(tmp_path, "risk-7.jsonl", SPANS[:3], tail='{"trace_id": "' + D)
    store = SpanStore.of(tmp_path)
    assert store.import_files() == 3
    assert store.import_files() == 0
    with path.open("a") as fh:
        fh.write(json.dumps(asdict(SPANS[4]))[len('{"trace_id": "') + 32:] + "\n")
    assert store.import_files() == 1
    assert store.recent(10) == [D, B, A]


def test_a_file_larger_than_a_read_is_imported_whole_across_reads(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(span_store, "IMPORT_CHUNK", 500)  # about two lines a read, most lines cut in two
    write_file(tmp_path, "intake-2.jsonl", SPANS)
    store = SpanStore.of(tmp_path)
    assert store.import_files() == len(SPANS) and store.recent(10) == [D, C, B, A]


def test_spans_past_the_retention_period_go_a_trace_keeping_its_later_spans(tmp_path: Path) -> None:
    store = stored(tmp_path)
    old = write_file(tmp_path, "scheduling-1.jsonl", SPANS[:1])
    store.import_files()
    assert store.prune(before_ns=18 * MS) == 2  # a1 and b1; a2 (A's later span), c1 and d1 stay
    assert store.recent(10) == [D, C, A] and store.slowest(1) == [A]
    assert [s.span_id for s in store.spans_of_referral("ref_aaa111")] == ["a2"]
    assert old.exists(), "written after the cut-off (now)"
    assert store.import_files() == 0, "a file still written to is not read again: its pruned lines stay gone"
    assert store.prune(before_ns=2**62) == 3 and store.recent(10) == [] and not old.exists()


def test_erasing_a_referral_deletes_its_traces_and_the_callers_linked_in_the_store_and_the_files(
        tmp_path: Path) -> None:
    store = stored(tmp_path, SPANS[3:])
    path = write_file(tmp_path, "intake-9.jsonl", SPANS)  # not imported yet
    assert store.erase(["ref_aaa111", "ref_ccc333"]) == 4
    assert store.spans_of_referral("ref_aaa111") == [] and store.recent(10) == [D] and store.failed(10) == []
    assert [json.loads(line)["span_id"] for line in path.read_text().splitlines()] == ["d1"]
    assert spans_of_referral(tmp_path, "ref_aaa111") == []
    assert store.import_files() == 0


def test_a_file_an_erasure_rewrote_goes_when_its_last_span_is_past_the_retention_period(tmp_path: Path) -> None:
    path = write_file(tmp_path, "risk-8.jsonl", SPANS)  # other referrals' spans too
    two_days_ago = time.time_ns() - 2 * DAY
    os.utime(path, ns=(two_days_ago, two_days_ago))
    store = SpanStore.of(tmp_path)
    store.erase(["ref_ccc333"])
    assert path.stat().st_mtime_ns == two_days_ago and len(path.read_text().splitlines()) == 4
    store.prune(before_ns=time.time_ns() - DAY)
    assert not path.exists()


def test_a_files_erasure_reads_it_a_line_at_a_time_and_keeps_the_lines_not_imported_yet(tmp_path: Path) -> None:
    path = write_file(tmp_path, "intake-4.jsonl", [
        span(A, f"a{i}", i, i + 1, referral="ref_aaa111") if i % 2 else span(D, f"d{i}", i, i + 1)
        for i in range(1_000)])
    store = SpanStore.of(tmp_path)
    assert store.import_files() == 1_000
    size = path.stat().st_size
    write_file(tmp_path, "intake-4.jsonl", [SPANS[3]])  # appended after the import, before the erasure's rewrite
    tracemalloc.start()
    try:
        store._erase_from_files({A}, {"ref_aaa111"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"{peak} bytes at most: the file is not read whole"
    assert path.stat().st_mode & 0o777 == 0o600 and not list(path.parent.glob(".*.erasing"))
    assert store.import_files() == 1 and store.failed(10) == [C], "the line not imported yet is imported, once"
    assert sum(1 for _ in path.open()) == 501


def test_spans_arriving_after_an_erasure_are_refused_and_taken_out_of_the_files_for_the_retention_period(
        tmp_path: Path) -> None:
    store = stored(tmp_path)
    store.erase(["ref_aaa111"])
    E, F, G = "e" * 32, "f" * 32, "9" * 32
    late = [span(A, "a3", 600, 610),  # the erased trace's last span, exported after the erasure
            span(E, "e1", 700, 710, referral="ref_aaa111"),  # the erasure's own work, in a trace of its own
            span(F, "f1", 720, 730, links=[E])]  # its caller's, which names no one: a link alone refuses nothing
    assert store.add(late) == 1
    path = write_file(tmp_path, "risk-3.jsonl", [span(G, "g1", 800, 810), *late, span(D, "d2", 900, 910)])
    assert store.import_files() == 2  # g1 (no referral id) and d2
    write_file(tmp_path, "risk-3.jsonl", [span(G, "g2", 820, 830, referral="ref_aaa111")])
    assert store.import_files() == 0  # g1's trace names the referral only now: g1 goes too
    assert store.recent(10) == [F, D, C] and store.spans_of_referral("ref_aaa111") == []
    assert [json.loads(line)["span_id"] for line in path.read_text().splitlines()] == ["f1", "d2"]
    assert store.import_files() == 0 and store.recent(10) == [F, D, C], "the lines that stay are not read again"
    store.prune(before_ns=time.time_ns() + 1)  # a year on: the erasure is forgotten, as any span of it would be
    assert store.add(late[:1]) == 1


def test_erasing_one_of_two_referrals_sharing_a_door_trace_keeps_the_others_spans_early_and_late(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    J, R1, R2 = "e" * 32, "1" * 32, "2" * 32
    store = stored(tmp_path, [
        span(C, "c1", 0, 10, referral="ref_one"),  # an agency sends both under one traceparent: the door's trace
        span(C, "c2", 0, 10, referral="ref_two"),
        span(R1, "r1", 20, 30, referral="ref_one", links=[C]),
        span(R2, "r2", 20, 30, referral="ref_two", links=[C]),
        span(R2, "r2x", 22, 28, parent="r2"),  # ref_two's work that names no referral
        span(J, "j1", 40, 50, links=[R1])])  # the agency's job polls ref_one's status
    assert store.erase(["ref_one"]) == 3  # c1, r1 and the job's poll j1; c2 names ref_two
    late = [span(R1, "r1b", 60, 70, referral="ref_one"),  # risk's span of ref_one, exported after the erasure
            span(R1, "r1c", 62, 68, parent="r1b"),
            span(C, "c3", 70, 75),  # the door's, in a trace that names ref_two too
            span(J, "j2", 80, 90),  # the same job, naming no one, then updates ref_two...
            span(R2, "r2b", 90, 100, referral="ref_two", links=[J])]  # ...and intake's span links to its trace
    assert store.add(late) == 2  # c3 and r2b
    assert store.add([span(R2, "r2c", 110, 120, referral="ref_two")]) == 1  # ref_two's later risk span
    assert [s.span_id for s in store.spans_of_traces([C, R2])] == ["c2", "r2", "r2x", "c3", "r2b", "r2c"]
    assert store.spans_of_referral("ref_one") == [] and store.spans_of_traces([R1, J]) == []
    monkeypatch.setattr(span_store, "ERASED_TRACE_MEMORY_NS", 0)
    store.prune(before_ns=0)  # a day on: the erased traces are forgotten, the erased referral is not
    assert store.add([span(R1, "r1d", 130, 140)]) == 1 and store.add([span(D, "d9", 150, 160, referral="ref_one")]) == 0


ERASE_REF_ONE = ("import sys, pathlib; from shared.span_store import SpanStore; "
                 "SpanStore.of(pathlib.Path(sys.argv[1])).erase(['ref_one'])")
"""`reroute person erase`'s erasure of a data dir's span store, as a process of its own."""


@pytest.mark.parametrize("eraser", ["process", "thread"])
def test_an_erasure_beside_an_import_that_rewrites_the_same_file_stays_erased(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eraser: str) -> None:
    """The console imports a file and takes a late line of an erased referral out of it; meanwhile `reroute person
    erase` (another process) or the console's `spans.erase` (another thread) erases another referral from the same
    file. The import's rewrite, read before the erasure, must not be put in place over it: the erasure waits for the
    import's turn to end, then erases."""
    store = SpanStore.of(tmp_path)
    store.erase(["ref_two"])
    path = write_file(tmp_path, "intake-5.jsonl", [span(A, "a1", 0, 10, referral="ref_one"), SPANS[4]])
    assert store.import_files() == 2
    write_file(tmp_path, "intake-5.jsonl", [span(C, "c9", 20, 30, referral="ref_two")])  # late: refused, taken out
    paused, go_on = threading.Event(), threading.Event()
    replace = os.replace

    def paused_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == path and not paused.is_set():  # the import's rewrite: read and written, not yet in place
            paused.set()
            assert go_on.wait(60)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", paused_replace)
    importing = threading.Thread(target=store.import_files)
    importing.start()
    try:
        assert paused.wait(60)
        done: Callable[[], bool]
        if eraser == "process":
            process = subprocess.Popen([sys.executable, "-c", ERASE_REF_ONE, str(tmp_path)],
                                       cwd=Path(__file__).parents[2])
            done, pid = (lambda: process.poll() is not None), process.pid
        else:
            erasing = threading.Thread(target=store.erase, args=(["ref_one"],))
            erasing.start()
            done, pid = (lambda: not erasing.is_alive()), os.getpid()
        lock = store.path.parent / span_store.LOCK_FILE
        wait_until_sync(lambda: done() or waiting_on(lock, pid), timeout=60, every=0.05,
                        what="the erasure's end, or its wait for the lock")
    finally:
        go_on.set()
        importing.join()
    if eraser == "process":
        assert process.wait(60) == 0
    else:
        erasing.join()
    assert [json.loads(line)["span_id"] for line in path.read_text().splitlines()] == ["d1"]
    assert spans_of_referral(tmp_path, "ref_one") == [] and store.spans_of_referral("ref_one") == []
    assert store.import_files() == 0 and store.recent(10) == [D]


def waiting_on(lock: Path, pid: int) -> bool:
    """Whether process `pid` waits for a lock on this file (Linux lists the waiters in /proc/locks, marked ->)."""
    inode = str(lock.stat().st_ino)
    return any(fields[1] == "->" and fields[5] == str(pid) and fields[6].split(":")[-1] == inode
               for fields in (line.split() for line in Path("/proc/locks").read_text().splitlines()))


def test_a_crashed_rewrites_temporary_files_go_once_a_few_minutes_old(tmp_path: Path) -> None:
    store = stored(tmp_path)
    old, young = (store.path.parent / f".intake-1.jsonl.{tag}.erasing" for tag in ("x1y2z3", "a4b5c6"))
    for path in (old, young):  # other referrals' spans, left by a rewrite that crashed before its rename
        path.write_text(json.dumps(asdict(SPANS[4])) + "\n")
    hour_ago = time.time_ns() - 3_600 * 10**9
    os.utime(old, ns=(hour_ago, hour_ago))
    store.prune(before_ns=0)
    assert not old.exists() and young.exists(), "a young one may be a rewrite still writing"
    os.utime(young, ns=(hour_ago, hour_ago))
    write_file(tmp_path, "intake-1.jsonl", SPANS)
    store.erase(["ref_ccc333"])
    assert not young.exists()


def test_the_store_is_its_users_alone(tmp_path: Path) -> None:
    store = stored(tmp_path)
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.parent.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in store.path.parent.iterdir())
