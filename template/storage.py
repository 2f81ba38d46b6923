"""The one storage layer of the subnet's databases (the validator's task database, the
miner's task mappings, the worker platform's database, the synthetic service's store, the
local chain, the transport's nonce store, and their readers such as the export): engines,
URLs, UTC timestamps, Alembic migrations.

SQLite (a file in WAL mode, ``synchronous=FULL`` so that a commit is on disk before the
neuron acknowledges what it wrote) by default; PostgreSQL by URL. Write transactions on
SQLite begin ``IMMEDIATE``, so a read-then-write holds the single write lock from its
first statement and a second writer waits (``busy_timeout``) instead of failing.

Each database keeps its migrations in an Alembic script directory of its own package;
:func:`migrate` upgrades one, safely from several processes at once (an advisory lock on
PostgreSQL, the write lock on SQLite). Alembic is imported by the functions that migrate
or read revisions, not with this module: a process that only reads a database (the export,
the simulated workers' oracle) does not load it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sqlite3
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from loguru import logger
from sqlalchemy import DateTime, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from template.private import private_file

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from alembic.config import Config

    RecordT = TypeVar("RecordT", bound=DataclassInstance)

__all__ = [
    "READ_ONLY",
    "UTCDateTime",
    "run_migrations",
    "current_revision",
    "database_url",
    "head_revision",
    "make_engine",
    "migrate",
    "migrate_if_behind",
    "own_schema",
    "read_only_engine",
    "record",
]


def record(cls: type[RecordT], row: object, **given: Any) -> RecordT:
    """The frozen dataclass ``cls`` made from ``row`` (an ORM object or a result row): each
    field from the attribute of the same name, except those ``given``, which are taken as
    given (a field the row names otherwise, or a value converted on the way)."""
    names = _field_names(cls)
    return cls(**{name: getattr(row, name) for name in names if name not in given}, **given)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def database_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL from a URL (``sqlite:///…``, ``postgresql://…``) or a file path.

    ``postgresql://`` URLs are given the psycopg 3 driver, the one installed.
    """
    value = str(url_or_path)
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().resolve()}"
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


# Where Alembic records a database's revision (its default name, which every env.py keeps).
VERSION_TABLE = "alembic_version"

# An execution option: a transaction on an engine (or connection) given it begins with a
# deferred ``BEGIN`` on SQLite, so it never takes the write lock nor waits for a writer.
READ_ONLY = "dojo_read_only"

# What a SQLite database's write-ahead log is cut back to each time it starts afresh. A
# reader that holds one snapshot for long (an export, say) keeps the writers appending to
# the log, which then stays at that size for as long as a connection is open; under steady
# writes it stays within a few MB (see the platform's Checkpointer).
WAL_SIZE_LIMIT = 64 << 20


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    pooled: bool = True,
    wal_size_limit: int = WAL_SIZE_LIMIT,
) -> Engine:
    """An engine for ``url`` (see :func:`database_url`); a SQLite file's folder is created.

    ``synchronous`` is SQLite's: ``FULL`` (the default) syncs the log at each commit, so a
    commit survives a power cut; ``NORMAL`` syncs it at checkpoints only, so a commit
    survives the process's crash but not the machine's (the platform's choice for its
    write rate). ``engine.execution_options(**{READ_ONLY: True})`` gives the readers' engine.
    ``pooled=False`` (SQLite) opens a connection per checkout and closes it on return, so
    that no open connection is shared with a forked child (the local chain's choice).
    ``wal_size_limit``: the bytes SQLite's write-ahead log is cut back to when it starts
    afresh (:data:`WAL_SIZE_LIMIT`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout
        )
    database = parsed.database or ""
    pool: dict[str, Any] = {}
    if database and database != ":memory:" and not database.startswith("file:"):
        # Private (0600), as the wallets are: a miner's database holds the secret behind its
        # worker pseudonyms, a validator's and the synthetic store's the ground truth, the
        # platform's sessions and key hashes. Its -wal and -shm follow its mode.
        private_file(database)
        pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if not pooled:
        pool = {"poolclass": NullPool}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver, so that the "begin" hook below decides how to BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA journal_size_limit={int(wal_size_limit)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _libpq_options(url: URL) -> str:
    """The libpq ``options`` the query of a PostgreSQL URL gives, in one string (the key may
    stand more than once)."""
    given = url.query.get("options", ())
    return " ".join([given] if isinstance(given, str) else list(given))


def in_schema(url: str, schema: str) -> str:
    """The PostgreSQL ``url`` with its connections' ``search_path`` set to ``schema``: added to
    the libpq options the URL gives, its other query parameters (a socket's ``host``) kept
    (:func:`own_schema`'s URL)."""
    parsed = make_url(url)
    options = f"{_libpq_options(parsed)} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@contextlib.contextmanager
def own_schema(url: str, schema: str) -> Iterator[str]:
    """A fresh ``schema`` on the PostgreSQL server at ``url`` (one a killed run left behind is
    replaced), dropped afterwards: yields the URL of connections that use it (:func:`in_schema`)."""
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    quoted = admin.dialect.identifier_preparer.quote(schema)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {quoted}")
        yield in_schema(url, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
        admin.dispose()


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write: a SQLite file opened ``mode=ro`` (no write lock, never
    created), or a PostgreSQL database whose sessions are ``default_transaction_read_only``.
    For the readers of a database another process owns and migrates (the workers' oracle,
    the local net's view, the export).

    A transaction on SQLite begins with a deferred ``BEGIN``, so the statements of one
    transaction read one snapshot, and a reader never takes the write lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # libpq's options, with those the URL gives (a search_path, say) kept
        options = f"{_libpq_options(parsed)} -c default_transaction_read_only=on".strip()
        return create_engine(
            url, pool_pre_ping=True, pool_size=2, max_overflow=3, connect_args={"options": options}
        )
    database = parsed.database or ""
    if not database or database == ":memory:":
        raise ValueError(f"{url!r} names no database file; give the database's path or URL")
    if database.startswith("file:"):  # already a SQLite URI: the caller chose its mode
        return create_engine(url, poolclass=NullPool)
    uri = f"file:{quote(str(Path(database).expanduser().resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
        connection.isolation_level = None  # the "begin" hook below issues BEGIN
        connection.execute("PRAGMA query_only=ON")
        return connection

    # No pool: a connection is cheap to open and none stays open between questions.
    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _config(script_location: Path) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


def migrate(
    engine: Engine, script_location: Path, *, label: str, revision: str = "head", lock_key: int | None = None
) -> str | None:
    """Upgrade the database behind ``engine`` with the migrations in ``script_location``.

    Returns the revision it is at afterwards. The script directory's ``env.py`` reads the
    connection from ``config.attributes["connection"]``. On PostgreSQL the processes
    migrating one kind of database take turns on an advisory lock, keyed by ``label``
    unless ``lock_key`` names the key an earlier version of that database's code took.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = _config(script_location)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Any constant works, one per database kind: replicas of one kind take turns.
            key = zlib.crc32(label.encode()) if lock_key is None else lock_key
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        logger.info("{} database migrated from {} to {}", label, before or "empty", after)
    return after


def run_migrations(target_metadata: Any) -> None:
    """The body of a migrations package's ``env.py``: run on the connection :func:`migrate`
    (or a database's own ``migrate``) hands Alembic, with SQLite's batch mode."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run these migrations through the database's migrate function, not the alembic CLI"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(script_location: Path) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(script_location)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {script_location}")
    return head


@functools.cache
def _head_once(script_location: Path) -> str:
    return head_revision(script_location)


def migrate_if_behind(engine: Engine, script_location: Path, *, label: str) -> str | None:
    """:func:`migrate`, unless the database is at the head already, which one read finds out
    (no write lock; the scripts are read once a process): for a database opened often, as
    the local chain is by every process and command of a local net."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        stamped = inspect(conn).has_table(VERSION_TABLE) and set(
            conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        )
    head = _head_once(script_location)
    if stamped == {head}:
        return head
    return migrate(engine, script_location, label=label)
