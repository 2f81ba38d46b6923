"""Reading the validator's task database for an export: one consistent snapshot, in batches.

The whole export reads inside one read-only transaction, so a database the validator is
writing to at that moment exports as it was when the export began:

- **SQLite** (WAL, as the validator keeps it): a deferred ``BEGIN``; the first read fixes the
  snapshot, and later commits by the validator are not seen. The validator's writes are
  never blocked (a WAL reader takes no write lock), and ``PRAGMA query_only`` makes sure
  this connection writes nothing. The WAL cannot be checkpointed past the snapshot while
  the export runs; it catches up afterwards.
- **PostgreSQL**: ``REPEATABLE READ, READ ONLY``.

Tasks come in keyset-paginated batches, ordered by ``(created_at, task_id)``, so each batch
is one indexed range read however far into the table it is, and memory holds one batch.
The database is not migrated (a reader should not change what it reads); a database from
before revision 0003 has no original content, and every completion is then flagged unknown.
"""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    func,
    inspect,
    literal,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import make_url
from sqlalchemy.types import Text

from dojo.export._records import MinerAnswer
from dojo.validator.models import (
    Assignment,
    MinerResult,
    OrganicTask,
    Task,
    TaskCompletion,
    TaskScore,
    TaskStatus,
)
from dojo.validator.store import ORGANIC_SOURCE
from template.storage import database_url, read_only_engine

# Rounds whose reliabilities are kept while reading: tasks come in time order and rounds take
# tasks in time order, so a batch needs the few rounds around it.
_ROUND_CACHE = 512


class ExportError(Exception):
    """The export cannot be made: no database there, not a validator database, or a bad option."""


@dataclass
class CompletionRow:
    completion_id: str
    model: str
    content: dict[str, Any]  # the original when known, else as sent
    original_known: bool
    ground_truth_rank: int | None
    sent_content: dict[str, Any] | None = None  # as miners got it; with synthetic metadata only


@dataclass
class ExportTaskRow:
    """One scored task with everything the export writes about it, in completion order."""

    task_id: str
    created_at: datetime
    task_type: str
    prompt: str
    criteria: list[Any]
    round_id: int | None
    task_agreement: float | None
    source: str
    expire_at: datetime
    consensus_trust: float | None
    completions: list[CompletionRow] = field(default_factory=list)
    answers: list[MinerAnswer] = field(default_factory=list)
    criteria_type: str = "ranking"  # of the first criterion: the one scoring uses


def open_engine(db: str | Path) -> Engine:
    """An engine for reading the database at ``db`` (URL or SQLite path) that cannot change it
    (:func:`template.storage.read_only_engine`)."""
    url = database_url(db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or path.startswith("file:"):
            raise ExportError(f"{db}: export reads a SQLite file or a PostgreSQL URL")
        if not Path(path).is_file():
            raise ExportError(
                f"no database at {path}; pass the validator's validator.sqlite or its DATABASE_URL"
            )
    return read_only_engine(url)


class Snapshot:
    """The scored tasks of one database as of one moment; use as a context manager."""

    def __init__(
        self, db: str | Path, *, since: datetime | None = None, synthetic_metadata: bool = False
    ) -> None:
        self.engine = open_engine(db)
        self.since = since
        self.synthetic_metadata = synthetic_metadata
        self._conn: Connection | None = None
        self._has_original = False
        self._has_rationale = False
        self._has_organic = False
        self._reliability: OrderedDict[int, dict[str, float]] = OrderedDict()
        self._criteria_cache: dict[str, list[Any]] = {}

    def __enter__(self) -> Snapshot:
        conn = self.engine.connect()
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        conn.begin()
        self._conn = conn
        try:
            tables = inspect(conn)
            if not tables.has_table("tasks") or not tables.has_table("task_completions"):
                raise ExportError(
                    f"{self.engine.url.render_as_string(hide_password=True)} is not a validator database "
                    "(no tasks table); pass the validator's validator.sqlite or its DATABASE_URL"
                )
            self._has_original = "original_content" in {
                c["name"] for c in tables.get_columns("task_completions")
            }
            self._has_rationale = "rationale" in {c["name"] for c in tables.get_columns("miner_results")}
            self._has_organic = tables.has_table("organic_tasks")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.rollback()
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("use the snapshot inside `with`")
        return self._conn

    def _scored(self) -> Any:
        where = [Task.status == TaskStatus.SCORED]
        if self._has_organic:
            # An organic task is its caller's: exported only when the caller made it public.
            public = select(OrganicTask.task_id).where(OrganicTask.visibility == "public")
            where.append(or_(Task.source != ORGANIC_SOURCE, Task.task_id.in_(public)))
        if self.since is not None:
            where.append(Task.created_at >= self.since)
        return and_(*where)

    def count(self) -> int:
        """Scored tasks in the snapshot (the first read: it fixes the snapshot on SQLite)."""
        return int(self.conn.scalar(select(func.count()).select_from(Task).where(self._scored())) or 0)

    def batches(self, size: int) -> Iterator[list[ExportTaskRow]]:
        """Every scored task, ``size`` at a time, by ``(created_at, task_id)``."""
        after: tuple[datetime, str] | None = None
        while True:
            query = select(
                Task.task_id,
                Task.created_at,
                Task.task_type,
                Task.prompt,
                _text(Task.criteria),
                Task.round_id,
                Task.task_agreement,
                Task.source,
                Task.expire_at,
                Task.consensus_trust,
            ).where(self._scored())
            if after is not None:
                # Written out rather than as a row value, so that both sides bind through the
                # columns' own types (UTC timestamps); with the first term the read is a range
                # of the (status, created_at, task_id) index.
                query = query.where(
                    Task.created_at >= after[0],
                    or_(Task.created_at > after[0], Task.task_id > after[1]),
                )
            rows = self.conn.execute(query.order_by(Task.created_at, Task.task_id).limit(size)).all()
            if not rows:
                return
            tasks = [ExportTaskRow(*row) for row in rows]
            for t in tasks:
                t.criteria = self._criteria(t.criteria)
                t.criteria_type = str(t.criteria[0]["type"]) if t.criteria else "ranking"
            self._fill(tasks)
            yield tasks
            after = (rows[-1].created_at, rows[-1].task_id)
            if len(rows) < size:
                return

    def _fill(self, tasks: list[ExportTaskRow]) -> None:
        by_id = {t.task_id: t for t in tasks}
        ids = list(by_id)
        tc = TaskCompletion
        if self._has_original:
            known: Any = tc.original_content.is_not(None)
            # Only the content the export writes is read and decoded: the original when known.
            exported: Any = case(
                (tc.original_content.is_(None), _text(tc.content)), else_=_text(tc.original_content)
            )
        else:
            known, exported = literal(False), _text(tc.content)
        sent = _text(tc.content) if self.synthetic_metadata else null()
        for task_id, cid, model, gt, is_known, content, sent_content in self.conn.execute(
            select(
                tc.task_id,
                tc.completion_id,
                tc.model,
                tc.ground_truth_rank,
                known.label("known"),
                exported.label("exported"),
                sent.label("sent"),
            )
            .where(tc.task_id.in_(ids))
            .order_by(tc.task_id, tc.position)
        ):
            by_id[task_id].completions.append(
                CompletionRow(
                    cid,
                    model,
                    _json(content),
                    bool(is_known),
                    gt,
                    _json(sent_content) if self.synthetic_metadata else None,
                )
            )

        rounds = sorted({t.round_id for t in tasks if t.round_id is not None})
        reliability = self._reliabilities(set(rounds))
        answers: dict[tuple[str, str], MinerAnswer] = {}
        ts = TaskScore
        # By (round, task): the primary key's order, so each row is an index lookup; a join
        # with tasks or task_id alone makes SQLite scan the whole index.
        for task_id, round_id, hotkey, score, answer, n_workers in (
            self.conn.execute(
                select(ts.task_id, ts.round_id, ts.miner_hotkey, ts.score, _text(ts.answer), ts.n_workers)
                .where(ts.round_id.in_(rounds), ts.task_id.in_(ids), ts.answered.is_(True))
                .order_by(ts.task_id, ts.miner_hotkey)
            )
            if rounds
            else ()
        ):
            task = by_id[task_id]
            answer = _json(answer)
            if round_id != task.round_id or not answer:  # not the round that scored it; no answer
                continue
            a = MinerAnswer(
                hotkey,
                [float(v) for v in answer],
                int(n_workers),
                reliability.get(round_id, {}).get(hotkey, 0.0),
                float(score),
            )
            task.answers.append(a)
            answers[(task_id, hotkey)] = a

        workers: dict[tuple[str, str], list[tuple[str, dict[str, float], str | None]]] = defaultdict(list)
        # A database from before revision 0004 keeps no rationales.
        rationale: Any = MinerResult.rationale if self._has_rationale else null()
        for task_id, hotkey, worker_id, kind, values, why in self.conn.execute(
            select(
                Assignment.task_id,
                Assignment.miner_hotkey,
                MinerResult.worker_id,
                MinerResult.criteria_type,
                _text(MinerResult.values),
                rationale,
            )
            .join(Assignment, Assignment.assignment_id == MinerResult.assignment_id)
            .where(Assignment.task_id.in_(ids))
            .order_by(MinerResult.result_id)
        ):
            # The workers whose results made the miner's answer: those of the task's criterion.
            if (task_id, hotkey) in answers and kind == by_id[task_id].criteria_type:
                workers[(task_id, hotkey)].append((worker_id, _json(values), why))
        for key, results in workers.items():
            order = [c.completion_id for c in by_id[key[0]].completions]
            answers[key].workers = [
                (worker_id, [float(values[cid]) for cid in order], why)
                for worker_id, values, why in results
                if all(cid in values for cid in order)
            ]

    def _criteria(self, raw: Any) -> list[Any]:
        """Decoded once per distinct value: every task of a validator has the same few."""
        if not isinstance(raw, str):
            return list(raw)
        found = self._criteria_cache.get(raw)
        if found is None:
            if len(self._criteria_cache) > 64:
                self._criteria_cache.clear()
            found = self._criteria_cache[raw] = _json(raw)
        return found

    def _reliabilities(self, round_ids: set[int]) -> dict[int, dict[str, float]]:
        """Each miner's reliability in each round: the mean of ``max(0, agreement)`` over the
        tasks it answered there, which is how ``score_round`` ends a round's reliability."""
        missing = sorted(r for r in round_ids if r not in self._reliability)
        ts = TaskScore
        for chunk in _chunks(missing, 500):
            found: dict[int, dict[str, float]] = {r: {} for r in chunk}
            for round_id, hotkey, q in self.conn.execute(
                select(
                    ts.round_id, ts.miner_hotkey, func.avg(case((ts.agreement > 0, ts.agreement), else_=0.0))
                )
                .where(ts.round_id.in_(chunk), ts.answered.is_(True))
                .group_by(ts.round_id, ts.miner_hotkey)
            ):
                found[round_id][hotkey] = float(q or 0.0)
            self._reliability.update(found)
        for r in round_ids:
            self._reliability.move_to_end(r)
        while len(self._reliability) > max(_ROUND_CACHE, len(round_ids)):
            self._reliability.popitem(last=False)
        return {r: self._reliability[r] for r in round_ids}


_raw_decode = json.JSONDecoder().raw_decode


def _json(value: Any) -> Any:
    """A JSON column read as text (SQLite), or already decoded by the driver (PostgreSQL).

    ``raw_decode`` skips ``json.loads``'s whitespace checks, which cost as much as decoding
    the small values most of these are; the text is what SQLAlchemy's JSON type wrote.
    """
    if isinstance(value, str):
        try:
            return _raw_decode(value)[0]
        except ValueError:
            return json.loads(value)
    if isinstance(value, bytes):
        return json.loads(value)
    return value


def _text(column: Any) -> Any:
    """A JSON column selected as it is stored, decoded by :func:`_json` instead of SQLAlchemy."""
    return type_coerce(column, Text)


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
