"""The log-in rate limit, kept in the platform's database so that every replica counts alike.

Each client address has one row (``login_limits``, revision 0008) holding its theoretical
arrival time (the generic cell rate algorithm): with ``limit`` attempts per ``window``
seconds, each attempt moves it on by ``window / limit``, and an attempt is let through while
that leaves it at most ``window`` ahead of now. So an address may make ``limit`` attempts at
once, then one every ``window / limit`` seconds; a refused attempt moves nothing and is told
when the next would pass (``Retry-After``).

One statement decides (an upsert whose update is conditional), so replicas of one platform
on PostgreSQL, or the processes of ``serve --workers N`` on one SQLite file, share one count
and never let two attempts through on the same last place: PostgreSQL locks the address's
row for the statement, SQLite admits one writer. A replica that kept the count in its own
memory would let N replicas allow N times the attempts. Rows of addresses idle for longer
than the window mean nothing and are deleted now and then.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from dojo.platform.errors import TooManyRequests
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import LoginLimit

# How often a process deletes the rows of addresses that have been quiet for a window.
SWEEP_SECONDS = 60.0

_TABLE = LoginLimit.__tablename__
# The address's arrival time once this attempt counts: from now, or from where it stands.
_NEXT = f"(CASE WHEN {_TABLE}.tat > :now THEN {_TABLE}.tat ELSE :now END) + :step"
_HIT = text(
    f"INSERT INTO {_TABLE} (key, tat) VALUES (:key, :now + :step)"
    f" ON CONFLICT (key) DO UPDATE SET tat = {_NEXT} WHERE {_NEXT} <= :now + :window"
    " RETURNING tat"
)
_TAT = text(f"SELECT tat FROM {_TABLE} WHERE key = :key")
_SWEEP = text(f"DELETE FROM {_TABLE} WHERE tat < :now")


class LoginLimiter:
    """At most ``limit`` log-in attempts per ``window`` seconds per client address, counted
    in ``database`` (blocking: run :meth:`hit` on a thread)."""

    def __init__(self, database: Database, limit: int, window: float):
        self.database = database
        self.limit = limit
        self.window = window
        self._swept = time.monotonic()

    def hit(self, key: str) -> None:
        """Count one attempt from ``key``; :class:`TooManyRequests` (nothing counted) past the limit."""
        now = time.time()
        step = self.window / self.limit
        params = {"key": key[:128], "now": now, "step": step, "window": self.window}
        with self.database.session() as db:
            if db.execute(_HIT, params).first() is not None:
                if time.monotonic() - self._swept > SWEEP_SECONDS:
                    self._swept = time.monotonic()
                    db.execute(_SWEEP, {"now": now})
                return
            tat = db.execute(_TAT, {"key": params["key"]}).scalar_one()
        retry = max(0.0, tat + step - self.window - now)
        raise TooManyRequests(
            f"too many log-in attempts from this address; try again in {max(1.0, retry):.0f} s",
            retry_after=retry,
        )
