"""Tasks and assignments: a task's fan-out to miners, their answers to it, and the
collection of their results after the deadline (steps 1-3 of :mod:`dojo.validator.store`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from dojo.validator.models import (
    Assignment,
    AssignmentCompletion,
    CollectStatus,
    MinerResult,
    SendStatus,
    Task,
    TaskCompletion,
    TaskStatus,
)
from dojo.validator.organic.store import claim_organic
from dojo.validator.store._base import ORGANIC_SOURCE, StoreBase

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


# What an Outgoing or a DueCollection takes from the assignment's row, and what an Outgoing
# takes from its task, under the same names.
_ASSIGNMENT = ("assignment_id", "task_id", "miner_hotkey", "miner_uid", "request_id")
_TASK = ("prompt", "task_type", "criteria", "expire_at")


class TaskRecords(StoreBase):
    """The tasks, their completions and ground truth, and each miner's assignment."""

    def add_task(self, task: NewTask, assignments: Sequence[NewAssignment]) -> list[Outgoing]:
        """Write the task and every assignment in one transaction; return what to send."""
        with self._sessions.begin() as db:
            db.add(Task(**_fields(task, "completions"), status=TaskStatus.SENDING))
            db.flush()  # no ORM relationships: the task row goes first for the foreign keys
            if task.source == ORGANIC_SOURCE:
                # In the same transaction: the organic task is sent exactly when its task exists.
                claim_organic(
                    db,
                    task.task_id,
                    {c.completion_id: c.label or c.completion_id for c in task.completions},
                    task.created_at,
                )
            for position, c in enumerate(task.completions):
                db.add(TaskCompletion(task_id=task.task_id, position=position, **_fields(c, "label")))
            rows = []
            for a in assignments:
                row = Assignment(
                    task_id=task.task_id, **_fields(a, "completions"), send_status=SendStatus.PENDING
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
                    **_attrs(row, _ASSIGNMENT),
                    **_attrs(task, _TASK),
                    completions=tuple(
                        (miner_cid, by_cid[cid].model, by_cid[cid].content)
                        for miner_cid, cid in a.completions
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
            c.completion_id: c
            for c in db.scalars(select(TaskCompletion).where(TaskCompletion.task_id == task.task_id))
        }
        seen = db.scalars(
            select(AssignmentCompletion)
            .where(AssignmentCompletion.assignment_id == assignment.assignment_id)
            .order_by(AssignmentCompletion.position)
        )
        return Outgoing(
            **_attrs(assignment, _ASSIGNMENT),
            **_attrs(task, _TASK),
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
                    or_(Task.expire_at <= now, Task.status == TaskStatus.WAITING)
                    if early
                    else Task.expire_at <= now,
                    (Assignment.next_collect_at.is_(None)) | (Assignment.next_collect_at <= now),
                )
                .order_by(Task.expire_at, Assignment.assignment_id)
                .limit(limit)
            ).all()
            ids = [a.assignment_id for a, _ in rows]
            mapping: dict[int, dict[str, str]] = {i: {} for i in ids}
            if ids:
                for ac in db.scalars(
                    select(AssignmentCompletion).where(AssignmentCompletion.assignment_id.in_(ids))
                ):
                    mapping[ac.assignment_id][ac.miner_completion_id] = ac.completion_id
            return [
                DueCollection(
                    **_attrs(a, _ASSIGNMENT),
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
                results.extend({"assignment_id": o.assignment_id, **_fields(r)} for r in o.results)
            db.flush()
            if results:
                db.execute(insert(MinerResult), results)
            for task_id in settle:
                self._settle_collection(db, task_id, now)

    def record_collection(
        self,
        assignment_id: int,
        status: str,
        detail: str | None,
        results: Sequence[AcceptedResult],
        now: datetime,
    ) -> None:
        """The final outcome of collecting one assignment (see :meth:`record_collections`)."""
        self.record_collections([CollectionOutcome(assignment_id, status, detail, tuple(results))], now)

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


def _attrs(obj: Any, names: Iterable[str]) -> dict[str, Any]:
    """``obj``'s attributes ``names``, by name: keyword arguments for a record of the same names."""
    return {name: getattr(obj, name) for name in names}


def _fields(record: Any, *omit: str) -> dict[str, Any]:
    """A record's fields by name, but those in ``omit``: the columns of the row it becomes."""
    return _attrs(record, (f.name for f in fields(record) if f.name not in omit))


# What the package re-exports; TaskRecords is a part of its TaskStore.
__all__ = [
    "AcceptedResult",
    "CollectionOutcome",
    "DueCollection",
    "NewAssignment",
    "NewCompletion",
    "NewTask",
    "Outgoing",
    "SendOutcome",
]
