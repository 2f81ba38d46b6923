"""Engine, sessions and migrations for the platform's database.

SQLite (a file in WAL mode) by default, PostgreSQL by URL. Write transactions on SQLite
start with ``BEGIN IMMEDIATE`` so that a read-then-write (claim a task, submit a result)
holds the database's single write lock from its first statement: no two writers ever act on
the same snapshot, and a waiting writer waits (``busy_timeout``) instead of failing. On
PostgreSQL the same code paths take row locks (``SELECT … FOR UPDATE``) instead.

Read-only work uses :meth:`Database.read_session`, a deferred transaction on SQLite, so page
views and lists never queue behind writers.

On PostgreSQL the queue's hot path uses none of this: a claim and a submission are each one
call of a function in the database, made on the event loop over connections of its own
(:mod:`dojo.platform.pgqueue`, which also says where the time went before). The engine's
pool serves the page routes and the rest of the API.

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
hand the work to a thread that waits.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dojo.platform.errors import Unavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_READ_ONLY = "dojo_read_only"
# Any constant works; it only has to be the same for every replica of one platform.
_MIGRATION_LOCK_KEY = 0x646F6A6F
# A raw hot-path connection unused this long is pinged before its next use.
RAW_IDLE_PING_SECONDS = 10.0


T = TypeVar("T")
# How long WriteGroup waits for another process's writer before giving up.
NOWAIT_PATIENCE_SECONDS = 0.005


class WriterLock:
    """Mutual exclusion for one SQLite database's writers, in this process and across processes.

    A ``threading.Lock`` orders this process's threads; for a database file, an exclusive
    ``flock`` on ``<file>-writer.lock`` orders the processes (each opens the file itself,
    so create the :class:`Database` after a fork, as ``uvicorn --workers`` does). A
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
    afresh, and without it the log grows for as long as writes keep coming.
    """

    def __init__(self, engine: Engine, interval: float = 0.05):
        self._engine = engine
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dojo-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def written(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            while True:
                self._wake.wait()
                if self._stopping:
                    return
                time.sleep(self._interval)  # let commits gather
                self._wake.clear()
                try:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.fetchall()
                except sqlite3.Error as exc:  # the next commit wakes us to try again
                    logger.warning("SQLite checkpoint failed: {}", exc)
        finally:
            connection.invalidate()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)


class WriteBusy(Exception):
    """Another writer holds SQLite's write lock; nothing was written (:class:`WriteGroup`)."""


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: the database's write lock is taken."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def make_engine(url: str, pool_size: int = 20) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            pool_timeout=60,
        )
        _sqlite_events(engine)
        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_timeout=60
    )


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Autocommit at the driver so that SQLAlchemy's "begin" below decides how to BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine, or ``None`` (in memory, a ``file:`` URI)."""
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(Path(database).expanduser().resolve())


def _sqlite_time(value: datetime | None) -> str | None:
    """A time as SQLAlchemy's SQLite ``DateTime`` stores it (the text is compared in SQL)."""
    if value is None:
        return None
    return value.isoformat(" ", "microseconds")


def _sqlite_datetime(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _sqlite_json(value: Any) -> Any:
    return None if value is None else json.loads(value)


_TEXT_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class RawStatement:
    """One SQL text run on the driver's own connection, bypassing SQLAlchemy's execution.

    Each ``execute`` through SQLAlchemy costs ~150 µs of Python (events, compiled cache,
    result metadata); the queue's hot path runs ~7 statements a request, so it talks to the
    DBAPI directly. ``times`` and ``json`` name the parameters stored as ``DateTime`` and
    ``JSON``; ``columns`` gives the type of each result column (``"datetime"``, ``"json"``
    or ``None`` for values the drivers return as they are), stored as SQLAlchemy stores
    them, so rows written either way read alike.
    """

    def __init__(
        self,
        sql: str,
        times: Sequence[str] = (),
        json_params: Sequence[str] = (),
        columns: Sequence[str | None] = (),
    ):
        self.sql = sql
        self.times = tuple(times)
        self.json_params = tuple(json_params)
        self.columns = tuple(columns)
        # sqlite3 takes ``:name`` as it is; psycopg wants ``%(name)s``.
        self.pyformat = _TEXT_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        self._sqlite_out: list[tuple[int, Callable[[Any], Any]]] = [
            (i, _sqlite_datetime if kind == "datetime" else _sqlite_json)
            for i, kind in enumerate(self.columns)
            if kind in ("datetime", "json")
        ]


class RawDb:
    """An open transaction on a pooled DBAPI connection: ``execute`` returns the rows."""

    __slots__ = ("cursor", "is_sqlite")

    def __init__(self, cursor: Any, is_sqlite: bool):
        self.cursor = cursor
        self.is_sqlite = is_sqlite

    def execute(self, statement: RawStatement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self.cursor
        if self.is_sqlite:
            if statement.times or statement.json_params:
                params = dict(params)
                for name in statement.times:
                    params[name] = _sqlite_time(params[name])
                for name in statement.json_params:
                    params[name] = json.dumps(params[name])
            cursor.execute(statement.sql, params)
            rows = cursor.fetchall() if cursor.description is not None else []
            if rows and statement._sqlite_out:
                out = statement._sqlite_out
                converted = []
                for row in rows:
                    values = list(row)
                    for index, convert in out:
                        values[index] = convert(values[index])
                    converted.append(tuple(values))
                return converted
            return rows
        if statement.json_params:
            params = dict(params)
            for name in statement.json_params:
                params[name] = json.dumps(params[name])
        # Server-side prepared statements: parsed and planned once per connection.
        cursor.execute(statement.pyformat, params, prepare=True)
        return cursor.fetchall() if cursor.description is not None else []


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
    """

    def __init__(self, database: Database):
        self._database = database
        self._lock = database._write_lock
        assert self._lock is not None
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
            connection = self._database._thread_connection(wait=False)
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
            self._database._after_failure(self._connection)
            self._settle(Unavailable(f"the database could not commit ({exc}); nothing was stored, try again"))
            return
        self._settle(None)
        if self._database._checkpointer is not None:
            self._database._checkpointer.written()

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


class Database:
    """One engine and its session factories."""

    def __init__(self, url: str, pool_size: int = 20):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)
        self._write_lock = WriterLock(_sqlite_file(self.engine)) if self.is_sqlite else None
        # The raw hot path's connections, one per thread (see _thread_connection).
        self._local = threading.local()
        self._checkpointer: Checkpointer | None = None
        self._held: list[Any] = []
        self._held_lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Do not open one inside another in the same thread: on SQLite the inner would wait
        for the outer forever.
        """
        with self._write_lock or nullcontext(), self._write() as db, db.begin():
            yield db

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction that never waits for writers."""
        with self._read() as db, db.begin():
            yield db

    @contextmanager
    def raw_write(self) -> Iterator[RawDb]:
        """A write transaction on the driver's connection (:class:`RawDb`): the queue's hot path."""
        with self._write_lock or nullcontext(), self._raw(write=True) as db:
            yield db

    def write_group(self) -> WriteGroup:
        """Group commit for the event loop's writes (SQLite); see :class:`WriteGroup`."""
        assert self._write_lock is not None, "write groups are for SQLite"
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self.engine)
        return WriteGroup(self)

    @contextmanager
    def raw_read(self) -> Iterator[RawDb]:
        """A read-only transaction on the driver's connection; never waits for writers."""
        with self._raw(write=False) as db:
            yield db

    @contextmanager
    def _raw(self, write: bool) -> Iterator[RawDb]:
        connection = self._thread_connection()
        cursor = connection.cursor()
        try:
            if self.is_sqlite:
                # The connect hook turned the driver's own transaction handling off.
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield RawDb(cursor, self.is_sqlite)
            if self.is_sqlite:
                cursor.execute("COMMIT")
            else:
                connection.commit()
        except BaseException:
            self._after_failure(connection)
            raise

    def _thread_connection(self, wait: bool = True) -> Any:
        """This thread's own pooled connection for the raw transactions, kept checked out.

        A checkout costs ~25 µs of pool bookkeeping and, on PostgreSQL, a ping (a round
        trip); the hot path's few threads keep one connection each instead, pinged when
        taken after ``RAW_IDLE_PING_SECONDS`` unused, and replaced once it fails. With
        ``wait`` false (SQLite, :class:`WriteGroup`) it is a second connection whose
        ``busy_timeout`` is 0.
        """
        local = self._local
        if not hasattr(local, "connections"):
            local.connections, local.taken = {}, {}
        now = time.monotonic()
        connection = local.connections.get(wait)
        if connection is not None and connection.is_valid:
            idle = now - local.taken[wait]
            local.taken[wait] = now
            if idle < RAW_IDLE_PING_SECONDS:
                return connection
            try:
                cursor = connection.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchall()
                if not self.is_sqlite:
                    connection.rollback()
                return connection
            except Exception:
                connection.invalidate()
        connection = self.engine.raw_connection()
        if not wait:
            # The event loop's connection: it never waits for the lock, and most of the
            # checkpointing is done for it by the Checkpointer's thread.
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.close()
        local.connections[wait] = connection
        local.taken[wait] = now
        with self._held_lock:
            self._held.append(connection)
        return connection

    def _after_failure(self, connection: Any) -> None:
        try:
            connection.rollback()
        except Exception:  # a broken connection: never use it again
            connection.invalidate()
            return
        if getattr(connection.dbapi_connection, "broken", False):
            connection.invalidate()

    def migrate(self, revision: str = "head") -> None:
        migrate(self.engine, revision)

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._held_lock:
            held, self._held = self._held, []
        for connection in held:
            if connection.is_valid:
                connection.invalidate()  # closes it; it was never returned to the pool
        self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; safe to run from several replicas at once."""
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        logger.info("platform database migrated from {} to {}", before or "empty", after)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
