"""The queue's hot path on PostgreSQL: a claim or a submission is one round trip, on the event loop.

Where the time went (``benchmarks/platform.py``, 200 workers, 2 cores shared with the
database server; figures before → after are in docs/deployment.md):

- Round trips. A claim sent seven to nine statements one at a time (its live hold, its
  miners, the open tasks, a lock per candidate, the others' holds, the hold, ``COMMIT``), a
  submission nine. Each is a hand-off between two processes on a busy machine; sampling
  ``pg_stat_activity`` during a run found the four connections ``idle in transaction``
  (waiting for the application's next statement) a quarter of the time and busy flushing
  WAL for commits a third of it. A claim and a submission are now one call each of a
  PL/pgSQL function (``dojo_next_task``, ``dojo_submit_result``; revision 0008), which runs
  the same statements inside the server, each with a fresh snapshot as before, as a
  transaction of its own (autocommit): one round trip, no transaction left open between two.
- The threads. The sync driver ran on four database threads: at most four transactions in
  flight (so few commits to share a WAL flush), and every statement's result went back to
  the event loop through a thread hand-off and the GIL. The calls now run on the event
  loop itself, on ``hot_path_connections`` connections per process (:class:`Connections`);
  a request waits for a free connection without holding a thread, and the statements are
  prepared once per connection (server-side). Not ``psycopg_pool``: measured on this
  machine, lending a connection through it cost some 80 µs of CPU per call on top of the
  driver's own 90–100 µs (a query that returns at once, 16 callers, 8 connections), where
  :class:`Connections` costs a few.
- The plan. The search for open tasks, prepared on each connection, had been planned while
  ``assignments`` was nearly empty: a sequential scan of it for every task the search
  passed. ``pg_stat_statements`` put that one statement at 10 ms on average, two thirds
  of the database's time. The benchmark now lets the warm-up run before ``ANALYZE``, as
  autovacuum does for a platform that has been running; the index
  ``ix_assignments_task_worker_state`` then answers each task's count from the index.
- Wholly held tasks. The search for open tasks counted the live holds of every task it
  passed, most of them with every place held by other workers; the claim whose hold takes a
  task's last place now marks it (``tasks.full_until``, revision 0009: until the first of
  its holds lapses, cleared by triggers whenever a place comes free sooner) and the search
  passes over a marked task without counting. Figures: :mod:`dojo.platform.http.hotpath`.
- Commits. A hold is soft state, so a claim does not wait for its WAL to reach the disk
  (``synchronous_commit`` off for that transaction only): a crash of the database server
  may forget the holds of its last instants, whose places then come free; any later commit
  that depends on one (the submission) flushes it first. Submissions wait for the flush as
  before: an acknowledged result is on disk.
- Not the culprits: lock waits (``Lock:transactionid`` on a task row in under 1 % of the
  samples: ``SKIP LOCKED`` spreads the claims, and a transaction now holds its row lock for
  one statement), and the result counter's row (``tasks.num_results`` is updated once per
  result, so three times per task, not a row every submission updates).

Before → after, in one run on a 2-core machine shared with other work (load 7–18; all of
docs/deployment.md's table): 94–109 → 151–503 submissions/s with one server process, p99
1.8–2.9 s → 0.5–1.5 s, the server's CPU per request 1.2 → 0.4–0.5 ms, no errors, no task
over-filled; pgbench's simple update on the same server 1 390–2 204 transactions/s. A
claim's own work in the database, one connection alone: some 0.5–0.8 ms of CPU, a
submission's 0.4–0.8 ms (``fdatasync`` included).

A submission's answer is checked before the call, against the task's criteria and
completions (:class:`~dojo.platform.services.queue.Definition`, which never change once a task is
made), kept from the claim that handed the task out or read once (a few thousand per
process, least recently used dropped first). A refused answer is sent as NULL, so the
database still says 404 or 410 first and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Any

import psycopg
import psycopg.errors
from loguru import logger
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import make_url

from dojo.platform.credentials import WORKER_TOKEN_PREFIX, hash_secret
from dojo.platform.errors import Unavailable
from dojo.platform.services import auth, queue
from dojo.platform.services.subscriptions import WorkerTaskView
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.models import Worker
from dojo.platform.storage.rawsql import RawStatement
from template.clock import utcnow

# How the hot path's connections show in pg_stat_activity.
APPLICATION_NAME = "dojo-platform-queue"
# Task definitions kept per process for checking answers (a few KiB each).
DEFINITIONS_KEPT = 4096
UNAVAILABLE = "the database is unavailable; nothing was stored, try again"


def libpq_conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy ``postgresql+psycopg://`` URL (its query, such as
    ``options``, kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Connections:
    """At most ``size`` autocommit connections of one event loop, each lent to one call at a time.

    Each is lent as its one cursor (``cursor.connection`` is the connection), made with the
    connection and used for every call on it: a new cursor per call cost some 20 µs of CPU
    (its adapters copied). Opened as calls need them, kept open, the most recently returned
    lent first. A caller
    finding none free waits (at most ``timeout`` seconds) for the next one returned. A
    connection returned closed, broken or inside a transaction (its call was cancelled) is
    closed and its place freed for a new one; when one is found lost, the idle ones are
    closed too (:meth:`forget_idle`).
    """

    def __init__(self, conninfo: str, size: int, timeout: float = 30.0):
        self._conninfo = conninfo
        self._size = size
        self._timeout = timeout
        self._idle: list[psycopg.AsyncCursor[Any]] = []
        self._waiters: deque[asyncio.Future[psycopg.AsyncCursor[Any] | None]] = deque()
        self._open = 0  # connections lent, idle or being opened
        self._closing = False
        self._closers: set[asyncio.Task[None]] = set()

    async def take(self) -> psycopg.AsyncCursor[Any]:
        while True:
            if self._closing:
                raise Unavailable("the platform is shutting down; try again")
            if self._idle:
                return self._idle.pop()
            if self._open < self._size:
                self._open += 1
                try:
                    connection = await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True, application_name=APPLICATION_NAME
                    )
                    return connection.cursor()
                except BaseException:
                    self._open -= 1
                    self._hand(None)
                    raise
            waiter: asyncio.Future[psycopg.AsyncCursor[Any] | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                cursor = await asyncio.wait_for(waiter, self._timeout)
            except asyncio.TimeoutError:
                logger.warning("no database connection came free in {} s for the queue", self._timeout)
                raise Unavailable(UNAVAILABLE) from None
            except asyncio.CancelledError:
                handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if handed is not None:
                    self.give_back(handed)  # handed over as this call was cancelled
                raise
            if cursor is not None:
                return cursor
            # None: a place came free; open a connection in it

    def give_back(self, cursor: psycopg.AsyncCursor[Any]) -> None:
        connection = cursor.connection
        unusable = connection.closed or connection.info.transaction_status != TransactionStatus.IDLE
        if unusable or self._closing:
            self._open -= 1
            if not connection.closed:
                closer = asyncio.get_running_loop().create_task(connection.close())
                self._closers.add(closer)
                closer.add_done_callback(self._closers.discard)
            self._hand(None)
            return
        if not self._hand(cursor):
            self._idle.append(cursor)

    def forget_idle(self) -> None:
        """Close the idle connections: one was found lost, so the others likely are too (the
        server restarted, the network dropped), and the next call opens a fresh one."""
        idle, self._idle = self._idle, []
        for cursor in idle:
            self._open -= 1
            closer = asyncio.get_running_loop().create_task(cursor.connection.close())
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)
        for _ in idle:
            if not self._hand(None):
                break

    def _hand(self, cursor: psycopg.AsyncCursor[Any] | None) -> bool:
        """Give ``cursor`` (or a free place) to the first caller still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(cursor)
                return True
        return False

    async def close(self) -> None:
        self._closing = True
        idle, self._idle = self._idle, []
        for cursor in idle:
            await cursor.connection.close()
        self._open -= len(idle)
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)


class PostgresQueue:
    """Claims, submissions and session look-ups for the hot path, on :class:`Connections`.

    The connections are made on first use, in the event loop that uses them (one per server
    process), and closed with :meth:`close`. A lost connection, no connection free in time
    or a call the database broke off (a deadlock) is a 503
    (:class:`~dojo.platform.errors.Unavailable`); nothing a failed call did is kept, as each
    call is a transaction of its own. Calls that can be made twice (a look-up, a claim,
    which finds its own hold again) are tried once more on another connection when the
    first was lost.
    """

    def __init__(self, database_url: str, connections: int, definitions: int = DEFINITIONS_KEPT):
        self._conninfo = libpq_conninfo(database_url)
        self._size = connections
        self._connections: Connections | None = None
        self._definitions: OrderedDict[str, queue.Definition] = OrderedDict()
        self._definitions_kept = definitions

    async def _rows(
        self, statement: RawStatement, params: dict[str, Any], again: bool = False
    ) -> list[tuple[Any, ...]]:
        if self._connections is None:
            self._connections = Connections(self._conninfo, self._size)
        try:
            cursor = await self._connections.take()
        except psycopg.OperationalError as exc:
            logger.warning("the queue cannot connect to the database: {}", exc)
            raise Unavailable(UNAVAILABLE) from None
        kept: psycopg.AsyncCursor[Any] | None = cursor  # given back at the end, if still ours
        try:
            await cursor.execute(statement.pyformat, statement.pg_params(params), prepare=True)
            # Every statement here returns rows (not asked of ``cursor.description``, which
            # builds the columns' descriptions on every call).
            return statement.pg_rows(await cursor.fetchall())
        except psycopg.errors.TransactionRollback as exc:
            # A deadlock or serialization failure broken off: the connection is sound. It is an
            # OperationalError too, so it comes before the clause for a lost connection.
            logger.warning("the queue's database call was rolled back: {}", exc)
            raise Unavailable(UNAVAILABLE) from None
        except psycopg.OperationalError as exc:  # the connection or the server went away
            self._connections.forget_idle()
            if again:
                logger.info("a queue connection was lost ({}); trying another", exc)
                self._connections.give_back(cursor)
                kept = None
                return await self._rows(statement, params)
            logger.warning("the queue's database call failed: {}", exc)
            raise Unavailable(UNAVAILABLE) from None
        finally:
            if kept is not None:
                self._connections.give_back(kept)

    async def lookup_worker(self, token: str) -> Worker | None:
        """The worker of a live session token, or ``None``."""
        if not token.startswith(WORKER_TOKEN_PREFIX):
            return None
        params = {"token_hash": hash_secret(token), "now": utcnow()}
        rows = await self._rows(auth.WORKER_FOR_TOKEN, params, again=True)
        if not rows:
            return None
        worker_id, public_id, address, created_at = rows[0]
        return Worker(id=worker_id, public_id=public_id, address=address, created_at=created_at)

    async def next_task(self, settings: PlatformSettings, worker: Worker) -> WorkerTaskView | None:
        """:func:`dojo.platform.services.queue.next_task`, in one call."""
        needed = queue.known_time_needed(settings)
        if needed is None:
            recent = await self._rows(
                queue.RECENT_LEAD_TIMES.raw, {"limit": queue.RECENT_RESULTS}, again=True
            )
            needed = queue.learn_time_needed(settings, recent)
        params = queue.next_task_params(settings, worker, needed)
        rows = await self._rows(queue.PG_NEXT_TASK.raw, params, again=True)
        if not rows:
            return None
        view = queue.task_view(rows[0])
        row = rows[0]
        self._keep(view.id, queue.Definition(row[6], row[7]))
        return view

    async def submit_result(
        self,
        settings: PlatformSettings,
        worker: Worker,
        task_id: str,
        result_data: list[dict[str, Any]],
        lead_time: float | None = None,
        rationale: str | None = None,
    ) -> queue.Submitted:
        """:func:`dojo.platform.services.queue.submit_result`, in one call (two the first time this
        process sees the task)."""
        definition = self._definitions.get(task_id)
        if definition is None:
            rows = await self._rows(queue.TASK_DEFINITION.raw, {"t": task_id}, again=True)
            if rows:
                definition = queue.Definition(*rows[0])
                self._keep(task_id, definition)
        else:
            self._definitions.move_to_end(task_id)
        params, refusal = queue.submit_params(definition, worker, task_id, result_data, lead_time, rationale)
        rows = await self._rows(queue.PG_SUBMIT_RESULT.raw, params)
        return queue.submitted(rows[0], params, refusal)

    def _keep(self, task_id: str, definition: queue.Definition) -> None:
        self._definitions[task_id] = definition
        self._definitions.move_to_end(task_id)
        while len(self._definitions) > self._definitions_kept:
            self._definitions.popitem(last=False)

    async def close(self) -> None:
        if self._connections is not None:
            await self._connections.close()
