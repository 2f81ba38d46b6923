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

The check and the insert are one statement (``INSERT OR IGNORE`` on the primary key), so two
requests with the same nonce racing each other, even in two processes sharing the file, are
accepted once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from template.private import private_file

# Prune at most this often: one DELETE on the timestamp index, far less than one per request.
PRUNE_EVERY = 5.0


class SQLiteNonceStore:
    """A ``bt.http_auth.NonceStore`` in the SQLite file ``path``, keeping each nonce ``retention`` s."""

    def __init__(self, path: str | Path, retention: float):
        self.path = private_file(path)
        self.retention = retention
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed nonce survives the process's crash (only the
        # machine's own crash can lose the last ones, and that takes longer than the window).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nonces (hotkey TEXT NOT NULL, nonce INTEGER NOT NULL,"
            " PRIMARY KEY (hotkey, nonce)) WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS nonces_by_time ON nonces (nonce)")
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
            self._db.close()


__all__ = ["SQLiteNonceStore"]
