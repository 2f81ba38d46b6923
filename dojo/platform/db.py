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

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

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

    def migrate(self, revision: str = "head") -> None:
        migrate(self.engine, revision)

    def dispose(self) -> None:
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
