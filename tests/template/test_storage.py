"""``template.storage``: the read-only engine cannot write nor create, and reads one snapshot
per transaction; ``UTCDateTime`` reads the naive UTC a database holds as aware UTC; a URL put
in a schema keeps what its query gave."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from template.storage import (
    READ_ONLY,
    WAL_SIZE_LIMIT,
    UTCDateTime,
    in_schema,
    make_engine,
    own_schema,
    read_only_engine,
    record,
)
from tests.dojo.platform._support import postgres_admin_url, postgres_schema

metadata = sa.MetaData()
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with an ``events`` table holding one row written as naive UTC text,
    as a database made before its times were aware holds it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
        yield _filled(url)
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server accepts connections on 127.0.0.1:5432 (database test)")
    with postgres_schema(admin) as url:
        yield _filled(url)


def _filled(url: str) -> str:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL)"))
        conn.execute(sa.text("INSERT INTO events (id, at) VALUES (1, '2026-11-20 10:00:00.250000')"))
    engine.dispose()
    return url


def test_naive_times_stored_before_read_back_as_aware_utc(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(events.insert().values(id=2, at=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)))
            read = dict(conn.execute(sa.select(events.c.id, events.c.at)).all())
            stored = conn.execute(sa.text("SELECT CAST(at AS VARCHAR) FROM events WHERE id = 2")).scalar_one()
        assert read == {
            1: datetime(2026, 11, 20, 10, 0, 0, 250000, tzinfo=timezone.utc),
            2: datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc),
        }
        assert stored.startswith("2026-11-20 12:00:00")  # naive UTC, as the rows before it
        with pytest.raises(sa.exc.StatementError, match="timezone-aware"), engine.begin() as conn:
            conn.execute(events.insert().values(id=3, at=datetime(2026, 11, 20, 12, 0)))
    finally:
        engine.dispose()


def test_the_read_only_engine_reads_and_cannot_write(url: str) -> None:
    engine = read_only_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1
        with pytest.raises(DBAPIError, match="read.only|readonly"), engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO events (id, at) VALUES (5, '2026-11-20 10:00:00')"))
    finally:
        engine.dispose()
    owner = make_engine(url)
    with owner.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 1
    owner.dispose()


def test_a_read_only_transaction_on_sqlite_reads_one_snapshot(tmp_path: Path) -> None:
    url = _filled(f"sqlite:///{tmp_path / 'db.sqlite'}")
    reader = read_only_engine(url)
    writer = make_engine(url)
    try:
        with reader.connect() as conn, conn.begin():
            before = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
            with writer.begin() as write:  # not blocked by the reader
                write.execute(sa.text("INSERT INTO events (id, at) VALUES (2, '2026-11-20 11:00:00')"))
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == before == 1
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 2
    finally:
        reader.dispose()
        writer.dispose()


def test_the_read_only_engine_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    engine = read_only_engine(f"sqlite:///{path}")
    with pytest.raises(DBAPIError), engine.connect():
        pass
    assert not path.exists()


def test_a_log_grown_behind_a_long_reader_is_cut_back_when_it_starts_afresh(tmp_path: Path) -> None:
    """While a reader holds one snapshot, every write is appended to the log; once the
    reader is done and a checkpoint has copied the log back, the next write starts it
    afresh, and the file is cut back to the limit instead of keeping its largest size for
    as long as the database is open."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    wal = tmp_path / "db.sqlite-wal"
    engine = make_engine(url, wal_size_limit=1 << 20)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    reader = read_only_engine(url)
    rows = [{"body": f"{n:06d}" + "x" * 2000} for n in range(2000)]
    try:
        with reader.connect() as held, held.begin():
            assert held.execute(sa.text("SELECT count(*) FROM log")).scalar_one() == 0
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO log (body) VALUES (:body)"), rows)
        assert wal.stat().st_size > 3 << 20  # 2000 rows of 2 kB
        checkpointer = engine.raw_connection()  # outside a transaction, as a checkpoint runs
        try:
            busy, pages, copied = checkpointer.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert busy == 0 and pages == copied
        finally:
            checkpointer.close()
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO log (body) VALUES ('the log starts afresh')"))
        assert wal.stat().st_size <= 1 << 20
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM log")).scalar_one() == 2001
    finally:
        reader.dispose()
        engine.dispose()


def test_every_sqlite_connection_cuts_its_log_back_to_the_default_limit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar_one() == WAL_SIZE_LIMIT
    finally:
        engine.dispose()


def test_make_engines_readers_do_not_take_the_write_lock(tmp_path: Path) -> None:
    """A transaction on ``READ_ONLY`` begins deferred: it runs while a writer holds the lock."""
    url = _filled(f"sqlite:///{tmp_path / 'db.sqlite'}")
    engine = make_engine(url)
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with engine.execution_options(**{READ_ONLY: True}).begin() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_alembic_is_loaded_only_to_migrate_or_read_a_revision() -> None:
    # Alembic doubles the import time of the storage layer; a process that only reads a
    # database (the export, the simulated workers' oracle) never needs it.
    code = (
        "import sys, template.storage, template.chain.local, dojo.export._reader, dojo.workers._oracle\n"
        "print('alembic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_url_put_in_a_schema_keeps_the_options_and_the_socket_it_gave() -> None:
    given = "postgresql+psycopg://dojo@/dojo?host=/var/run/postgresql&options=-cstatement_timeout%3D5000"
    url = sa.engine.make_url(in_schema(given, "run_1"))
    assert dict(url.query) == {
        "host": "/var/run/postgresql",
        "options": "-cstatement_timeout=5000 -csearch_path=run_1",
    }
    assert (url.username, url.database) == ("dojo", "dojo")


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    label: str = "none"


def test_a_record_takes_a_rows_fields_by_name_and_what_is_given_as_given(tmp_path: Path) -> None:
    engine = make_engine(_filled(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(events.c.id, events.c.at, sa.literal("stored").label("label"))).one()
            bare = conn.execute(sa.select(events.c.id, events.c.at)).one()
    finally:
        engine.dispose()
    at = datetime(2026, 11, 20, 10, 0, 0, 250000, tzinfo=timezone.utc)
    assert record(Event, row) == Event(1, at, "stored")
    assert record(Event, row, label="given", id=7) == Event(7, at, "given")
    # A field the row lacks is an error, not its default: a record is the row, whole.
    with pytest.raises(AttributeError, match="label"):
        record(Event, bare)


@pytest.mark.postgres
def test_an_own_schema_holds_what_its_connections_make_and_is_gone_after() -> None:
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server accepts connections on 127.0.0.1:5432 (database test)")
    name = f"own_{uuid.uuid4().hex[:8]}"
    with own_schema(admin, name) as url:
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE made_here (id INTEGER)"))
                where = (
                    conn.execute(
                        sa.text(
                            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'made_here'"
                        )
                    )
                    .scalars()
                    .all()
                )
        finally:
            engine.dispose()
        assert where == [name]
    engine = make_engine(admin)
    try:
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"), {"n": name}
            ).scalar_one()
    finally:
        engine.dispose()
    assert left == 0
