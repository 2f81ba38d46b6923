"""The nonces a :class:`~template.transport.server.SignedServer` has accepted, kept across restarts.

btauth/1 refuses a request older than the freshness window (``max_age``) or more than
``allowed_skew`` in the future, and a request whose (hotkey, nonce) it has seen. A store kept
in memory forgets what it has seen when the process restarts, and a request captured before
the restart could be sent again, and accepted, for the rest of its window. This store keeps
every accepted (hotkey, nonce) in a small SQLite file next to the neuron's database (private,
0600), each committed before the request is handled, and prunes the nonces signed before the window.
A restart, or a crash, therefore opens no window at all: the new process refuses exactly what
the old one would have, and needs no pause after it starts and no trust in the clock beyond
what the window already assumes.

The file is opened through :mod:`template.storage` and its schema comes from the Alembic
migrations in ``template/transport/migrations/``.

The check and the insert are one statement (``INSERT OR IGNORE`` on the primary key), so two
requests with the same nonce racing each other, even in two processes sharing the file, are
accepted once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import cast

from template.storage import database_url, make_engine, migrate_if_behind

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Prune at most this often: one DELETE on the timestamp index, far less than one per request.
PRUNE_EVERY = 5.0


class SQLiteNonceStore:
    """A ``bt.http_auth.NonceStore`` in the SQLite file ``path``, keeping each nonce ``retention`` s."""

    def __init__(self, path: str | Path, retention: float):
        self.path = Path(path).expanduser()
        self.retention = retention
        self._lock = threading.Lock()
        # NORMAL in WAL mode: a committed nonce survives the process's crash (only the
        # machine's own crash can lose the last ones, and that takes longer than the window).
        engine = make_engine(database_url(self.path), synchronous="NORMAL", pooled=False)
        migrate_if_behind(engine, MIGRATIONS_DIR, label="nonces")
        # One connection for the store's life, in autocommit: each statement commits alone.
        self._connection = engine.raw_connection()
        self._db = cast(sqlite3.Connection, self._connection.driver_connection)
        self._pruned_at = 0.0

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        """True (and the nonce kept) if this hotkey never sent it within the window, else False."""
        now = time.time()
        with self._lock:
            if now - self._pruned_at >= PRUNE_EVERY:
                # A nonce is the time it was signed (ns): one older than the retention is
                # refused as stale before the store is asked, so it need not be kept.
                self._db.execute("DELETE FROM nonces WHERE nonce < ?", (int((now - self.retention) * 1e9),))
                self._pruned_at = now
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO nonces (hotkey, nonce) VALUES (?, ?)", (hotkey_ss58, nonce_ns)
            )
            return cursor.rowcount == 1

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()


__all__ = ["SQLiteNonceStore"]
