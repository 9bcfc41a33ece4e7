"""An HTTP request's look-up beside the database thread: on SQLite it never waits for the thread's batch."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from shared.db import make_engine, reading
from shared.settings import ServiceSettings


def test_a_read_answers_from_what_is_committed_while_a_batch_holds_the_write_lock(tmp_path: Path) -> None:
    engine = make_engine("intake", ServiceSettings(data_dir=tmp_path, database_url=None))  # SQLite's locks
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE agency (id TEXT PRIMARY KEY, status TEXT)"))
        conn.execute(text("INSERT INTO agency VALUES ('yot-a', 'active')"))
    holding, release = threading.Event(), threading.Event()

    def batch() -> None:  # the database thread, in the middle of a write transaction
        with engine.begin() as conn:
            conn.execute(text("UPDATE agency SET status = 'revoked' WHERE id = 'yot-a'"))
            holding.set()
            release.wait()

    writer = threading.Thread(target=batch)
    writer.start()
    try:
        assert holding.wait(10)
        seen: list[str] = []

        def look_up() -> None:
            with reading(engine) as conn:
                seen.append(conn.execute(text("SELECT status FROM agency WHERE id = 'yot-a'")).scalar_one())

        reader = threading.Thread(target=look_up)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "the read waited for the write transaction (it took SQLite's write lock)"
        assert seen == ["active"], "a read sees what is committed, not the batch in progress"
    finally:
        release.set()
        writer.join()
    with reading(engine) as conn:
        assert conn.execute(text("SELECT status FROM agency")).scalar_one() == "revoked"
    engine.dispose()


def test_reading_never_turns_a_write_transaction_into_a_deferred_one(tmp_path: Path) -> None:
    engine = make_engine("intake", ServiceSettings(data_dir=tmp_path, database_url=None))
    with reading(engine) as conn:
        conn.execute(text("SELECT 1"))
    with engine.connect() as conn:  # the same pooled connection, without the option
        assert not conn.get_execution_options().get("reroute_reads_only")
    engine.dispose()


