"""SQLite's writers: one lock across threads and processes, and the event loop's writes.

``Database`` queues its writers on a ``WriterLock`` (a thread lock and an ``flock`` beside
the database file) instead of SQLite's polling ``busy_timeout``. The event loop writes in a
``WriteGroup`` (group commit, a savepoint per write), which refuses, having written
nothing, while another writer holds the lock; a thread of its own does most of the
checkpointing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from dojo.platform.storage.db import Database
from dojo.platform.storage.groupcommit import WriteBusy
from dojo.platform.storage.rawsql import RawStatement


def _database(path: Path) -> Database:
    database = Database(f"sqlite:///{path}", pool_size=2)
    with database.session() as db:
        db.execute(text("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        db.execute(text("INSERT OR IGNORE INTO counter (id, n) VALUES (1, 0)"))
    return database


def _count(database: Database) -> int:
    with database.read_session() as db:
        return int(db.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())


def _increment(path: str, times: int) -> None:
    database = Database(f"sqlite:///{path}", pool_size=2)
    for _ in range(times):
        with database.session() as db:
            n = db.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
            db.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
    database.dispose()


def _hold_the_lock(
    path: str, holding: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    database = Database(f"sqlite:///{path}", pool_size=2)
    with database.session() as db:
        db.execute(text("UPDATE counter SET n = n + 100 WHERE id = 1"))
        holding.set()
        release.wait(30)
    database.dispose()


def _in_groups(database: Database, statements: list[tuple[str, tuple]]) -> None:
    """Each statement in a write group of its own, one after another, on an event loop."""

    async def write_all() -> None:
        group = database.write_group()
        for sql, params in statements:
            await group.run(lambda db, sql=sql, params=params: db.cursor.execute(sql, params))

    asyncio.run(write_all())


INCREMENT = ("UPDATE counter SET n = n + 1 WHERE id = 1", ())


@pytest.fixture
def spawn() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("spawn")


def test_writers_in_three_processes_take_turns_and_lose_no_update(tmp_path: Path, spawn):
    database = _database(tmp_path / "db.sqlite")
    workers = [spawn.Process(target=_increment, args=(str(tmp_path / "db.sqlite"), 150)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert _count(database) == 450
    database.dispose()


def test_a_write_group_refuses_while_another_process_writes_and_changes_nothing(tmp_path: Path, spawn):
    path = tmp_path / "db.sqlite"
    database = _database(path)
    holding, release = spawn.Event(), spawn.Event()
    other = spawn.Process(target=_hold_the_lock, args=(str(path), holding, release))
    other.start()
    try:
        assert holding.wait(60)
        with pytest.raises(WriteBusy):
            _in_groups(database, [INCREMENT])
        release.set()
        other.join(30)
        assert other.exitcode == 0
    finally:
        release.set()
        other.join(30)
    assert _count(database) == 100  # the other process's write; the refused one left no trace
    _in_groups(database, [INCREMENT])
    assert _count(database) == 101
    database.dispose()


def test_the_event_loops_writes_reach_the_database_file_soon(tmp_path: Path):
    """Fifty small writes would not fill the log enough for a commit to checkpoint; the
    checkpointer's thread copies them into the database file soon after."""
    path = tmp_path / "db.sqlite"
    database = _database(path)
    _in_groups(database, [INCREMENT] * 50)
    deadline = time.monotonic() + 10
    while True:
        # The database file alone, as a copy without its write-ahead log would read it.
        copy = tmp_path / f"copy-{time.monotonic_ns()}.sqlite"
        shutil.copyfile(path, copy)
        alone = sqlite3.connect(copy)
        try:
            n = alone.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]
        except sqlite3.OperationalError:  # not even the table has reached the file yet
            n = None
        finally:
            alone.close()
        if n == 50 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert n == 50
    database.dispose()


def _log_restarts(wal: Path) -> int:
    """How many times the write-ahead log has started afresh: its header's checkpoint
    sequence number, which each restart raises by one (SQLite's file format, section 4.1)."""
    with wal.open("rb") as log:
        log.seek(12)
        return int.from_bytes(log.read(4), "big")


def test_the_write_ahead_log_starts_afresh_again_and_again_under_nonstop_writes(tmp_path: Path):
    """Checkpoints that run beside the writer never let the log start afresh; the one the
    writer's commit makes does, so the log is reused from its start however long writes go
    on, instead of holding every page ever written.

    Its longest stretch is not asserted: while a checkpoint of the Checkpointer's thread
    waits on a slow disk, the commits' own find it under way and skip theirs, and the log
    grows for as long as that ``fsync`` takes (seen up to 13 MB on a loaded machine)."""
    path = tmp_path / "db.sqlite"
    database = _database(path)
    wal = tmp_path / "db.sqlite-wal"
    with database.session() as db:
        db.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    before = _log_restarts(wal)
    written = 0
    # 1000 rows of 2 kB are some 500 pages; a log that is never restarted would take every
    # page of the 30 000 rows written before giving up, 60 MB.
    while _log_restarts(wal) < before + 3 and written < 30_000:
        _in_groups(
            database,
            [("INSERT INTO log (body) VALUES (?)", ("x" * 2000 + str(written + i),)) for i in range(1000)],
        )
        written += 1000
    with database.read_session() as db:
        assert db.execute(text("SELECT count(*) FROM log")).scalar_one() == written
    assert _log_restarts(wal) >= before + 3, f"the log never started afresh in {written} writes"
    database.dispose()


def test_a_database_closed_right_after_a_write_stops_its_checkpoint_thread(tmp_path: Path):
    """The thread lets commits gather for a moment after each; a stop that came in that
    moment was lost, and the thread waited for the next commit for ever (each ``dispose``
    then spent the join's 10 s, and left the thread behind)."""

    def checkpointers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "dojo-sqlite-checkpoint"}

    others = checkpointers()  # other tests' databases in this process, if any
    database = _database(tmp_path / "db.sqlite")
    _in_groups(database, [INCREMENT])
    assert checkpointers() - others, "the write group started no checkpoint thread"
    database.dispose()
    assert checkpointers() - others == set()


def test_writes_of_one_pass_commit_together_and_a_failing_one_takes_only_itself_back(tmp_path: Path):
    database = _database(tmp_path / "db.sqlite")
    seen_by_others: list[int] = []

    async def one_pass() -> list[object]:
        group = database.write_group()

        def increment(db) -> int:
            db.cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
            return db.execute(RawStatement("SELECT n FROM counter WHERE id = 1"), {})[0][0]

        def increment_then_fail(db) -> None:
            increment(db)
            raise ValueError("this write changes its mind")

        def look_from_outside_then_increment(db) -> int:
            seen_by_others.append(_count(database))  # another connection, before the commit
            return increment(db)

        work = [increment] * 4 + [increment_then_fail] + [increment] * 3 + [look_from_outside_then_increment]
        return await asyncio.gather(*(group.run(w) for w in work), return_exceptions=True)

    outcomes = asyncio.run(one_pass())
    assert outcomes[:4] == [1, 2, 3, 4] and outcomes[5:] == [5, 6, 7, 8]
    assert isinstance(outcomes[4], ValueError)
    assert seen_by_others == [0]  # the eight writes before it were not yet committed: one commit for all
    assert _count(database) == 8
    database.dispose()
