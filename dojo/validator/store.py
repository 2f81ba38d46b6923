"""The validator's task database (:mod:`dojo.validator.models`): every write of a task's life.

Each method is one transaction and blocks; the neuron calls them through
``asyncio.to_thread``. The order of writes is what makes a restart lose nothing:

1. :meth:`TaskStore.add_task` writes the task, its completions and ground truth, and every
   miner's assignment (request id, completion ids and order) **before** anything is sent.
2. :meth:`record_sends` stores each miner's answer to ``FeedbackRequest``; an assignment
   still ``pending`` after a crash is sent again with the same request id, which the miner
   answers with the same task (:meth:`pending_sends`).
3. After the deadline, :meth:`due_collections` lists what to ask for; :meth:`record_collection`
   stores what came back, or :meth:`retry_collection` schedules another try within the grace.
4. :meth:`open_round` puts collected tasks in a round; :meth:`commit_round` writes the
   round's scores, the moving scores and the round's end in one transaction, and refuses
   to do it twice, so a round cut short by a crash is scored again, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, delete, func, insert, inspect, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from commons.scoring import MovingScores
from commons.storage import database_url, make_engine, migrate, read_only_engine, utcnow
from dojo.validator.models import (
    Assignment,
    AssignmentCompletion,
    CollectStatus,
    MinerReliability,
    MinerResult,
    MinerScore,
    Round,
    SendStatus,
    Task,
    TaskCompletion,
    TaskScore,
    TaskStatus,
    WeightSet,
)
from dojo.validator.organic.store import claim_organic, record_organic_results

MIGRATIONS = Path(__file__).parent / "migrations"
ORGANIC_SOURCE = "organic"  # tasks.source of an organic task
DB_FILE = "validator.sqlite"


# --- what goes in and out -----------------------------------------------------------------


@dataclass(frozen=True)
class NewCompletion:
    completion_id: str
    model: str
    content: dict[str, Any]  # as miners get it (obfuscated)
    ground_truth_rank: int | None
    # The content before obfuscation, kept for the dataset export only; None = unknown.
    original_content: dict[str, Any] | None = None
    # An organic task's completion: the caller's own id for it (results name it).
    label: str | None = None


@dataclass(frozen=True)
class NewAssignment:
    miner_hotkey: str
    miner_uid: int
    request_id: str
    # (miner's completion id, task completion id) in the order this miner sees them.
    completions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NewTask:
    task_id: str
    created_at: datetime
    task_type: str
    prompt: str
    criteria: list[dict[str, Any]]
    expire_at: datetime
    source: str
    completions: tuple[NewCompletion, ...]


@dataclass(frozen=True)
class Outgoing:
    """One assignment to send: everything needed to build its ``FeedbackRequest``."""

    assignment_id: int
    task_id: str
    miner_hotkey: str
    miner_uid: int
    request_id: str
    prompt: str
    task_type: str
    criteria: list[dict[str, Any]]
    expire_at: datetime
    # (miner's completion id, model, content) in the miner's order.
    completions: tuple[tuple[str, str, dict[str, Any]], ...]


@dataclass(frozen=True)
class SendOutcome:
    assignment_id: int
    status: str
    detail: str | None = None
    http_status: int | None = None
    dojo_task_id: str | None = None


@dataclass(frozen=True)
class DueCollection:
    assignment_id: int
    task_id: str
    miner_hotkey: str
    miner_uid: int
    request_id: str
    expire_at: datetime
    sent_at: datetime | None
    attempts: int
    criteria: list[dict[str, Any]]
    # miner's completion id -> task completion id
    completion_ids: dict[str, str]


@dataclass(frozen=True)
class AcceptedResult:
    worker_id: str
    criteria_type: str
    values: dict[str, float]  # task completion id -> value
    submitted_at: datetime
    rationale: str | None = None  # the worker's reason, if it gave one


@dataclass(frozen=True)
class CollectionOutcome:
    """What one try to collect an assignment came to: final (``status`` with ``results``),
    or another try at ``retry_at``."""

    assignment_id: int
    status: str
    detail: str | None
    results: tuple[AcceptedResult, ...] = ()
    retry_at: datetime | None = None
    # A look before the deadline that found the results not all in yet: not a failed try.
    early: bool = False


@dataclass
class RoundTask:
    task_id: str
    completion_ids: list[str]  # the task's own order
    ground_truth: list[int | None]
    criteria: list[dict[str, Any]]
    organic: bool = False  # an outside caller's task: no ground truth, scored by consensus alone


@dataclass
class RoundAssignment:
    assignment_id: int
    task_id: str
    miner_hotkey: str
    miner_uid: int
    results: list[AcceptedResult] = field(default_factory=list)


@dataclass
class RoundInputs:
    round_id: int
    tasks: list[RoundTask]
    assignments: list[RoundAssignment]
    # Each miner's reliability carried from earlier rounds (miner_reliability), by hotkey.
    reliability: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskMinerScore:
    task_id: str
    assignment_id: int
    miner_hotkey: str
    miner_uid: int
    answered: bool
    score: float
    agreement: float
    kappa: float
    rho_consensus: float
    rho_ground_truth: float
    distance: float
    answer: list[float] | None
    n_workers: int


@dataclass(frozen=True)
class RoundScores:
    round_id: int
    task_scores: list[TaskMinerScore]
    # task id -> (task agreement, consensus trust)
    task_agreement: dict[str, tuple[float, float]]
    # hotkey -> (uid, the miner's score for the round)
    miner_round_scores: dict[str, tuple[int, float]]
    # hotkey -> (uid, reliability carried after this round), for the miners that have one
    reliability: dict[str, tuple[int, float]] = field(default_factory=dict)
    # organic task id -> what its caller gets (in the task's completion ids), or None when no
    # miner answered it
    organic_results: dict[str, dict[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreToSend:
    assignment_id: int
    miner_hotkey: str
    miner_uid: int
    request_id: str
    score: float


# --- the store ------------------------------------------------------------------------------


class TaskStore:
    """The validator's database at ``url`` (SQLAlchemy URL or SQLite file path), migrated on open."""

    def __init__(self, url: str | Path):
        self.url = database_url(url)
        self.engine: Engine = make_engine(self.url)
        migrate(self.engine, MIGRATIONS, label="validator")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Moving scores are read, changed and written back in one transaction; the lock
        # keeps two threads of this process from interleaving theirs on PostgreSQL.
        self._scores_lock = threading.Lock()

    @classmethod
    def read_only(cls, url: str | Path) -> TaskStore:
        """The database at ``url`` for reading only (``status`` and the other reads): it is
        neither migrated nor written, and no write lock is taken from the running validator."""
        store = cls.__new__(cls)
        store.url = database_url(url)
        store.engine = read_only_engine(store.url)
        store._sessions = sessionmaker(store.engine, expire_on_commit=False)
        store._scores_lock = threading.Lock()
        return store

    def ready(self) -> bool:
        """Whether the database has its tables: a reader can open the file the validator has
        just made while its first migration (one transaction) is not yet committed."""
        return "alembic_version" in inspect(self.engine).get_table_names()

    @classmethod
    def for_config(cls, database_url_setting: str | None, data_dir: Path) -> TaskStore:
        return cls(database_url_setting or (data_dir / DB_FILE))

    def close(self) -> None:
        self.engine.dispose()

    # -- fan-out -------------------------------------------------------------------------

    def add_task(self, task: NewTask, assignments: Sequence[NewAssignment]) -> list[Outgoing]:
        """Write the task and every assignment in one transaction; return what to send."""
        with self._sessions.begin() as db:
            db.add(
                Task(
                    task_id=task.task_id,
                    created_at=task.created_at,
                    task_type=task.task_type,
                    prompt=task.prompt,
                    criteria=task.criteria,
                    expire_at=task.expire_at,
                    status=TaskStatus.SENDING,
                    source=task.source,
                )
            )
            db.flush()  # no ORM relationships: the task row goes first for the foreign keys
            if task.source == ORGANIC_SOURCE:
                # In the same transaction: the organic task is sent exactly when its task exists.
                claim_organic(db, task.task_id, {c.completion_id: c.label or c.completion_id for c in task.completions},
                              task.created_at)
            for position, c in enumerate(task.completions):
                db.add(
                    TaskCompletion(
                        task_id=task.task_id,
                        completion_id=c.completion_id,
                        position=position,
                        model=c.model,
                        content=c.content,
                        ground_truth_rank=c.ground_truth_rank,
                        original_content=c.original_content,
                    )
                )
            rows = []
            for a in assignments:
                row = Assignment(
                    task_id=task.task_id,
                    miner_hotkey=a.miner_hotkey,
                    miner_uid=a.miner_uid,
                    request_id=a.request_id,
                    send_status=SendStatus.PENDING,
                )
                db.add(row)
                rows.append((row, a))
            db.flush()
            for row, a in rows:
                for position, (miner_cid, cid) in enumerate(a.completions):
                    db.add(
                        AssignmentCompletion(
                            assignment_id=row.assignment_id,
                            position=position,
                            miner_completion_id=miner_cid,
                            completion_id=cid,
                        )
                    )
            by_cid = {c.completion_id: c for c in task.completions}
            return [
                Outgoing(
                    assignment_id=row.assignment_id,
                    task_id=task.task_id,
                    miner_hotkey=a.miner_hotkey,
                    miner_uid=a.miner_uid,
                    request_id=a.request_id,
                    prompt=task.prompt,
                    task_type=task.task_type,
                    criteria=task.criteria,
                    expire_at=task.expire_at,
                    completions=tuple(
                        (miner_cid, by_cid[cid].model, by_cid[cid].content) for miner_cid, cid in a.completions
                    ),
                )
                for row, a in rows
            ]

    def recent_sources(self, limit: int) -> list[str]:
        """The source of the latest tasks written, newest first."""
        with self._sessions.begin() as db:
            return list(db.scalars(select(Task.source).order_by(Task.created_at.desc()).limit(limit)))

    def pending_sends(self, now: datetime, min_lead: timedelta) -> list[Outgoing]:
        """Assignments written but never answered (the validator stopped mid-fan-out).

        Those whose deadline is less than ``min_lead`` away are marked ``unsent``, and a task
        none of whose assignments went out becomes ``unsent`` too; the rest are returned to
        be sent again, with the same request id.
        """
        with self._sessions.begin() as db:
            rows = db.execute(
                select(Assignment, Task)
                .join(Task, Task.task_id == Assignment.task_id)
                .where(Assignment.send_status == SendStatus.PENDING)
                .order_by(Assignment.assignment_id)
            ).all()
            out: list[Outgoing] = []
            late: set[str] = set()
            for assignment, task in rows:
                if task.expire_at - now < min_lead:
                    assignment.send_status = SendStatus.UNSENT
                    assignment.send_detail = "the deadline passed before the task could be sent"
                    late.add(task.task_id)
                    continue
                out.append(self._outgoing(db, assignment, task))
            db.flush()
            for task_id in late:
                self._settle_sending(db, task_id)
            return out

    def _outgoing(self, db: Session, assignment: Assignment, task: Task) -> Outgoing:
        contents = {
            c.completion_id: c for c in db.scalars(select(TaskCompletion).where(TaskCompletion.task_id == task.task_id))
        }
        seen = db.scalars(
            select(AssignmentCompletion)
            .where(AssignmentCompletion.assignment_id == assignment.assignment_id)
            .order_by(AssignmentCompletion.position)
        )
        return Outgoing(
            assignment_id=assignment.assignment_id,
            task_id=task.task_id,
            miner_hotkey=assignment.miner_hotkey,
            miner_uid=assignment.miner_uid,
            request_id=assignment.request_id,
            prompt=task.prompt,
            task_type=task.task_type,
            criteria=task.criteria,
            expire_at=task.expire_at,
            completions=tuple(
                (s.miner_completion_id, contents[s.completion_id].model, contents[s.completion_id].content)
                for s in seen
            ),
        )

    def record_sends(self, outcomes: Iterable[SendOutcome], sent_at: datetime) -> None:
        """Store each miner's answer to ``FeedbackRequest``; a task whose sends are all
        answered moves on to ``waiting`` (or ``unsent`` when none went out)."""
        with self._sessions.begin() as db:
            tasks: set[str] = set()
            for o in outcomes:
                assignment = db.get(Assignment, o.assignment_id)
                if assignment is None or assignment.send_status != SendStatus.PENDING:
                    continue
                assignment.send_status = o.status
                assignment.send_detail = o.detail
                assignment.http_status = o.http_status
                assignment.dojo_task_id = o.dojo_task_id
                assignment.sent_at = sent_at
                if o.status == SendStatus.ACCEPTED:
                    assignment.collect_status = CollectStatus.PENDING
                tasks.add(assignment.task_id)
            db.flush()
            for task_id in tasks:
                self._settle_sending(db, task_id)

    def _settle_sending(self, db: Session, task_id: str) -> None:
        statuses = db.scalars(select(Assignment.send_status).where(Assignment.task_id == task_id)).all()
        if SendStatus.PENDING in statuses:
            return
        task = db.get(Task, task_id)
        assert task is not None
        if task.status == TaskStatus.SENDING:
            went_out = any(s != SendStatus.UNSENT for s in statuses)
            task.status = TaskStatus.WAITING if went_out else TaskStatus.UNSENT

    # -- collection ------------------------------------------------------------------------

    def due_collections(self, now: datetime, limit: int = 1024, early: bool = False) -> list[DueCollection]:
        """Accepted assignments whose deadline has passed and whose next try is due; with
        ``early``, also those before their deadline whose next look is due."""
        with self._sessions.begin() as db:
            rows = db.execute(
                select(Assignment, Task)
                .join(Task, Task.task_id == Assignment.task_id)
                .where(
                    Assignment.collect_status == CollectStatus.PENDING,
                    or_(Task.expire_at <= now, Task.status == TaskStatus.WAITING) if early else Task.expire_at <= now,
                    (Assignment.next_collect_at.is_(None)) | (Assignment.next_collect_at <= now),
                )
                .order_by(Task.expire_at, Assignment.assignment_id)
                .limit(limit)
            ).all()
            ids = [a.assignment_id for a, _ in rows]
            mapping: dict[int, dict[str, str]] = {i: {} for i in ids}
            if ids:
                for ac in db.scalars(select(AssignmentCompletion).where(AssignmentCompletion.assignment_id.in_(ids))):
                    mapping[ac.assignment_id][ac.miner_completion_id] = ac.completion_id
            return [
                DueCollection(
                    assignment_id=a.assignment_id,
                    task_id=t.task_id,
                    miner_hotkey=a.miner_hotkey,
                    miner_uid=a.miner_uid,
                    request_id=a.request_id,
                    expire_at=t.expire_at,
                    sent_at=a.sent_at,
                    attempts=a.collect_attempts,
                    criteria=t.criteria,
                    completion_ids=mapping[a.assignment_id],
                )
                for a, t in rows
            ]

    def record_collections(self, outcomes: Sequence[CollectionOutcome], now: datetime) -> None:
        """The outcomes of one collection pass, in one transaction: each assignment's final
        status with its accepted results, or its next try (``retry_at``). An assignment
        already final is left as it is: a second answer changes nothing."""
        if not outcomes:
            return
        with self._sessions.begin() as db:
            ids = [o.assignment_id for o in outcomes]
            rows = {
                a.assignment_id: a
                for a in db.scalars(
                    select(Assignment).where(
                        Assignment.assignment_id.in_(ids), Assignment.collect_status == CollectStatus.PENDING
                    )
                )
            }
            results: list[dict[str, Any]] = []
            settle: set[str] = set()
            for o in outcomes:
                assignment = rows.get(o.assignment_id)
                if assignment is None:
                    continue
                if not o.early:
                    assignment.collect_attempts += 1
                    assignment.collect_detail = o.detail
                if o.retry_at is not None:
                    assignment.next_collect_at = o.retry_at
                    continue
                assignment.collect_status = o.status
                assignment.collected_at = now
                assignment.next_collect_at = None
                settle.add(assignment.task_id)
                results.extend(
                    {
                        "assignment_id": o.assignment_id,
                        "worker_id": r.worker_id,
                        "criteria_type": r.criteria_type,
                        "values": r.values,
                        "submitted_at": r.submitted_at,
                        "rationale": r.rationale,
                    }
                    for r in o.results
                )
            db.flush()
            if results:
                db.execute(insert(MinerResult), results)
            for task_id in settle:
                self._settle_collection(db, task_id, now)

    def record_collection(
        self, assignment_id: int, status: str, detail: str | None, results: Sequence[AcceptedResult], now: datetime
    ) -> None:
        """The final outcome of collecting one assignment (see :meth:`record_collections`)."""
        self.record_collections([CollectionOutcome(assignment_id, status, detail, tuple(results))], now)

    def retry_collection(self, assignment_id: int, detail: str, next_at: datetime) -> None:
        self.record_collections([CollectionOutcome(assignment_id, CollectStatus.PENDING, detail, (), next_at)], utcnow())

    def settle_due_tasks(self, now: datetime) -> int:
        """Tasks past their deadline with nothing left to collect become ``collected``
        (a task no miner accepted, for one); returns how many."""
        with self._sessions.begin() as db:
            pending = select(Assignment.assignment_id).where(
                Assignment.task_id == Task.task_id, Assignment.collect_status == CollectStatus.PENDING
            )
            result = db.execute(
                update(Task)
                .where(Task.status == TaskStatus.WAITING, Task.expire_at <= now, ~pending.exists())
                .values(status=TaskStatus.COLLECTED)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _settle_collection(self, db: Session, task_id: str, now: datetime) -> None:
        """The task becomes ``collected`` once no assignment is left to collect: at its
        deadline, or before it when every miner's results were collected early."""
        task = db.get(Task, task_id)
        if task is None or task.status != TaskStatus.WAITING:
            return
        left = db.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.task_id == task_id, Assignment.collect_status == CollectStatus.PENDING)
        )
        if not left:
            task.status = TaskStatus.COLLECTED

    # -- rounds ----------------------------------------------------------------------------

    def unfinished_round(self) -> int | None:
        """A round opened but never committed (the validator stopped while scoring it)."""
        with self._sessions.begin() as db:
            return db.scalar(select(Round.round_id).where(Round.status == "scoring").order_by(Round.round_id))

    def open_round(self, max_tasks: int, now: datetime) -> int | None:
        """Put up to ``max_tasks`` collected tasks, oldest first, into a new round."""
        with self._sessions.begin() as db:
            task_ids = db.scalars(
                select(Task.task_id)
                .where(Task.status == TaskStatus.COLLECTED)
                .order_by(Task.expire_at, Task.task_id)
                .limit(max_tasks)
            ).all()
            if not task_ids:
                return None
            round_ = Round(created_at=now, status="scoring", n_tasks=len(task_ids))
            db.add(round_)
            db.flush()
            db.execute(
                update(Task)
                .where(Task.task_id.in_(task_ids))
                .values(status=TaskStatus.SCORING, round_id=round_.round_id)
                .execution_options(synchronize_session=False)
            )
            return round_.round_id

    def round_inputs(self, round_id: int) -> RoundInputs:
        """What scoring needs of a round's tasks: ids, ground truth, assignments, results
        (only those columns: completion contents are never read here)."""
        in_round = Task.round_id == round_id
        with self._sessions.begin() as db:
            tasks = {
                task_id: RoundTask(task_id, [], [], list(criteria), source == ORGANIC_SOURCE)
                for task_id, criteria, source in db.execute(
                    select(Task.task_id, Task.criteria, Task.source).where(in_round).order_by(Task.task_id)
                )
            }
            for task_id, completion_id, rank in db.execute(
                select(TaskCompletion.task_id, TaskCompletion.completion_id, TaskCompletion.ground_truth_rank)
                .join(Task, Task.task_id == TaskCompletion.task_id)
                .where(in_round)
                .order_by(TaskCompletion.task_id, TaskCompletion.position)
            ):
                tasks[task_id].completion_ids.append(completion_id)
                tasks[task_id].ground_truth.append(rank)
            assignments = {
                row[0]: RoundAssignment(*row)
                for row in db.execute(
                    select(Assignment.assignment_id, Assignment.task_id, Assignment.miner_hotkey, Assignment.miner_uid)
                    .join(Task, Task.task_id == Assignment.task_id)
                    .where(in_round, Assignment.send_status != SendStatus.UNSENT)
                    .order_by(Assignment.assignment_id)
                )
            }
            for assignment_id, worker_id, kind, values, submitted_at, rationale in db.execute(
                select(
                    MinerResult.assignment_id,
                    MinerResult.worker_id,
                    MinerResult.criteria_type,
                    MinerResult.values,
                    MinerResult.submitted_at,
                    # For an organic task's caller (scoring reads none): short, one line each.
                    case((Task.source == ORGANIC_SOURCE, MinerResult.rationale), else_=None),
                )
                .join(Assignment, Assignment.assignment_id == MinerResult.assignment_id)
                .join(Task, Task.task_id == Assignment.task_id)
                .where(in_round)
                .order_by(MinerResult.result_id)
            ):
                if assignment_id in assignments:
                    assignments[assignment_id].results.append(
                        AcceptedResult(worker_id, kind, dict(values), submitted_at, rationale)
                    )
            reliability = {h: float(r) for h, r in db.execute(select(MinerReliability.miner_hotkey,
                                                                       MinerReliability.reliability))}
            return RoundInputs(round_id=round_id, tasks=list(tasks.values()), assignments=list(assignments.values()),
                               reliability=reliability)

    def commit_round(
        self, scores: RoundScores, alpha: float, uid_to_hotkey: Mapping[int, str], now: datetime
    ) -> bool:
        """Write a round's scores and fold them into the moving scores, once.

        One transaction: the per-task scores, each assignment's score, the tasks marked
        scored, the moving scores (forgetting hotkeys no longer on the metagraph first)
        and the round marked scored. Returns False, changing nothing, when the round was
        already committed.
        """
        with self._scores_lock, self._sessions.begin() as db:
            round_ = db.get(Round, scores.round_id, with_for_update=True)
            if round_ is None or round_.status != "scoring":
                return False
            # Bulk statements: one per table, not one per row (a round is up to 1 000 tasks).
            if scores.task_scores:
                db.execute(
                    insert(TaskScore),
                    [
                        {
                            "round_id": scores.round_id,
                            "task_id": s.task_id,
                            "miner_hotkey": s.miner_hotkey,
                            "miner_uid": s.miner_uid,
                            "answered": s.answered,
                            "score": s.score,
                            "agreement": s.agreement,
                            "kappa": s.kappa,
                            "rho_consensus": s.rho_consensus,
                            "rho_ground_truth": s.rho_ground_truth,
                            "distance": s.distance,
                            "answer": s.answer,
                            "n_workers": s.n_workers,
                        }
                        for s in scores.task_scores
                    ],
                )
                db.execute(
                    update(Assignment), [{"assignment_id": s.assignment_id, "score": s.score} for s in scores.task_scores]
                )
            if scores.task_agreement:
                db.execute(
                    update(Task),
                    [
                        {"task_id": task_id, "status": TaskStatus.SCORED, "task_agreement": a, "consensus_trust": trust}
                        for task_id, (a, trust) in scores.task_agreement.items()
                    ],
                )
            moving = self._moving(db, alpha)
            moving.sync(uid_to_hotkey)
            hotkeys = list(scores.miner_round_scores)
            moving.update(
                hotkeys,
                [scores.miner_round_scores[h][0] for h in hotkeys],
                [scores.miner_round_scores[h][1] for h in hotkeys],
            )
            latest = {h: v[1] for h, v in scores.miner_round_scores.items()}
            self._write_moving(db, moving, now, latest)
            self._write_reliability(db, scores.reliability, uid_to_hotkey, now)
            if scores.organic_results:
                record_organic_results(db, scores.organic_results, now)
            round_.status = "scored"
            round_.scored_at = now
            round_.n_miners = len(hotkeys)
            agreements = [a for a, _ in scores.task_agreement.values()]
            round_.mean_task_agreement = sum(agreements) / len(agreements) if agreements else None
            return True

    def scores_to_send(self, since: datetime, limit: int = 4096) -> list[ScoreToSend]:
        """Scores not yet delivered to their miner, from rounds scored since ``since``."""
        with self._sessions.begin() as db:
            rows = db.execute(
                select(Assignment)
                .join(Task, Task.task_id == Assignment.task_id)
                .join(Round, Round.round_id == Task.round_id)
                .where(
                    Assignment.score.is_not(None),
                    Assignment.score_sent_at.is_(None),
                    Assignment.send_status == SendStatus.ACCEPTED,
                    Round.status == "scored",
                    Round.scored_at >= since,
                )
                .order_by(Assignment.assignment_id)
                .limit(limit)
            ).scalars()
            return [
                ScoreToSend(a.assignment_id, a.miner_hotkey, a.miner_uid, a.request_id, float(a.score or 0.0))
                for a in rows
            ]

    def mark_scores_sent(self, assignment_ids: Sequence[int], now: datetime) -> None:
        if not assignment_ids:
            return
        with self._sessions.begin() as db:
            db.execute(
                update(Assignment)
                .where(Assignment.assignment_id.in_(list(assignment_ids)))
                .values(score_sent_at=now)
                .execution_options(synchronize_session=False)
            )

    # -- moving scores and weights ---------------------------------------------------------

    def _moving(self, db: Session, alpha: float) -> MovingScores:
        rows = db.scalars(select(MinerScore)).all()
        return MovingScores.from_dict(
            {
                "version": 1,
                "alpha": alpha,
                "miners": {r.miner_hotkey: {"uid": r.miner_uid, "score": r.moving_score, "rounds": r.rounds} for r in rows},
            }
        )

    def _write_moving(
        self, db: Session, moving: MovingScores, now: datetime, latest: Mapping[str, float] | None = None
    ) -> None:
        state = moving.to_dict()["miners"]
        existing = {r.miner_hotkey: r for r in db.scalars(select(MinerScore))}
        for hotkey in set(existing) - set(state):
            db.delete(existing[hotkey])
        for hotkey, rec in state.items():
            row = existing.get(hotkey)
            if row is None:
                row = MinerScore(miner_hotkey=hotkey, miner_uid=rec["uid"], moving_score=0.0, rounds=0, updated_at=now)
                db.add(row)
            changed = row.moving_score != rec["score"] or row.rounds != rec["rounds"] or row.miner_uid != rec["uid"]
            row.miner_uid, row.moving_score, row.rounds = rec["uid"], rec["score"], rec["rounds"]
            if latest is not None and hotkey in latest:
                row.latest_score = latest[hotkey]
            if changed:
                row.updated_at = now

    def _write_reliability(
        self, db: Session, carried: Mapping[str, tuple[int, float]], uid_to_hotkey: Mapping[int, str], now: datetime
    ) -> None:
        """The reliability carried after a round; a hotkey no longer at its uid is forgotten
        (as its moving score is), so a new registration inherits nothing."""
        existing: dict[str, MinerReliability] = {}
        for row in db.scalars(select(MinerReliability)):
            if uid_to_hotkey.get(row.miner_uid) != row.miner_hotkey:
                db.delete(row)
            else:
                existing[row.miner_hotkey] = row
        db.flush()
        for hotkey, (uid, value) in carried.items():
            if uid_to_hotkey.get(uid) != hotkey:
                continue
            row = existing.get(hotkey)
            if row is None:
                db.add(MinerReliability(miner_hotkey=hotkey, miner_uid=uid, reliability=value, rounds=1, updated_at=now))
            else:
                row.reliability, row.rounds, row.updated_at = value, row.rounds + 1, now

    def moving_scores(self, alpha: float) -> MovingScores:
        with self._sessions.begin() as db:
            return self._moving(db, alpha)

    def sync_miners(self, uid_to_hotkey: Mapping[int, str], alpha: float, now: datetime) -> list[str]:
        """Forget the moving scores of hotkeys no longer at their uid; returns those dropped."""
        with self._scores_lock, self._sessions.begin() as db:
            moving = self._moving(db, alpha)
            before = set(moving.scores())
            moving.sync(uid_to_hotkey)
            dropped = sorted(before - set(moving.scores()))
            if dropped:
                db.execute(delete(MinerScore).where(MinerScore.miner_hotkey.in_(dropped)))
            return dropped

    def record_weights(
        self,
        *,
        attempted_at: datetime,
        block: int | None,
        uids: Sequence[int],
        weights: Sequence[int],
        hotkeys: Sequence[str],
        version_key: int,
        outcome: str,
        detail: str | None,
        attempts: int,
    ) -> None:
        with self._sessions.begin() as db:
            db.add(
                WeightSet(
                    attempted_at=attempted_at,
                    block=block,
                    uids=list(uids),
                    weights=list(weights),
                    hotkeys=list(hotkeys),
                    version_key=version_key,
                    outcome=outcome,
                    detail=detail,
                    attempts=attempts,
                )
            )

    def last_weights_block(self) -> int | None:
        """The block of the last weights the chain accepted."""
        with self._sessions.begin() as db:
            return db.scalar(
                select(WeightSet.block)
                .where(WeightSet.outcome == "set")
                .order_by(WeightSet.weight_set_id.desc())
                .limit(1)
            )

    # -- reading, for `dojo validator status` ---------------------------------------------------

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        """What the validator has done: counts of tasks by state, the last round, each miner,
        the last weights. The shape is what ``dojo validator status --json`` prints."""
        now = now or utcnow()
        with self._sessions.begin() as db:
            by_status = dict(db.execute(select(Task.status, func.count()).group_by(Task.status)).all())
            awaiting = db.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.status == TaskStatus.WAITING, Task.expire_at <= now)
            )
            last_round = db.scalars(
                select(Round).where(Round.status == "scored").order_by(Round.round_id.desc()).limit(1)
            ).first()
            per_miner: dict[str, dict[str, Any]] = {}
            counts = db.execute(
                select(
                    Assignment.miner_hotkey,
                    func.max(Assignment.miner_uid),
                    func.count(),
                    func.sum(_flag(Assignment.send_status == SendStatus.ACCEPTED)),
                    func.sum(_flag(Assignment.collect_status == CollectStatus.COLLECTED)),
                    func.sum(_flag(Assignment.score.is_not(None))),
                ).group_by(Assignment.miner_hotkey)
            ).all()
            for hotkey, uid, sent, accepted, answered, scored in counts:
                per_miner[hotkey] = {
                    "uid": int(uid),
                    "tasks_sent": int(sent),
                    "accepted": int(accepted or 0),
                    "answered": int(answered or 0),
                    "scored": int(scored or 0),
                    "latest_score": None,
                    "moving_score": None,
                }
            for row in db.scalars(select(MinerScore)):
                entry = per_miner.setdefault(
                    row.miner_hotkey,
                    {"uid": row.miner_uid, "tasks_sent": 0, "accepted": 0, "answered": 0, "scored": 0},
                )
                entry["latest_score"] = row.latest_score
                entry["moving_score"] = row.moving_score
            last_set = db.scalars(
                select(WeightSet).where(WeightSet.outcome == "set").order_by(WeightSet.weight_set_id.desc()).limit(1)
            ).first()
            last_attempt = db.scalars(select(WeightSet).order_by(WeightSet.weight_set_id.desc()).limit(1)).first()
            total_sent = db.scalar(select(func.count()).select_from(Assignment)) or 0
            total_results = db.scalar(select(func.count()).select_from(MinerResult)) or 0
            rounds_scored = db.scalar(select(func.count()).select_from(Round).where(Round.status == "scored")) or 0
        waiting = int(by_status.get(TaskStatus.WAITING, 0))
        return {
            "tasks": {
                "total": int(sum(by_status.values())),
                "pending": int(by_status.get(TaskStatus.SENDING, 0)) + waiting - int(awaiting or 0),
                "awaiting_collection": int(awaiting or 0),
                "collected": int(by_status.get(TaskStatus.COLLECTED, 0)) + int(by_status.get(TaskStatus.SCORING, 0)),
                "scored": int(by_status.get(TaskStatus.SCORED, 0)),
                "unsent": int(by_status.get(TaskStatus.UNSENT, 0)),
            },
            "assignments_sent": int(total_sent),
            "results_collected": int(total_results),
            "rounds_scored": int(rounds_scored),
            "last_round": None
            if last_round is None
            else {
                "round_id": last_round.round_id,
                "scored_at": _iso(last_round.scored_at),
                "tasks": last_round.n_tasks,
                "miners": last_round.n_miners,
                "mean_task_agreement": last_round.mean_task_agreement,
            },
            "miners": dict(sorted(per_miner.items(), key=lambda kv: kv[1]["uid"])),
            "last_weights": None if last_set is None else _weights_view(last_set),
            "last_weights_attempt": None if last_attempt is None else _weights_view(last_attempt),
            "organic": self._organic_counts(),
        }

    def _organic_counts(self) -> dict[str, int] | None:
        """Organic tasks by state and their webhooks; None for a database from before them."""
        from dojo.validator.organic.store import OrganicStore

        if not inspect(self.engine).has_table("organic_tasks"):
            return None
        return OrganicStore(self.engine).counts()


def _flag(condition: Any) -> Any:
    return case((condition, 1), else_=0)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _weights_view(row: WeightSet) -> dict[str, Any]:
    total = sum(row.weights) or 1
    return {
        "attempted_at": _iso(row.attempted_at),
        "block": row.block,
        "outcome": row.outcome,
        "detail": row.detail,
        "weights": {h: w / total for h, w in zip(row.hotkeys, row.weights, strict=True)},
    }


__all__ = [
    "AcceptedResult",
    "CollectionOutcome",
    "DueCollection",
    "NewAssignment",
    "NewCompletion",
    "NewTask",
    "Outgoing",
    "RoundAssignment",
    "RoundInputs",
    "RoundScores",
    "RoundTask",
    "ScoreToSend",
    "SendOutcome",
    "TaskMinerScore",
    "TaskStore",
]
