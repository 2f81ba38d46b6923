"""Engine, sessions and migrations for the platform's database.

SQLite (a file in WAL mode) by default, PostgreSQL by URL. Write transactions on SQLite
start with ``BEGIN IMMEDIATE`` so that a read-then-write (claim a task, submit a result)
holds the database's single write lock from its first statement: no two writers ever act on
the same snapshot, and a waiting writer waits (``busy_timeout``) instead of failing. On
PostgreSQL the same code paths take row locks (``SELECT … FOR UPDATE``) instead.

Read-only work uses :meth:`Database.read_session`, a deferred transaction on SQLite, so page
views and lists never queue behind writers.

SQLite admits one writer at a time, and a writer that finds the lock taken polls for it
with growing sleeps (up to 100 ms each), so under contention most of a request's time
would be spent asleep. Within one process the writers therefore queue on a
``threading.Lock`` instead and each is woken the moment the previous one commits; the
``busy_timeout`` remains for writers in other processes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_READ_ONLY = "dojo_read_only"
# Any constant works; it only has to be the same for every replica of one platform.
_MIGRATION_LOCK_KEY = 0x646F6A6F
# A raw hot-path connection unused this long is pinged before its next use.
RAW_IDLE_PING_SECONDS = 10.0


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


class Database:
    """One engine and its session factories."""

    def __init__(self, url: str, pool_size: int = 20):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # The raw hot path's connections, one per thread (see _thread_connection).
        self._local = threading.local()
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
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction on a Core connection (no ORM Session): the queue's hot path."""
        with self._write_lock or nullcontext(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read-only transaction on a Core connection."""
        with self._read_engine.begin() as conn:
            yield conn

    @contextmanager
    def raw_write(self) -> Iterator[RawDb]:
        """A write transaction on the driver's connection (:class:`RawDb`): the queue's hot path."""
        with self._write_lock or nullcontext(), self._raw(write=True) as db:
            yield db

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
        finally:
            self._local.used = time.monotonic()

    def _thread_connection(self) -> Any:
        """This thread's own pooled connection for the raw transactions, kept checked out.

        A checkout costs ~25 µs of pool bookkeeping and, on PostgreSQL, a ping (a round
        trip); the hot path's few threads keep one connection each instead, pinged only
        after ``RAW_IDLE_PING_SECONDS`` unused, and replaced once it fails.
        """
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is not None and connection.is_valid:
            if time.monotonic() - local.used < RAW_IDLE_PING_SECONDS:
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
        local.connection = connection
        local.used = time.monotonic()
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
        with self._held_lock:
            held, self._held = self._held, []
        for connection in held:
            if connection.is_valid:
                connection.invalidate()  # closes it; it was never returned to the pool
        self.engine.dispose()


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
