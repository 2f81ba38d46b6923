"""The platform's writers on SQLite: one at a time, woken in turn, and the event loop's
writes committed in groups.

SQLite admits one writer at a time, and a writer that finds the lock taken polls for it
with growing sleeps (up to 100 ms each), so under contention most of a request's time
would be spent asleep. The platform's writers therefore queue on a :class:`WriterLock`
first — a ``threading.Lock`` for this process's threads and an exclusive ``flock`` on a
file beside the database for the other processes (``serve --workers N``) — and each is
woken the moment the previous one commits. ``busy_timeout`` remains for writers that do
not take it (a migration, the ``sqlite3`` shell).

:class:`WriteGroup` is the event loop's way to write (the queue's hot path): group commit,
without blocking for long. When another writer holds the lock it waits at most a few
milliseconds, then raises :class:`WriteBusy`, having changed nothing, so the caller can
hand the work to a thread that waits. :class:`Checkpointer` keeps the write-ahead log's
copying off the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import Engine

from dojo.platform.errors import Unavailable
from dojo.platform.storage.rawsql import RawDb

T = TypeVar("T")
# How long WriteGroup waits for another process's writer before giving up.
NOWAIT_PATIENCE_SECONDS = 0.005


class WriterLock:
    """Mutual exclusion for one SQLite database's writers, in this process and across processes.

    A ``threading.Lock`` orders this process's threads; for a database file, an exclusive
    ``flock`` on ``<file>-writer.lock`` orders the processes (each opens the file itself,
    so create the platform's ``Database`` after a fork, as ``uvicorn --workers`` does). A
    blocked ``flock`` sleeps in the kernel and wakes when the holder lets go: no polling.
    """

    def __init__(self, database_file: str | None):
        self._thread = threading.Lock()
        self._fd: int | None = None
        if database_file:
            self._fd = os.open(f"{database_file}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriterLock:
        self._thread.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # lets go of the GIL while it waits
            except BaseException:
                self._thread.release()
                raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def try_acquire(self, patience: float = NOWAIT_PATIENCE_SECONDS) -> bool:
        """Take the lock unless a thread of this process holds it, waiting at most
        ``patience`` seconds for another process's writer (whose transactions are short)."""
        started = time.monotonic()
        if not self._thread.acquire(timeout=patience):
            return False
        if self._fd is None:
            return True
        deadline = started + patience
        tries = 0
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                self._thread.release()
                return False
            tries += 1
            # First give the holder the CPU, then sleep a little: a hot-path write takes ~0.1 ms.
            if tries <= 20:
                os.sched_yield()
            else:
                time.sleep(0.0001)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Checkpointer:
    """Copies SQLite's write-ahead log back into the database file on a thread of its own.

    A committing connection checkpoints itself once the log passes 1000 pages: copying
    every page written since, and ``fsync``, inside that ``COMMIT`` — on the event loop, a
    stall of every request in flight. The event loop's connection calls :meth:`written`
    after each commit, and this thread then runs a passive checkpoint (which neither waits
    for nor blocks readers and writers) at most every ``interval``, so that when the
    commit's own checkpoint comes, little is left to copy. That one still runs: only a
    checkpoint made while no writer is appending lets the next writer start the log
    afresh, and without it the log grows for as long as writes keep coming. A commit whose
    checkpoint finds this thread's under way skips its own (passive checkpoints never
    wait), so while this thread's ``fsync`` waits on a slow disk the log grows for that
    long: seen to 13 MB in 6000 writes of 2 kB on a loaded machine, against 4 MB otherwise.
    """

    def __init__(self, engine: Engine, interval: float = 0.05):
        self._engine = engine
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dojo-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def written(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            while not self._stop.is_set():
                self._wake.wait()
                self._stop.wait(self._interval)  # let commits gather; a stop cuts it short
                self._wake.clear()  # may clear a stop's wake too: hence the check below
                if self._stop.is_set():
                    return
                try:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.fetchall()
                except sqlite3.Error as exc:  # the next commit wakes us to try again
                    logger.warning("SQLite checkpoint failed: {}", exc)
        finally:
            connection.invalidate()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)


class WriteBusy(Exception):
    """Another writer holds SQLite's write lock; nothing was written (:class:`WriteGroup`)."""


# SQLite's result codes, which the sqlite3 module names from Python 3.11 on.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: the database's write lock is taken."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


class WriteGroup:
    """Group commit for the writes one event loop makes on SQLite (the queue's hot path).

    The loop answers every request that is ready in one pass before it looks for more
    I/O. The first write of a pass takes the write lock (never waiting more than a few
    milliseconds: see :class:`WriteBusy`), begins a transaction and schedules its commit
    for the end of the pass; every write of that pass runs inside it, each in its own
    savepoint, and waits for that one ``COMMIT``. A commit is the costliest statement of a
    claim or a submission (it appends the pages to the log): under load, one per pass
    instead of one per request took the server's CPU per request from 0.34 ms to about
    0.25 ms in ``benchmarks/platform.py``. Nothing is answered before its write is committed.

    A write that raises rolls back to its savepoint and leaves the others be. If the
    transaction is lost (SQLite rolls it all back on a full disk or an I/O error) or the
    ``COMMIT`` fails, every write of the group fails with :class:`Unavailable`.

    It is handed what it works with: the database's ``lock``; ``connection``, which gives
    the event loop's connection (a pooled raw connection whose ``busy_timeout`` is 0, in
    the driver's manual transaction mode); ``after_failure``, which rolls a connection back
    (or drops it) once a ``COMMIT`` failed; and ``committed``, called after each commit
    (:meth:`Checkpointer.written`).
    """

    def __init__(
        self,
        lock: WriterLock,
        connection: Callable[[], Any],
        after_failure: Callable[[Any], None],
        committed: Callable[[], None],
    ):
        self._lock = lock
        self._connect = connection
        self._after_failure = after_failure
        self._committed = committed
        self._connection: Any = None
        self._cursor: Any = None
        self._waiters: list[asyncio.Future[None]] = []

    async def run(self, work: Callable[[RawDb], T]) -> T:
        """``work(db)`` inside this pass's transaction, returned once it is committed."""
        loop = asyncio.get_running_loop()
        if self._cursor is None:
            self._begin(loop)
        cursor = self._cursor
        cursor.execute("SAVEPOINT hot")
        failure: BaseException | None = None
        try:
            result = work(RawDb(cursor, True))
        except BaseException as exc:  # re-raised below, once the group is settled
            failure = exc
            if self._connection.dbapi_connection.in_transaction:
                cursor.execute("ROLLBACK TO hot")
                cursor.execute("RELEASE hot")
            else:  # SQLite rolled the whole transaction back: the group's writes are gone
                self._settle(Unavailable("the database lost a transaction; nothing was stored, try again"))
                raise
        else:
            cursor.execute("RELEASE hot")
        waiter = loop.create_future()
        self._waiters.append(waiter)
        await waiter
        if failure is not None:
            raise failure
        return result

    def _begin(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._lock.try_acquire():
            raise WriteBusy
        try:
            connection = self._connect()
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._lock.release()
            if _is_busy(exc):
                raise WriteBusy from exc
            raise
        self._connection, self._cursor = connection, cursor
        loop.call_soon(self._commit)

    def _commit(self) -> None:
        if self._cursor is None:  # settled already: the transaction was lost
            return
        try:
            self._cursor.execute("COMMIT")
        except Exception as exc:
            logger.error("a group commit failed: {}", exc)
            self._after_failure(self._connection)
            self._settle(Unavailable(f"the database could not commit ({exc}); nothing was stored, try again"))
            return
        self._settle(None)
        self._committed()

    def _settle(self, failure: BaseException | None) -> None:
        waiters, self._waiters = self._waiters, []
        self._connection = self._cursor = None
        self._lock.release()
        for waiter in waiters:
            if waiter.done():  # its request was cancelled
                continue
            if failure is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(failure)
