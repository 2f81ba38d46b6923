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

A task is handed out only while a person can still finish it: with at least
:func:`time_needed` left before its deadline (the median time the platform's workers took
on their recent answers, never less than ``min_time_left_seconds``), and a hold is never
shorter than that time. The next-task search, the hold the task page asks for and both
paths of the API (the routes and the hot path) apply this one rule.

This is the platform's hot path (every worker loops next → submit), so it runs a few
prepared SQL statements, the same text on SQLite and PostgreSQL, instead of building ORM
queries per call.

For the UI's page routes and the API: :func:`next_task`, :func:`submit_result`,
:func:`skip_task`, :func:`worker_progress`. Each takes an open write transaction: an ORM
Session (``Database.session()``), a Core Connection, or the driver's own connection
(``Database.raw_write()``, the API's hot path: ~30 µs a statement instead of ~200 µs
through SQLAlchemy's execution). :func:`plan_next_task` (read-only) and
:func:`claim_next_task` can also run in two transactions, the look without the write lock.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, TextClause, bindparam, column, func, select, text
from sqlalchemy.orm import Session

from dojo.platform.db import RawDb, RawStatement
from dojo.platform.errors import Conflict, Gone, Invalid, NotFound
from dojo.platform.models import DONE, HOLD, SKIPPED, Assignment, Result, Worker, naive_utcnow
from dojo.platform.settings import PlatformSettings
from dojo.platform.subscriptions import WorkerTaskView

# How many open tasks a claim tries, and over how many the read-only look spreads them.
CANDIDATES = 16
SPREAD = 24

_TIMES = ("now", "until", "soonest")
_SA_TYPES = {"datetime": DateTime, "json": JSON, None: None}


class Stmt:
    """One statement of the queue, runnable on an ORM Session, a Core Connection or a :class:`RawDb`.

    ``columns`` names the result columns and their kinds (``"datetime"``, ``"json"`` or
    ``None``), as SQLAlchemy's ``TextClause.columns`` would type them.
    """

    def __init__(self, statement: str, **columns: str | None):
        binds = [bindparam(name, type_=DateTime()) for name in _TIMES if f":{name}" in statement]
        json_params = ["data"] if ":data" in statement else []
        binds.extend(bindparam(name, type_=JSON()) for name in json_params)
        clause = text(statement)
        if binds:
            clause = clause.bindparams(*binds)
        if columns:
            clause = clause.columns(*(column(name, _SA_TYPES[kind]) for name, kind in columns.items()))
        self.clause: TextClause = clause
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
    result = db.execute(statement.clause, params)
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
OPEN_TASKS = Stmt("SELECT t.id, t.expire_at" + _OPEN_TASKS, id=None, expire_at="datetime")
# The same search returning whole tasks: on SQLite, where what it finds is still free.
OPEN_TASK_ROWS = Stmt("SELECT " + ", ".join(f"t.{c}" for c in _TASK_COLUMNS) + _OPEN_TASKS, **_TASK_COLUMNS)
TASK = Stmt(_SELECT_TASK, **_TASK_COLUMNS)
TASK_FOR_UPDATE = Stmt(_SELECT_TASK + " FOR UPDATE", **_TASK_COLUMNS)
TASK_SKIP_LOCKED = Stmt(_SELECT_TASK + " FOR UPDATE SKIP LOCKED", **_TASK_COLUMNS)
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


def forget_time_needed() -> None:
    """Drop the medians this process read, so that the next claim reads the results again."""
    _recent_median.clear()


def _median_lead_time(db: Db, settings: PlatformSettings) -> float | None:
    key = settings.database_url
    read_at = time.monotonic()
    cached = _recent_median.get(key)
    if cached is not None and read_at - cached[0] < TIME_NEEDED_REFRESH:
        return cached[1]
    times = [float(row[0]) for row in _rows(db, RECENT_LEAD_TIMES, {"limit": RECENT_RESULTS})]
    median = statistics.median(times) if len(times) >= MIN_SAMPLES else None
    _recent_median[key] = (read_at, median)
    return median


def time_needed(db: Db, settings: PlatformSettings) -> float:
    """Seconds a task must have left to be handed out, and the shortest hold: the median
    time of the platform's recent answers (capped), at least ``min_time_left_seconds``; 0
    when that setting is 0 (the rule is off)."""
    floor = settings.min_time_left_seconds
    if floor <= 0:
        return 0.0
    median = _median_lead_time(db, settings)
    return max(floor, min(median or 0.0, TIME_NEEDED_CAP))


def readable_time(value: datetime) -> str:
    """A naive UTC time as a person reads it in a message: to the second, with its zone."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class TaskRow:
    """A task as the queue reads it."""

    id: str
    miner_id: int
    title: str
    body: str
    prompt: str
    task_type: str
    criteria: list[dict[str, Any]]
    completions: list[dict[str, Any]]
    num_results: int
    max_results: int
    expire_at: datetime


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


def _candidates(
    db: Db, worker: Worker, miner_ids: list[int], now: datetime, soonest: datetime, limit: int = CANDIDATES
) -> list[str]:
    found: list[tuple[datetime, str]] = []
    for miner_id in miner_ids:
        params = {"m": miner_id, "w": worker.id, "now": now, "soonest": soonest, "limit": limit}
        rows = _rows(db, OPEN_TASKS, params)
        found.extend((expire_at, task_id) for task_id, expire_at in rows)
    return [task_id for _, task_id in sorted(found)[:limit]]


def _claim(
    db: Db, worker: Worker, task: TaskRow | None, now: datetime, needed: float, hold_for: float
) -> WorkerTaskView | None:
    """Hold ``task`` (already row-locked) for the worker if it still has a free place and
    at least ``needed`` seconds before its deadline."""
    if task is None or task.num_results >= task.max_results:
        return None
    if task.expire_at <= now + timedelta(seconds=needed):
        return None
    if task.num_results + _others_holding(db, task.id, worker.id, now) >= task.max_results:
        return None
    return _hold(db, worker, task, now, hold_for)


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


@dataclass(frozen=True)
class NextTaskPlan:
    """What a read-only look finds: the worker's live hold, or its miners and open tasks."""

    held: WorkerTaskView | None
    miner_ids: list[int]
    candidates: list[str]


def plan_next_task(db: Db, settings: PlatformSettings, worker: Worker, spread: int = SPREAD) -> NextTaskPlan:
    """The read-only half of :func:`next_task`; run it in a read transaction.

    Up to ``spread`` open tasks come back shuffled, so that concurrent workers try different
    tasks first instead of all queueing for the oldest.
    """
    now = naive_utcnow()
    soonest = now + timedelta(seconds=time_needed(db, settings))
    held = _live_hold(db, worker, now, soonest)
    if held is not None:
        return NextTaskPlan(held, [], [])
    miner_ids = [row[0] for row in _rows(db, LIVE_MINERS, {"w": worker.id})]
    candidates = _candidates(db, worker, miner_ids, now, soonest, spread) if miner_ids else []
    random.shuffle(candidates)
    return NextTaskPlan(None, miner_ids, candidates)


def claim_next_task(
    db: Db, settings: PlatformSettings, worker: Worker, plan: NextTaskPlan
) -> WorkerTaskView | None:
    """The writing half of :func:`next_task`: claim one of the plan's tasks, or search again.

    Each claim re-checks its task under the row lock, so a stale plan costs a retry, never a
    wrong claim; when none of its tasks is still free the search runs again in this
    transaction, so "no task" is never the answer while one is free.
    """
    if plan.held is not None:
        return plan.held
    if not plan.miner_ids:
        return None
    now = naive_utcnow()
    needed = time_needed(db, settings)
    hold_for = _hold_seconds(settings, needed)
    live = set(plan.miner_ids)
    fresh_read = _is_postgres(db)
    for task_id in plan.candidates[:CANDIDATES]:
        task = _task(db, TASK_SKIP_LOCKED, task_id) if fresh_read else _task(db, TASK, task_id)
        if task is not None and task.miner_id in live:
            view = _claim(db, worker, task, now, needed, hold_for)
            if view is not None:
                return view
    soonest = now + timedelta(seconds=needed)
    for task_id in _candidates(db, worker, plan.miner_ids, now, soonest):
        view = _claim(db, worker, _lock_task(db, task_id), now, needed, hold_for)
        if view is not None:
            return view
    return None


def next_task(db: Db, settings: PlatformSettings, worker: Worker) -> WorkerTaskView | None:
    """The task held for this worker: its live hold if it has one, else a newly claimed one.

    Run it in one write transaction. On SQLite that transaction holds the database's write
    lock from its first statement, so the first open task found is still free when claimed:
    no spread is needed, the search stops at one task, and what it read needs no second look.
    """
    if _is_postgres(db):
        return claim_next_task(db, settings, worker, plan_next_task(db, settings, worker, SPREAD))
    now = naive_utcnow()
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


def validate_result_data(task: TaskRow, result_data: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        raise NotFound("no such task among your subscriptions")
    return task


def _refuse_closed(task: TaskRow, now: datetime) -> None:
    if task.expire_at <= now:
        raise Gone(f"task {task.id} expired: its deadline passed at {readable_time(task.expire_at)}")


SKIPPED_DETAIL = "you skipped this task; it takes no answer from you"


def _no_free_place(db: Db, task: TaskRow, worker: Worker, now: datetime) -> str | None:
    """Why the worker cannot take a place on ``task`` now (it holds none), or None."""
    if task.num_results >= task.max_results:
        return f"task {task.id} already has its {task.max_results} results"
    if task.num_results + _others_holding(db, task.id, worker.id, now) >= task.max_results:
        return f"other workers hold the remaining places of task {task.id}; try again later"
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
    task = _accessible_locked_task(db, worker, task_id)
    now = naive_utcnow()
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
        refusal = _no_free_place(db, task, worker, now)
        if refusal is not None:
            raise Conflict(refusal + " (or they are held)")
    params = {"t": task.id, "w": worker.id, "data": data, "lead": lead, "why": rationale, "now": now}
    _rows(db, INSERT_RESULT, params)
    _rows(db, COUNT_RESULT, {"t": task.id})
    _set_assignment(db, task.id, worker.id, DONE, now, now)
    return Submitted(task.id, False, now)


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
    now = naive_utcnow()
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
    now = naive_utcnow()
    _set_assignment(db, task.id, worker.id, SKIPPED, now, now)


@dataclass(frozen=True)
class WorkerProgress:
    results_today: int
    results_total: int
    skipped_total: int = 0
    lead_time_total: float = 0.0
    lead_time_median: float | None = None


def worker_progress(db: Db, worker: Worker) -> WorkerProgress:
    """Results this worker has submitted since midnight UTC and in all, tasks skipped, and
    the time spent on results (in all, and the median per result where it was measured)."""
    midnight = naive_utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    today = db.scalar(
        select(func.count())
        .select_from(Result)
        .where(Result.worker_id == worker.id, Result.created_at >= midnight)
    )
    total = db.scalar(select(func.count()).select_from(Result).where(Result.worker_id == worker.id))
    skipped = db.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.worker_id == worker.id, Assignment.status == SKIPPED)
    )
    times = sorted(
        t
        for t in db.scalars(
            select(Result.lead_time).where(Result.worker_id == worker.id, Result.lead_time.is_not(None))
        )
        if t is not None
    )
    return WorkerProgress(
        today or 0,
        total or 0,
        skipped or 0,
        float(sum(times)),
        statistics.median(times) if times else None,
    )
