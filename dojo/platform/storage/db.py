"""Engine, sessions and migrations for the platform's database, on :mod:`template.storage`
(the engines, URLs, Alembic migrations and UTC times of every database of the subnet).

SQLite (a file in WAL mode) by default, PostgreSQL by URL. Write transactions on SQLite
start with ``BEGIN IMMEDIATE`` so that a read-then-write (claim a task, submit a result)
holds the database's single write lock from its first statement: no two writers ever act on
the same snapshot, and a waiting writer waits (``busy_timeout``) instead of failing. On
PostgreSQL the same code paths take row locks (``SELECT … FOR UPDATE``) instead.

Read-only work uses :meth:`Database.read_session`, a deferred transaction on SQLite, so page
views and lists never queue behind writers.

On PostgreSQL the queue's hot path uses none of this: a claim and a submission are each one
call of a function in the database, made on the event loop over connections of its own
(:mod:`dojo.platform.services.pgqueue`, which also says where the time went before). The engine's
pool serves the page routes and the rest of the API.

On SQLite the platform's writers queue on a :class:`~dojo.platform.storage.groupcommit.WriterLock`
and the event loop's writes are committed in groups (:mod:`dojo.platform.storage.groupcommit`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dojo.platform.storage.groupcommit import Checkpointer, WriteGroup, WriterLock
from dojo.platform.storage.rawsql import RawDb
from template import storage
from template.storage import READ_ONLY

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The advisory lock replicas migrating the platform's database take turns on, the one
# earlier versions took, so that replicas of both versions starting at once still do.
MIGRATION_LOCK_KEY = 0x646F6A6F
# A raw hot-path connection unused this long is pinged before its next use.
RAW_IDLE_PING_SECONDS = 10.0


def make_engine(url: str, pool_size: int = 20) -> Engine:
    """The platform's engine (:func:`template.storage.make_engine`): a larger pool than a
    neuron's, and on SQLite ``synchronous=NORMAL`` — a commit survives the process's crash,
    and the log is synced at checkpoints rather than at each of the queue's commits."""
    if make_url(url).get_backend_name() == "sqlite":
        return storage.make_engine(
            url, pool_size=pool_size, max_overflow=2 * pool_size, pool_timeout=60, synchronous="NORMAL"
        )
    return storage.make_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine, or ``None`` (in memory, a ``file:`` URI)."""
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(Path(database).expanduser().resolve())


class Database:
    """One engine and its session factories."""

    def __init__(self, url: str, pool_size: int = 20):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{READ_ONLY: True})
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
        return WriteGroup(
            self._write_lock,
            connection=partial(self._thread_connection, wait=False),
            after_failure=self._after_failure,
            committed=self._checkpointer.written,
        )

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


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; safe to run from several replicas at once."""
    storage.migrate(engine, MIGRATIONS_DIR, label="platform", revision=revision, lock_key=MIGRATION_LOCK_KEY)


def head_revision() -> str:
    return storage.head_revision(MIGRATIONS_DIR)


current_revision = storage.current_revision
