"""The indexed span store: spans in one SQLite file, <data dir>/traces/spans.sqlite3, so that one referral's traces,
the recent ones, the slowest and those with errors are each found through an index, not by reading every span file
(after a year of traffic a scan reads a million spans: docs/performance.md, *Span store*).

Locally the console is the services' OTLP receiver (apps/console/receiver.py) and writes here; the span files the
services write when no console receives their spans (shared/telemetry.py) are imported here too, each line once
(`import_files`), so the console's *Traces* pages and `reroute trace` give the same answers whichever way spans came.

Spans carry referral ids, so the store keeps them no longer than the referral (`prune`: spans older than
REROUTE_RETENTION_DAYS go, and span files last written before then) and erases a young person's with them
(`erase`, which `reroute person erase` calls). The services export a span up to OTEL_BSP_SCHEDULE_DELAY after it
ends (longer under load), so spans of an erased referral may still arrive after its erasure: the store remembers the
erased referral ids (pseudonymous ids, nothing else) for the retention period, by when any span of theirs is past it
too, and the erased traces that named no other referral for a day (ERASED_TRACE_MEMORY_NS), and refuses their late
spans, from the receiver and from the span files alike. A span that names a referral not erased is never erased nor
refused: a trace may carry several referrals (an agency's several under one traceparent) and link to an erased one's
(its job polled it). Never a service's database: the console reads none.

Tables: `spans` (clustered by trace, indexed by referral id and start time), `traces` (one row per trace: its first
start, last end and whether a span failed, indexed by start, by duration and, for the failed ones, by start), and
`span_links` (which traces link to which, indexed by the trace linked to), `imported_files` (how far each span file
has been read), `erased_referrals` and `erased_traces` (what was erased, and when).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shared.telemetry import TRACES_DIR, StoredSpan

STORE_FILE = "spans.sqlite3"
IMPORT_CHUNK = 8 * 2**20
"""Bytes of a span file read at a time (a span's line is well under a kilobyte)."""
REFERRAL_ATTRIBUTE = "referral.id"
ERASED_TRACE_MEMORY_NS = 86_400 * 10**9
"""How long an erased trace is remembered: a late span is exported seconds or minutes after it ends."""
LOCK_FILE = "spans.lock"
"""Beside the store: held (flock) while the span files or their import offsets change (`SpanStore._files_locked`)."""
STALE_REWRITE_NS = 5 * 60 * 10**9
"""Age past which a span file's rewrite (`.<file>.jsonl.<random>.erasing`) is taken for a crashed one's leftover."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL, service TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, status TEXT NOT NULL, referral_id TEXT,
    attributes TEXT NOT NULL, links TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_by_referral ON spans (referral_id) WHERE referral_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, failed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_by_duration ON traces (end_ns - start_ns);
CREATE INDEX IF NOT EXISTS failed_traces_by_start ON traces (start_ns) WHERE failed;
CREATE TABLE IF NOT EXISTS span_links (
    linked_trace_id TEXT NOT NULL, trace_id TEXT NOT NULL, PRIMARY KEY (linked_trace_id, trace_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS imported_files (path TEXT PRIMARY KEY, offset INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erased_referrals (referral_id TEXT PRIMARY KEY, erased_ns INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erased_traces (trace_id TEXT PRIMARY KEY, erased_ns INTEGER NOT NULL) WITHOUT ROWID;
"""
_COLUMNS = "trace_id, span_id, parent_id, name, service, start_ns, end_ns, status, attributes, links"
_INSERTED = "trace_id, span_id, parent_id, name, service, start_ns, end_ns, status, referral_id, attributes, links"


class SpanStore:
    """The store in `path` (created, 0600 in a 0700 directory, at its first use; nothing happens before). Safe to
    use from several threads (one connection, one at a time) and from several processes (SQLite's locking, WAL; the
    span files' importers, pruners and erasers take turns: `_files_locked`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, data_dir: Path) -> SpanStore:
        return cls(data_dir / TRACES_DIR / STORE_FILE)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # private before SQLite writes a byte
                db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # spans are diagnostics: a power cut may lose the last few
                db.executescript(_SCHEMA)
                self._db = db
            yield self._db

    @contextmanager
    def _files_locked(self) -> Iterator[None]:
        """Held while the span files or their import offsets change (import, prune, erase): by one thread of one
        process at a time, an OS lock on LOCK_FILE, so that the console's threads and a CLI beside it (`reroute
        trace`, `reroute person erase`) take turns. Otherwise a file rewritten from an older read can put back an
        erasure's lines, and an import's offset from before a rewrite or a prune can skip lines written since."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.parent / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        try:  # a descriptor of its own each time: flock shuts out another descriptor in this process too
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # and the lock with it

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def add(self, spans: Sequence[StoredSpan]) -> int:
        """Store these spans (one already stored, by trace and span id, is kept as it was); returns how many. Late
        arrivals are refused: a span that names an erased referral, and one that names none in an erased trace that
        names no other referral. A link to an erased trace refuses nothing."""
        return self._add(spans)[0]

    def _add(self, spans: Sequence[StoredSpan]) -> tuple[int, set[str], set[str]]:
        """How many spans were stored, the erased traces (naming no other referral) whose spans were refused, and the
        erased referrals."""
        if not spans:
            return 0, set(), set()
        with self._connection() as db, _transaction(db):
            referrals = _known(db, "erased_referrals", "referral_id", {r for s in spans if (r := _referral_id(s))})
            remembered = _known(db, "erased_traces", "trace_id", {s.trace_id for s in spans})
            erased = remembered | {s.trace_id for s in spans if _referral_id(s) in referrals}
            others = {s.trace_id for s in spans if (r := _referral_id(s)) and r not in referrals}
            traces = erased - others - _naming_others(db, erased)
            if traces or referrals:  # with an earlier batch's spans of a trace that names the referral only now
                _erase_spans(db, traces)
                _remember_traces(db, traces - remembered, time.time_ns())
                spans = [s for s in spans if not _refused(s, traces, referrals)]
            return _insert(db, spans), traces, referrals

    # --- reading ------------------------------------------------------------------------------------------------

    def spans_of_traces(self, trace_ids: Iterable[str]) -> list[StoredSpan]:
        """Every span of these traces, in start order."""
        ids = sorted(set(trace_ids))
        with self._connection() as db:
            return _spans(db, ids)

    def spans_of_referral(self, referral_id: str) -> list[StoredSpan]:
        """All spans of every trace that touched this referral (its own, and the callers' traces that link to it: an
        agency's requests, say), in start order: as shared.telemetry.spans_of_referral finds them in the files."""
        with self._connection() as db:
            return _spans(db, _traces_of_referrals(db, [referral_id]))

    def recent(self, limit: int) -> list[str]:
        """The traces that started last, newest first."""
        return self._trace_ids("SELECT trace_id FROM traces ORDER BY start_ns DESC LIMIT ?", limit)

    def slowest(self, limit: int) -> list[str]:
        """The traces longest from their first span's start to their last span's end, longest first."""
        return self._trace_ids("SELECT trace_id FROM traces ORDER BY end_ns - start_ns DESC LIMIT ?", limit)

    def failed(self, limit: int) -> list[str]:
        """The traces with a span that ended in error, newest first."""
        return self._trace_ids("SELECT trace_id FROM traces WHERE failed ORDER BY start_ns DESC LIMIT ?", limit)

    def _trace_ids(self, query: str, limit: int) -> list[str]:
        with self._connection() as db:
            return [row[0] for row in db.execute(query, (limit,))]

    # --- retention and erasure ----------------------------------------------------------------------------------

    def prune(self, before_ns: int) -> int:
        """Delete the spans that started before `before_ns` (the retention period), the span files last written before
        then, a crashed rewrite's leftovers, the memory of erased referrals from before then and of erased traces
        older than ERASED_TRACE_MEMORY_NS; returns how many spans went. A trace keeps its later spans."""
        with self._connection() as db, _transaction(db):
            touched = [row[0] for row in db.execute("SELECT DISTINCT trace_id FROM spans WHERE start_ns < ?",
                                                    (before_ns,))]
            gone = db.execute("DELETE FROM spans WHERE start_ns < ?", (before_ns,)).rowcount
            _summarise_again(db, touched)
            db.execute("DELETE FROM erased_referrals WHERE erased_ns < ?", (before_ns,))  # their spans are past it too
            db.execute("DELETE FROM erased_traces WHERE erased_ns < ?",
                       (max(before_ns, time.time_ns() - ERASED_TRACE_MEMORY_NS),))
        with self._files_locked():
            self._remove_stale_rewrites()
            for path in self.path.parent.glob("*.jsonl"):
                try:
                    if path.stat().st_mtime_ns >= before_ns:
                        continue  # still written to: its import offset stays, so its pruned lines are not read again
                    path.unlink()
                except FileNotFoundError:
                    pass
                with self._connection() as db:
                    db.execute("DELETE FROM imported_files WHERE path = ?", (path.name,))
        return gone

    def erase(self, referral_ids: Sequence[str]) -> int:
        """Delete the spans of the traces that touched these referrals (theirs, and the callers' linked to a trace of
        theirs that names no other referral), here and in the span files beside the store, except those that name
        another referral; returns how many spans went from the store (the files' lines are imported first, so they
        are counted). The referrals, and the traces that name no other, are remembered, so that their spans arriving
        later are refused (`add`)."""
        erased = set(referral_ids)
        with self._files_locked():
            self._import_files()
            now = time.time_ns()
            with self._connection() as db, _transaction(db):
                db.executemany("INSERT INTO erased_referrals VALUES (?, ?) ON CONFLICT (referral_id) DO UPDATE SET "
                               "erased_ns = excluded.erased_ns", [(r, now) for r in sorted(erased)])
                own = _own_traces(db, referral_ids)
                traces = own | _callers(db, own - _naming_others(db, own))
                gone = _erase_spans(db, traces)
                _remember_traces(db, traces - _naming_others(db, traces), now)
            self._erase_from_files(traces, erased)
        return gone

    def _erase_from_files(self, trace_ids: set[str], referral_ids: set[str]) -> None:
        """Each span file with lines to erase (naming one of these referrals, or none in one of these traces) written
        anew without them, a line at a time (a year's file is large), into a private file put in its place (a service
        appending to it meanwhile, one run without a console, may lose the spans of that moment: never a line
        erased). Its import offset moves back by the lines taken out before it, so the lines after it are still
        imported. The caller holds `_files_locked`."""
        if not trace_ids and not referral_ids:
            return
        self._remove_stale_rewrites()
        for path in sorted(self.path.parent.glob("*.jsonl")):
            try:
                with path.open("rb") as fh:
                    if not any(_erased_line(line, trace_ids, referral_ids) for line in fh):
                        continue
                with self._connection() as db:
                    row = db.execute("SELECT offset FROM imported_files WHERE path = ?", (path.name,)).fetchone()
                offset = _rewritten(path, trace_ids, referral_ids, imported=row[0] if row else 0)
            except FileNotFoundError:
                continue
            with self._connection() as db:
                db.execute("INSERT INTO imported_files VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET "
                           "offset = excluded.offset", (path.name, offset))

    def _remove_stale_rewrites(self) -> None:
        """Delete the private files of span files' rewrites that crashed before their rename (they hold other
        referrals' spans, out of the retention's reach); a young one may be a rewrite still writing, and stays."""
        for path in self.path.parent.glob(".*.jsonl.*.erasing"):
            try:
                if path.stat().st_mtime_ns < time.time_ns() - STALE_REWRITE_NS:
                    path.unlink()
            except FileNotFoundError:
                continue

    # --- the span files -----------------------------------------------------------------------------------------

    def import_files(self) -> int:
        """Store the lines of the span files beside the store (<data dir>/traces/*.jsonl) not read before (each file
        from where the last import stopped; a torn last line waits for the next); returns how many spans. Lines
        written after an erasure that `add` refuses are refused, and taken out of the files."""
        with self._files_locked():
            return self._import_files()

    def _import_files(self) -> int:
        added, refused_traces, refused_referrals = 0, set[str](), set[str]()
        for path in sorted(self.path.parent.glob("*.jsonl")):
            with self._connection() as db:
                row = db.execute("SELECT offset FROM imported_files WHERE path = ?", (path.name,)).fetchone()
            offset = row[0] if row else 0
            try:
                fh = path.open("rb")
            except FileNotFoundError:
                continue
            with fh:
                if os.fstat(fh.fileno()).st_size < offset:  # a new file of that name: from its start
                    offset = 0
                fh.seek(offset)
                while whole := _whole_lines(fh.read(IMPORT_CHUNK)):  # a chunk at a time: a year's file is large
                    offset += len(whole)
                    fh.seek(offset)  # a torn line again, whole, with the next chunk
                    stored, traces, referrals = self._add(_parsed(whole))
                    added += stored
                    refused_traces |= traces
                    refused_referrals |= referrals
                    with self._connection() as db:  # after the spans: a crash between imports them again, once
                        db.execute("INSERT INTO imported_files VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET "
                                   "offset = excluded.offset", (path.name, offset))
        self._erase_from_files(refused_traces, refused_referrals)  # late lines of an erasure: gone from the files
        return added


def _rewritten(path: Path, trace_ids: set[str], referral_ids: set[str], *, imported: int) -> int:
    """`path` without the lines to erase (`_erased_line`), replaced whole (a private file renamed over it, last written
    when it was); returns the offset in it that `imported` (an offset in the old file) comes to."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".erasing")  # 0600, new
    fresh = Path(name)
    read = kept = 0
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as fh:
            if os.fstat(fh.fileno()).st_size < imported:  # a new file of that name: none of it imported
                imported = 0
            for line in fh:
                read += len(line)
                if _erased_line(line, trace_ids, referral_ids):
                    continue
                out.write(line)
                if read <= imported:
                    kept += len(line)
            written = os.fstat(fh.fileno())
        os.utime(fresh, ns=(written.st_atime_ns, written.st_mtime_ns))  # last written then: the retention counts from it
        os.replace(fresh, path)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    return kept


def _whole_lines(data: bytes) -> bytes:
    return data[:data.rfind(b"\n") + 1]


def _parsed(lines: bytes) -> list[StoredSpan]:
    spans = []
    for line in lines.splitlines():
        try:
            spans.append(StoredSpan(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return spans


def _erased_line(line: bytes, trace_ids: set[str], referral_ids: set[str]) -> bool:
    """Whether this span file's line names one of these referrals, or names none and is of one of these traces."""
    try:
        found = json.loads(line)
        referral = found.get("attributes", {}).get(REFERRAL_ATTRIBUTE)
        trace = found.get("trace_id")
    except (ValueError, AttributeError):
        return False
    if referral is not None:
        return str(referral) in referral_ids
    return isinstance(trace, str) and trace in trace_ids


def _referral_id(span: StoredSpan) -> str | None:
    value = span.attributes.get(REFERRAL_ATTRIBUTE)
    return str(value) if value is not None else None


def _refused(span: StoredSpan, trace_ids: set[str], referral_ids: set[str]) -> bool:
    """As `_erased_line`, for a span."""
    referral = _referral_id(span)
    return referral in referral_ids if referral is not None else span.trace_id in trace_ids


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _chunks(ids: list[str], size: int = 400) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _insert(db: sqlite3.Connection, spans: Sequence[StoredSpan]) -> int:
    """Store these spans, their traces' summaries and links; how many spans were new."""
    rows = [(s.trace_id, s.span_id, s.parent_id, s.name, s.service, s.start_ns, s.end_ns, s.status, _referral_id(s),
             json.dumps(s.attributes, separators=(",", ":")), json.dumps(s.links, separators=(",", ":"))) for s in spans]
    traces: dict[str, tuple[int, int, int]] = {}
    for s in spans:
        start, end, failed = traces.get(s.trace_id, (s.start_ns, s.end_ns, 0))
        traces[s.trace_id] = (min(start, s.start_ns), max(end, s.end_ns), failed | (s.status == "ERROR"))
    links = {(link["trace_id"], s.trace_id) for s in spans for link in s.links if link["trace_id"] != s.trace_id}
    before = db.total_changes
    db.executemany(f"INSERT OR IGNORE INTO spans ({_INSERTED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    added = db.total_changes - before
    db.executemany("INSERT INTO traces VALUES (?, ?, ?, ?) ON CONFLICT (trace_id) DO UPDATE SET "
                   "start_ns = min(start_ns, excluded.start_ns), end_ns = max(end_ns, excluded.end_ns), "
                   "failed = max(failed, excluded.failed)", [(t, *v) for t, v in traces.items()])
    db.executemany("INSERT OR IGNORE INTO span_links VALUES (?, ?)", sorted(links))
    return added


def _first_column_in(db: sqlite3.Connection, query: str, ids: Iterable[str]) -> set[str]:
    """The first column of `query`'s rows, whose `{}` takes a list of placeholders, asked for `ids` a chunk at a
    time (SQLite caps a statement's parameters)."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(ids))):
        found |= {row[0] for row in db.execute(query.format(",".join("?" * len(chunk))), chunk)}
    return found


def _known(db: sqlite3.Connection, table: str, column: str, ids: set[str]) -> set[str]:
    """Which of these ids the table holds."""
    return _first_column_in(db, f"SELECT {column} FROM {table} WHERE {column} IN ({{}})", ids)


def _naming_others(db: sqlite3.Connection, traces: Iterable[str]) -> set[str]:
    """Which of these traces have a stored span that names a referral not erased."""
    return _first_column_in(db, "SELECT DISTINCT trace_id FROM spans WHERE trace_id IN ({}) AND referral_id IS NOT "
                                "NULL AND referral_id NOT IN (SELECT referral_id FROM erased_referrals)", traces)


def _erase_spans(db: sqlite3.Connection, traces: set[str]) -> int:
    """Delete the spans of these traces that name no referral or an erased one (those naming another stay, with
    their trace's summary and links as they have them); how many spans."""
    gone = 0
    for chunk in _chunks(sorted(traces)):
        marks = ",".join("?" * len(chunk))
        gone += db.execute(f"DELETE FROM spans WHERE trace_id IN ({marks}) AND (referral_id IS NULL OR referral_id "
                           "IN (SELECT referral_id FROM erased_referrals))", chunk).rowcount
        db.execute(f"DELETE FROM span_links WHERE trace_id IN ({marks})", chunk)
        kept = db.execute(f"SELECT trace_id, links FROM spans WHERE trace_id IN ({marks})", chunk).fetchall()
        db.executemany("INSERT OR IGNORE INTO span_links VALUES (?, ?)", sorted(
            {(link["trace_id"], trace) for trace, links in kept for link in json.loads(links)
             if link["trace_id"] != trace}))
    _summarise_again(db, sorted(traces))
    return gone


def _remember_traces(db: sqlite3.Connection, traces: set[str], now_ns: int) -> None:
    db.executemany("INSERT INTO erased_traces VALUES (?, ?) ON CONFLICT (trace_id) DO UPDATE SET "
                   "erased_ns = excluded.erased_ns", [(t, now_ns) for t in sorted(traces)])


def _callers(db: sqlite3.Connection, traces: Iterable[str]) -> set[str]:
    """The callers' traces linked to these."""
    return _first_column_in(db, "SELECT trace_id FROM span_links WHERE linked_trace_id IN ({})", traces)


def _own_traces(db: sqlite3.Connection, referral_ids: Sequence[str]) -> set[str]:
    """The traces with a span that names one of these referrals."""
    return _first_column_in(db, "SELECT DISTINCT trace_id FROM spans WHERE referral_id IN ({})", referral_ids)


def _traces_of_referrals(db: sqlite3.Connection, referral_ids: Sequence[str]) -> list[str]:
    own = _own_traces(db, referral_ids)
    return sorted(own | _callers(db, own))


def _spans(db: sqlite3.Connection, trace_ids: list[str]) -> list[StoredSpan]:
    found = []
    for chunk in _chunks(trace_ids):
        for row in db.execute(f"SELECT {_COLUMNS} FROM spans WHERE trace_id IN ({','.join('?' * len(chunk))})",
                              chunk):
            trace_id, span_id, parent_id, name, service, start_ns, end_ns, status, attributes, links = row
            found.append(StoredSpan(trace_id, span_id, parent_id, name, service, start_ns, end_ns, status,
                                    json.loads(attributes), json.loads(links)))
    return sorted(found, key=lambda s: s.start_ns)


def _summarise_again(db: sqlite3.Connection, trace_ids: list[str]) -> None:
    """Each trace's row as its remaining spans have it; gone with its last span (and its links with it)."""
    for chunk in _chunks(trace_ids):
        marks = ",".join("?" * len(chunk))
        db.execute(f"UPDATE traces SET start_ns = coalesce((SELECT min(start_ns) FROM spans s WHERE s.trace_id = "
                   f"traces.trace_id), -1), end_ns = coalesce((SELECT max(end_ns) FROM spans s WHERE s.trace_id = "
                   f"traces.trace_id), end_ns), failed = EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = "
                   f"traces.trace_id AND status = 'ERROR') WHERE trace_id IN ({marks})", chunk)
        gone = [row[0] for row in db.execute(f"SELECT trace_id FROM traces WHERE start_ns = -1 AND trace_id IN "
                                             f"({marks})", chunk)]
        if gone:
            more = ",".join("?" * len(gone))
            db.execute(f"DELETE FROM traces WHERE trace_id IN ({more})", gone)
            db.execute(f"DELETE FROM span_links WHERE trace_id IN ({more}) OR linked_trace_id IN ({more})",
                       gone + gone)
