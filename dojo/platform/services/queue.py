"""The worker's side of tasks: the next task, submitting a result, skipping.

The invariant: a task never collects more than ``max_results`` results. A claim counts
the task's results (``tasks.num_results``) plus the live holds of other workers, and is
made only while that is below ``max_results``; a submission without a live hold of its own
makes the same check. Both happen under the task's row lock (``SELECT … FOR UPDATE`` on
PostgreSQL; on SQLite the write transaction's ``BEGIN IMMEDIATE`` lock), so concurrent
claims and submissions on one task are serialised and each sees the others' commits. On
PostgreSQL a claim first tries the open tasks with ``SKIP LOCKED``, so concurrent workers
spread over tasks instead of queueing on one, then waits on the first open task, so a
task locked for a moment never reads as "no task".

A hold lasts ``hold_ttl_seconds``; an expired hold frees its place. One result per worker
per task: a resubmission before the task expires replaces it (and does not count twice).

The rules on taking a task, by name. Each is written twice: in the prepared SQL here (and,
on PostgreSQL, in the functions of revisions 0008 and 0009) for the hot path, and in the ORM of
:mod:`dojo.platform.services.subscriptions` for the pages; ``tests/dojo/platform/test_rule_parity.py``
runs both over the same cases, on SQLite and PostgreSQL, and fails naming the rule where
they part. Why two copies and not the hot path's statements compiled from the ORM's: on
PostgreSQL the rules run inside functions a migration created, and a migration is fixed
history (its text cannot follow today's ORM without changing what an applied revision
means). SQLite's statements could be compiled from the ORM's expressions; they are written
out like PostgreSQL's so that the two hot paths read alike, and the parity test holds all
three together.

- *live subscription*: the worker subscribes to the task's miner by an invite link, or by
  a subscription key the miner has not disabled (``_LIVE_SUBSCRIPTION``, ``LIVE_MINERS``;
  ``subscriptions.live_subscription``). Without one the task is not the worker's (404),
  even while it holds it.
- *closed*: the task's deadline has passed (410), whatever the worker holds or answered.
- *full*: the task has ``max_results`` results (``num_results``); a worker that answered it
  keeps its place (a resubmission replaces its answer).
- *others holding*: the results plus the live holds of other workers take every place
  (``OTHERS_HOLDING``, ``_OPEN_TASKS``; ``subscriptions._others_holding``); a worker's own
  live hold keeps its place, a lapsed one is no hold.
- *skipped*: a worker that skipped a task is never offered it and answers it no more.
- *time left* (claims only): a new hold is taken only with :func:`time_needed` left before
  the deadline (below), and the next task passes over the worker's own hold with less left
  (the page's claim still extends that hold). The pages' list and task page do not apply
  it: they show such a task as open, and a submission is taken until the deadline.
- The next task offered is the worker's live hold, else a task none of these rules refuses
  and the worker has not answered: the soonest to end on SQLite, one of the :data:`SPREAD`
  soonest at random on PostgreSQL (so that concurrent claims spread over tasks).

One state the two sides judge differently: a live hold of the worker on a task that is
already full. The pages call the task full; the hot path trusts the hold to keep a place,
offers the task and stores the answer. No claim makes that state (a hold is taken only
while a place is free, and keeps it), so it is left as it is; the parity test pins each
side's answer (``DISAGREEMENTS``).

A task is handed out only while a person can still finish it: with at least
:func:`time_needed` left before its deadline (the median time the platform's workers took
on their recent answers, never less than ``min_time_left_seconds``), and a hold is never
shorter than that time. The next-task search, the hold the task page asks for and both
paths of the API (the routes and the hot path) apply this one rule.

This is the platform's hot path (every worker loops next → submit), so it runs a few
prepared SQL statements instead of building ORM queries per call. On SQLite this module runs
the rules itself. On PostgreSQL a claim and a submission are each one call of a function in
the database (``dojo_next_task``, ``dojo_submit_result``, revisions 0008 and 0009) that applies the
same rules statement by statement, each statement with a fresh snapshot: one round trip
instead of seven to nine (why, and the figures: :mod:`dojo.platform.services.pgqueue`). The answer
itself is checked here first, against the task's criteria and completions, which never
change once the task is made.

For the UI's page routes and the API: :func:`next_task`, :func:`submit_result`,
:func:`skip_task`, :func:`worker_progress`. Each takes an open write transaction: an ORM
Session (``Database.session()``), a Core Connection, or the driver's own connection
(``Database.raw_write()``: ~30 µs a statement instead of ~200 µs through SQLAlchemy's
execution). The API's hot path on PostgreSQL calls the same functions on the event loop
(:class:`dojo.platform.services.pgqueue.PostgresQueue`), with :func:`next_task_params`,
:func:`submit_params` and :func:`submitted`.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    CursorResult,
    TextClause,
    TextualSelect,
    bindparam,
    column,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from dojo.platform.errors import Conflict, Gone, Invalid, NotFound
from dojo.platform.services.subscriptions import TaskRow, WorkerTaskView
from dojo.platform.services.team import WINDOW
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.models import DONE, HOLD, SKIPPED, Assignment, Result, Worker
from dojo.platform.storage.rawsql import RawDb, RawStatement
from template.clock import utcnow
from template.storage import UTCDateTime

# PostgreSQL: over how many of the soonest open tasks concurrent claims spread (tried in
# random order without waiting), and how many a claim then waits for in deadline order.
SPREAD = 16
CANDIDATES = 8

_TIMES = ("now", "until", "soonest")
_SA_TYPES = {"datetime": UTCDateTime, "json": JSON, None: None}


class Stmt:
    """One statement of the queue, runnable on an ORM Session, a Core Connection or a :class:`RawDb`.

    ``columns`` names the result columns and their kinds (``"datetime"``, ``"json"`` or
    ``None``), as SQLAlchemy's ``TextClause.columns`` would type them.
    """

    def __init__(self, statement: str, **columns: str | None):
        binds = [bindparam(name, type_=UTCDateTime()) for name in _TIMES if f":{name}" in statement]
        json_params = ["data"] if ":data" in statement else []
        binds.extend(bindparam(name, type_=JSON()) for name in json_params)
        clause = text(statement)
        if binds:
            clause = clause.bindparams(*binds)
        self.clause: TextClause | TextualSelect = (
            clause.columns(*(column(name, _SA_TYPES[kind]) for name, kind in columns.items()))
            if columns
            else clause
        )
        self.raw = RawStatement(
            statement,
            times=[name for name in _TIMES if f":{name}" in statement],
            json_params=json_params,
            columns=list(columns.values()),
        )


# The functions take an ORM Session (page routes), a Core Connection, or a RawDb (the API's
# hot path, which skips SQLAlchemy's execution machinery); all run the same statements.
Db = Session | Connection | RawDb


def _rows(db: Db, statement: Stmt, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    if isinstance(db, RawDb):
        return db.execute(statement.raw, params)
    # Session.execute is typed as returning a Result; a textual statement's is a CursorResult.
    result = cast(CursorResult[Any], db.execute(statement.clause, params))
    return [tuple(row) for row in result] if result.returns_rows else []


def _first(db: Db, statement: Stmt, params: dict[str, Any]) -> tuple[Any, ...] | None:
    rows = _rows(db, statement, params)
    return rows[0] if rows else None


_LIVE_SUBSCRIPTION = (
    "SELECT 1 FROM subscriptions s LEFT JOIN api_keys k ON k.id = s.key_id"
    " WHERE s.worker_id = :w AND s.miner_id = {miner} AND (s.key_id IS NULL OR k.disabled_at IS NULL)"
)
_TASK_COLUMNS: dict[str, str | None] = {
    "id": None,
    "miner_id": None,
    "title": None,
    "body": None,
    "prompt": None,
    "task_type": None,
    "criteria": "json",
    "completions": "json",
    "num_results": None,
    "max_results": None,
    "expire_at": "datetime",
}
_SELECT_TASK = "SELECT " + ", ".join(f"t.{c}" for c in _TASK_COLUMNS) + " FROM tasks t WHERE t.id = :t"

# ``:soonest``: the earliest deadline a task may have to be handed out now (now + time needed).
HELD = Stmt(
    "SELECT t.id, a.held_until FROM assignments a JOIN tasks t ON t.id = a.task_id"
    " WHERE a.worker_id = :w AND a.status = 'held' AND a.held_until > :now AND t.expire_at > :soonest"
    f" AND EXISTS ({_LIVE_SUBSCRIPTION.format(miner='t.miner_id')})"
    " ORDER BY t.expire_at LIMIT 1",
    id=None,
    held_until="datetime",
)
LIVE_MINERS = Stmt(
    "SELECT s.miner_id FROM subscriptions s LEFT JOIN api_keys k ON k.id = s.key_id"
    " WHERE s.worker_id = :w AND (s.key_id IS NULL OR k.disabled_at IS NULL)"
)
# One miner per query, so the scan walks the partial index ix_tasks_open in deadline order
# and stops at the limit (an IN over several miners would sort every open task first).
_OPEN_TASKS = (
    " FROM tasks t"
    " WHERE t.miner_id = :m AND t.num_results < t.max_results AND t.expire_at > :soonest"
    " AND t.num_results + (SELECT count(*) FROM assignments a"
    "   WHERE a.task_id = t.id AND a.status = 'held' AND a.held_until > :now) < t.max_results"
    " AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = :w"
    "   AND (a.status <> 'held' OR a.held_until > :now))"
    # Not "expire_at, id": the index holds (expire_at, rowid), and sorting ties by id would
    # make SQLite sort every open task of the miner.
    " ORDER BY t.expire_at LIMIT :limit"
)
# The search returning whole tasks: on SQLite, where what it finds is still free.
OPEN_TASK_ROWS = Stmt("SELECT " + ", ".join(f"t.{c}" for c in _TASK_COLUMNS) + _OPEN_TASKS, **_TASK_COLUMNS)
TASK = Stmt(_SELECT_TASK, **_TASK_COLUMNS)
TASK_FOR_UPDATE = Stmt(_SELECT_TASK + " FOR UPDATE", **_TASK_COLUMNS)
OTHERS_HOLDING = Stmt(
    "SELECT count(*) FROM assignments"
    " WHERE task_id = :t AND status = 'held' AND held_until > :now AND worker_id <> :w"
)
# A hold keeps the worker's draft; a submission or a skip ends it.
SET_ASSIGNMENT = Stmt(
    "INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)"
    " VALUES (:t, :w, :status, :until, :now, :now)"
    " ON CONFLICT (task_id, worker_id) DO UPDATE"
    " SET status = excluded.status, held_until = excluded.held_until, updated_at = excluded.updated_at,"
    " draft = CASE WHEN excluded.status = 'held' THEN assignments.draft END,"
    " draft_saved_at = CASE WHEN excluded.status = 'held' THEN assignments.draft_saved_at END"
)
ACCESS = Stmt(_LIVE_SUBSCRIPTION.format(miner=":m"))
MINE = Stmt(
    "SELECT r.id, r.lead_time, a.status, a.held_until, a.created_at"
    " FROM (SELECT 1 AS one) AS x"
    " LEFT JOIN results r ON r.task_id = :t AND r.worker_id = :w"
    " LEFT JOIN assignments a ON a.task_id = :t AND a.worker_id = :w",
    result_id=None,
    lead_time=None,
    status=None,
    held_until="datetime",
    claimed_at="datetime",
)
REPLACE_RESULT = Stmt(
    "UPDATE results SET result_data = :data, lead_time = :lead, rationale = :why, updated_at = :now"
    " WHERE id = :id"
)
INSERT_RESULT = Stmt(
    "INSERT INTO results (task_id, worker_id, result_data, lead_time, rationale, created_at, updated_at)"
    " VALUES (:t, :w, :data, :lead, :why, :now, :now)"
)
COUNT_RESULT = Stmt("UPDATE tasks SET num_results = num_results + 1 WHERE id = :t")
RECENT_LEAD_TIMES = Stmt(
    "SELECT lead_time FROM results WHERE lead_time IS NOT NULL ORDER BY id DESC LIMIT :limit", lead_time=None
)

# The time a person needs for a task: the median of the platform's recent answers' times.
RECENT_RESULTS = 200  # answers the median is taken over
MIN_SAMPLES = 20  # fewer measured answers than this: the floor alone
TIME_NEEDED_CAP = 1800.0  # a slow spell never withholds every task with less than this left
TIME_NEEDED_REFRESH = 30.0  # seconds a process reuses the median it read
_recent_median: dict[str, tuple[float, float | None]] = {}  # database URL -> (read at, median)


def forget_time_needed(database_url: str) -> None:
    """Drop the median this process read from ``database_url``, so that the next claim
    reads the results again."""
    _recent_median.pop(database_url, None)


def known_time_needed(settings: PlatformSettings) -> float | None:
    """:func:`time_needed` from what this process read lately, or None when the recent
    answers must be read again (:data:`RECENT_LEAD_TIMES`, then :func:`learn_time_needed`)."""
    floor = settings.min_time_left_seconds
    if floor <= 0:
        return 0.0
    cached = _recent_median.get(settings.database_url)
    if cached is None or time.monotonic() - cached[0] >= TIME_NEEDED_REFRESH:
        return None
    return max(floor, min(cached[1] or 0.0, TIME_NEEDED_CAP))


def learn_time_needed(settings: PlatformSettings, rows: list[tuple[Any, ...]]) -> float:
    """:func:`time_needed` from the rows of :data:`RECENT_LEAD_TIMES`, kept for a while."""
    times = [float(row[0]) for row in rows]
    median = statistics.median(times) if len(times) >= MIN_SAMPLES else None
    _recent_median[settings.database_url] = (time.monotonic(), median)
    return max(settings.min_time_left_seconds, min(median or 0.0, TIME_NEEDED_CAP))


def time_needed(db: Db, settings: PlatformSettings) -> float:
    """Seconds a task must have left to be handed out, and the shortest hold: the median
    time of the platform's recent answers (capped), at least ``min_time_left_seconds``; 0
    when that setting is 0 (the rule is off)."""
    known = known_time_needed(settings)
    if known is not None:
        return known
    return learn_time_needed(settings, _rows(db, RECENT_LEAD_TIMES, {"limit": RECENT_RESULTS}))


def readable_time(value: datetime) -> str:
    """A UTC time as a person reads it in a message: to the second, with its zone."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# PostgreSQL: the claim and the submission in the database (revisions 0008, 0009), and what the
# submission's answer is checked against first.
PG_NEXT_TASK = Stmt(
    "SELECT * FROM dojo_next_task(CAST(:w AS integer), :now, :soonest, CAST(:hold AS double precision),"
    " CAST(:spread AS integer), CAST(:tries AS integer))",
    **_TASK_COLUMNS,
    held_until="datetime",
)
PG_SUBMIT_RESULT = Stmt(
    "SELECT * FROM dojo_submit_result(CAST(:w AS integer), CAST(:t AS varchar), CAST(:answer AS json),"
    " CAST(:lead AS double precision), CAST(:why AS text), :now)",
    outcome=None,
    expire_at="datetime",
    max_results=None,
)
TASK_DEFINITION = Stmt(
    "SELECT t.criteria, t.completions FROM tasks t WHERE t.id = :t", criteria="json", completions="json"
)


def _is_postgres(db: Db) -> bool:
    if isinstance(db, RawDb):
        return not db.is_sqlite
    dialect = db.dialect if isinstance(db, Connection) else db.get_bind().dialect
    return dialect.name == "postgresql"


def _task(db: Db, statement: Stmt, task_id: str) -> TaskRow | None:
    row = _first(db, statement, {"t": task_id})
    return None if row is None else TaskRow(*row)


def _lock_task(db: Db, task_id: str) -> TaskRow | None:
    return _task(db, TASK_FOR_UPDATE if _is_postgres(db) else TASK, task_id)


def _others_holding(db: Db, task_id: str, worker_id: int, now: datetime) -> int:
    return int(_rows(db, OTHERS_HOLDING, {"t": task_id, "w": worker_id, "now": now})[0][0])


def _set_assignment(
    db: Db, task_id: str, worker_id: int, status: str, until: datetime, now: datetime
) -> None:
    _rows(db, SET_ASSIGNMENT, {"t": task_id, "w": worker_id, "status": status, "until": until, "now": now})


def _view(task: TaskRow, held_until: datetime | None) -> WorkerTaskView:
    # A held task has no result of this worker: submitting turns the hold into "done".
    return WorkerTaskView.of(task, held_until, None)


def _hold_seconds(settings: PlatformSettings, needed: float) -> float:
    """How long a hold lasts: the TTL, and never less than the time a person needs."""
    return max(float(settings.hold_ttl_seconds), needed)


def _hold(db: Db, worker: Worker, task: TaskRow, now: datetime, hold_for: float) -> WorkerTaskView:
    until = min(now + timedelta(seconds=hold_for), task.expire_at)
    _set_assignment(db, task.id, worker.id, HOLD, until, now)
    return _view(task, until)


def _live_hold(db: Db, worker: Worker, now: datetime, soonest: datetime) -> WorkerTaskView | None:
    """The task this worker holds now, if any, unless too little of it is left to finish."""
    held = _first(db, HELD, {"w": worker.id, "now": now, "soonest": soonest})
    if held is None:
        return None
    held_id, held_until = held
    task = _task(db, TASK, held_id)
    assert task is not None
    return _view(task, held_until)


def next_task_params(settings: PlatformSettings, worker: Worker, needed: float) -> dict[str, Any]:
    """The parameters of :data:`PG_NEXT_TASK` for a claim by ``worker`` now, with ``needed``
    (:func:`time_needed`) seconds left before a deadline to hand a task out."""
    now = utcnow()
    return {
        "w": worker.id,
        "now": now,
        "soonest": now + timedelta(seconds=needed),
        "hold": _hold_seconds(settings, needed),
        "spread": SPREAD,
        "tries": CANDIDATES,
    }


def task_view(row: tuple[Any, ...]) -> WorkerTaskView:
    """The view of a row of :data:`PG_NEXT_TASK`: the task's columns, then its hold's end."""
    return _view(TaskRow(*row[:-1]), row[-1])


def next_task(db: Db, settings: PlatformSettings, worker: Worker) -> WorkerTaskView | None:
    """The task held for this worker: its live hold if it has one, else a newly claimed one.

    Run it in one write transaction. On SQLite that transaction holds the database's write
    lock from its first statement, so the first open task found is still free when claimed:
    no spread is needed, the search stops at one task, and what it read needs no second look.
    """
    if _is_postgres(db):
        row = _first(db, PG_NEXT_TASK, next_task_params(settings, worker, time_needed(db, settings)))
        return None if row is None else task_view(row)
    now = utcnow()
    needed = time_needed(db, settings)
    soonest = now + timedelta(seconds=needed)
    held = _live_hold(db, worker, now, soonest)
    if held is not None:
        return held
    best: TaskRow | None = None
    for (miner_id,) in _rows(db, LIVE_MINERS, {"w": worker.id}):
        params = {"m": miner_id, "w": worker.id, "now": now, "soonest": soonest, "limit": 1}
        row = _first(db, OPEN_TASK_ROWS, params)
        if row is not None and (best is None or (row[-1], row[0]) < (best.expire_at, best.id)):
            best = TaskRow(*row)
    return None if best is None else _hold(db, worker, best, now, _hold_seconds(settings, needed))


@dataclass(frozen=True)
class Definition:
    """What an answer is checked against: a task's criteria and completions, fixed when the
    task is made (so any copy of them, however old, is the task's)."""

    criteria: list[dict[str, Any]]
    completions: list[dict[str, Any]]


def validate_result_data(
    task: TaskRow | Definition, result_data: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Check a result against the task's criteria; return it normalised (rankings as ``{cid: rank}``).

    A ranking is a permutation of the task's completion ids: ``{cid: rank}`` with ranks
    1..n (1 best), or the list of cids best first. A multi-score is one finite number per
    completion within the criterion's min and max.
    """
    cids = [c["cid"] for c in task.completions]
    criteria = {c["type"]: c for c in task.criteria}
    given = [item["type"] for item in result_data]
    if len(set(given)) != len(given):
        raise Invalid("one entry per criterion type in resultData")
    if set(given) != set(criteria):
        raise Invalid(
            f"resultData must answer exactly the task's criteria: {sorted(criteria)}; got {sorted(given)}"
        )
    normalised = []
    for item in result_data:
        kind, value = item["type"], item["value"]
        if kind == "ranking":
            if isinstance(value, list):
                if sorted(map(str, value)) != sorted(cids) or not all(isinstance(v, str) for v in value):
                    raise Invalid(f"a ranking list must be a permutation of the completion ids {cids}")
                value = {cid: rank for rank, cid in enumerate(value, start=1)}
            if set(value) != set(cids):
                raise Invalid(f"a ranking must rank exactly the completion ids {cids}")
            ranks = list(value.values())
            if any(type(r) is not int for r in ranks) or sorted(ranks) != list(range(1, len(cids) + 1)):
                raise Invalid(f"ranks must be the integers 1..{len(cids)}, each once (1 is best)")
            normalised.append({"type": "ranking", "value": {cid: value[cid] for cid in cids}})
        else:
            low, high = criteria[kind]["min"], criteria[kind]["max"]
            if not isinstance(value, dict) or set(value) != set(cids):
                raise Invalid(f"multi-score needs one score for each completion id {cids}")
            for cid in cids:
                score = value[cid]
                if type(score) not in (int, float) or not math.isfinite(score) or not low <= score <= high:
                    raise Invalid(f"score for {cid!r} must be a number within {low}..{high}; got {score!r}")
            normalised.append({"type": kind, "value": {cid: value[cid] for cid in cids}})
    return normalised


@dataclass(frozen=True)
class Submitted:
    task_id: str
    replaced: bool
    updated_at: datetime


@dataclass(frozen=True)
class Mine:
    """This worker's standing on a task: its result (and lead time) and its assignment."""

    result_id: int | None
    lead_time: float | None
    status: str | None
    held_until: datetime | None
    claimed_at: datetime | None

    def holds(self, now: datetime) -> bool:
        return self.status == HOLD and self.held_until is not None and self.held_until > now


def _mine(db: Db, task_id: str, worker_id: int) -> Mine:
    return Mine(*_rows(db, MINE, {"t": task_id, "w": worker_id})[0])


def _accessible_locked_task(db: Db, worker: Worker, task_id: str) -> TaskRow:
    task = _lock_task(db, task_id)
    if task is None or _first(db, ACCESS, {"w": worker.id, "m": task.miner_id}) is None:
        raise NotFound(NOT_YOURS)
    return task


NOT_YOURS = "no such task among your subscriptions"


def _expired(task_id: str, expire_at: datetime) -> Gone:
    return Gone(f"task {task_id} expired: its deadline passed at {readable_time(expire_at)}")


def _refuse_closed(task: TaskRow, now: datetime) -> None:
    if task.expire_at <= now:
        raise _expired(task.id, task.expire_at)


SKIPPED_DETAIL = "you skipped this task; it takes no answer from you"


def _no_free_place(db: Db, task: TaskRow, worker: Worker, now: datetime) -> str | None:
    """Why the worker cannot take a place on ``task`` now (it holds none), or None."""
    if task.num_results >= task.max_results:
        return _full(task.id, task.max_results)
    if task.num_results + _others_holding(db, task.id, worker.id, now) >= task.max_results:
        return _held_by_others(task.id)
    return None


def _minutes(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _too_late(task: TaskRow, now: datetime, needed: float) -> str | None:
    """Why a new hold on ``task`` would not let a person finish it, or None."""
    left = (task.expire_at - now).total_seconds()
    if left >= needed:
        return None
    return (
        f"task {task.id} has {_minutes(left)} left before its deadline ({readable_time(task.expire_at)}),"
        f" less than the {_minutes(needed)} an answer takes; it is no longer handed out"
    )


def _full(task_id: str, max_results: int) -> str:
    return f"task {task_id} already has its {max_results} results"


def _held_by_others(task_id: str) -> str:
    return f"other workers hold the remaining places of task {task_id}; try again later"


def lead_time_total(mine: Mine, given: float | None, now: datetime) -> float | None:
    """The seconds to store with a result: what the worker spent, summed over resubmissions.

    ``given`` is what the page measured (Label Studio's lead time); without it, the time since
    the claim counts for a first answer. The total never exceeds the time since the worker
    first claimed the task, when it did.
    """
    wall = (now - mine.claimed_at).total_seconds() if mine.claimed_at is not None else None
    if given is None:
        given = wall if mine.result_id is None else None
    if given is None:
        return mine.lead_time
    total = (mine.lead_time or 0.0) + given
    return min(total, max(wall, 0.0)) if wall is not None else total


def submit_result(
    db: Db,
    settings: PlatformSettings,
    worker: Worker,
    task_id: str,
    result_data: list[dict[str, Any]],
    lead_time: float | None = None,
    rationale: str | None = None,
) -> Submitted:
    """Store (or replace) this worker's result. 404 not yours, 410 expired, 409 full or
    skipped, 422 invalid. ``lead_time``: the seconds the worker spent on it, if measured;
    ``rationale``: why it answered so, if it said (a resubmission replaces it too)."""
    if _is_postgres(db):
        row = _first(db, TASK_DEFINITION, {"t": task_id})
        definition = None if row is None else Definition(*row)
        params, refusal = submit_params(definition, worker, task_id, result_data, lead_time, rationale)
        outcome = _first(db, PG_SUBMIT_RESULT, params)
        assert outcome is not None
        return submitted(outcome, params, refusal)
    task = _accessible_locked_task(db, worker, task_id)
    now = utcnow()
    _refuse_closed(task, now)
    data = validate_result_data(task, result_data)
    mine = _mine(db, task.id, worker.id)
    lead = lead_time_total(mine, lead_time, now)
    if mine.result_id is not None:
        _rows(
            db,
            REPLACE_RESULT,
            {"data": data, "lead": lead, "why": rationale, "now": now, "id": mine.result_id},
        )
        # A resubmission ends the draft it was made from, as a first answer does.
        _set_assignment(db, task.id, worker.id, DONE, now, now)
        return Submitted(task.id, True, now)
    if mine.status == SKIPPED:
        raise Conflict(SKIPPED_DETAIL)
    if not mine.holds(now):
        no_place = _no_free_place(db, task, worker, now)
        if no_place is not None:
            raise Conflict(no_place + " (or they are held)")
    params = {"t": task.id, "w": worker.id, "data": data, "lead": lead, "why": rationale, "now": now}
    _rows(db, INSERT_RESULT, params)
    _rows(db, COUNT_RESULT, {"t": task.id})
    _set_assignment(db, task.id, worker.id, DONE, now, now)
    return Submitted(task.id, False, now)


def submit_params(
    definition: Definition | None,
    worker: Worker,
    task_id: str,
    result_data: list[dict[str, Any]],
    lead_time: float | None,
    rationale: str | None,
) -> tuple[dict[str, Any], Invalid | None]:
    """The parameters of :data:`PG_SUBMIT_RESULT`, and why the answer is refused if it is.

    The answer is checked against ``definition`` (None: no such task) before the call; a
    refused one is sent as NULL, so that the database still answers 404 or 410 first, as
    :func:`submit_result` does on SQLite, and writes nothing.
    """
    answer, refusal = None, None
    if definition is not None:
        try:
            answer = json.dumps(validate_result_data(definition, result_data))
        except Invalid as exc:
            refusal = exc
    params = {
        "w": worker.id,
        "t": task_id,
        "answer": answer,
        "lead": lead_time,
        "why": rationale,
        "now": utcnow(),
    }
    return params, refusal


def submitted(outcome: tuple[Any, ...], params: dict[str, Any], refusal: Invalid | None) -> Submitted:
    """What a row of :data:`PG_SUBMIT_RESULT` means: the receipt, or the error to raise."""
    verdict, expire_at, max_results = outcome
    task_id = params["t"]
    if verdict == "stored" or verdict == "replaced":
        return Submitted(task_id, verdict == "replaced", params["now"])
    if verdict == "not_found":
        raise NotFound(NOT_YOURS)
    if verdict == "expired":
        raise _expired(task_id, expire_at)
    if verdict == "invalid":
        raise refusal or Invalid("the answer does not fit the task")
    if verdict == "skipped":
        raise Conflict(SKIPPED_DETAIL)
    if verdict == "full":
        raise Conflict(_full(task_id, max_results) + " (or they are held)")
    if verdict == "held_by_others":
        raise Conflict(_held_by_others(task_id) + " (or they are held)")
    raise RuntimeError(f"dojo_submit_result answered {verdict!r}")


@dataclass(frozen=True)
class Hold:
    task_id: str
    held_until: datetime | None
    expire_at: datetime


def extend_hold(db: Db, settings: PlatformSettings, worker: Worker, task_id: str) -> Hold:
    """Claim ``task_id`` for the worker, or extend its live hold, for another hold TTL (never
    less than :func:`time_needed`).

    The page calls it while the worker is at work, so a hold never lapses under an active
    worker. A worker with a stored result needs no hold (its place is kept): ``held_until``
    is None. 404 not yours, 410 expired, 409 skipped, full or held by others, or (a new
    claim) too close to its deadline for a person to finish.
    """
    task = _accessible_locked_task(db, worker, task_id)
    now = utcnow()
    _refuse_closed(task, now)
    mine = _mine(db, task.id, worker.id)
    if mine.result_id is not None:
        return Hold(task.id, None, task.expire_at)
    if mine.status == SKIPPED:
        raise Conflict(SKIPPED_DETAIL)
    needed = time_needed(db, settings)
    if not mine.holds(now):
        refusal = _no_free_place(db, task, worker, now) or _too_late(task, now, needed)
        if refusal is not None:
            raise Conflict(refusal)
    until = min(now + timedelta(seconds=_hold_seconds(settings, needed)), task.expire_at)
    _set_assignment(db, task.id, worker.id, HOLD, until, now)
    return Hold(task.id, until, task.expire_at)


def skip_task(db: Db, worker: Worker, task_id: str) -> None:
    """Release this worker's hold and never offer the task to it again."""
    task = _accessible_locked_task(db, worker, task_id)
    if _mine(db, task.id, worker.id).result_id is not None:
        raise Conflict("you already submitted a result for this task; resubmit to change it")
    now = utcnow()
    _set_assignment(db, task.id, worker.id, SKIPPED, now, now)


@dataclass(frozen=True)
class WorkerProgress:
    results_today: int
    results_total: int
    skipped_total: int = 0
    lead_time_total: float = 0.0
    lead_time_median: float | None = None


def worker_progress(db: Session, worker: Worker, window: int = WINDOW) -> WorkerProgress:
    """Results this worker has submitted since midnight UTC and in all, tasks skipped, the
    time spent on results in all, and the median time of its latest ``window`` results where
    it was measured. As the team's figures are (:mod:`dojo.platform.services.team`): counts
    and sums over all time, in the database, and the median over a window, so that the pages
    a worker opens all day never fetch every answer it ever gave (``benchmarks/worker_pages.py``)."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    today, total, time_total = db.execute(
        select(
            func.count().filter(Result.created_at >= midnight), func.count(), func.sum(Result.lead_time)
        ).where(Result.worker_id == worker.id)
    ).one()
    skipped = db.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.worker_id == worker.id, Assignment.status == SKIPPED)
    )
    times = db.scalars(
        select(Result.lead_time)
        .where(Result.worker_id == worker.id, Result.lead_time.is_not(None))
        .order_by(Result.updated_at.desc(), Result.id.desc())
        .limit(window)
    ).all()
    return WorkerProgress(
        today or 0,
        total or 0,
        skipped or 0,
        float(time_total or 0.0),
        statistics.median(t for t in times if t is not None) if times else None,
    )
