"""A worker's subscriptions and the tasks they open to the worker.

A subscription links a worker to one miner: by a subscription key the miner handed out
(access ends the moment the miner disables that key) or by an invite link (no key). Only
tasks of miners the worker has live access to are ever shown or accepted.

Whether a worker may take a task follows the rules named in :mod:`dojo.platform.services.queue`
("The rules on taking a task"): the queries here are the pages' copy of them (the hot path
has its own, in SQL), and ``tests/dojo/platform/test_rule_parity.py`` keeps the two alike.

For the UI's page routes: :func:`list_subscriptions`, :func:`add_subscription`,
:func:`remove_subscription`, :func:`worker_tasks` (the task list with counts and
deadlines), :func:`worker_task` (one task's page data, with the worker's own result only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, defer

from dojo.platform.credentials import hash_secret
from dojo.platform.errors import Conflict, Invalid, NotFound
from dojo.platform.services.keys import active_subscription_key, looks_like_api_key
from dojo.platform.services.team import answer_feedback
from dojo.platform.storage.models import (
    DONE,
    HOLD,
    KEY_KIND_API,
    SKIPPED,
    ApiKey,
    Assignment,
    Flag,
    Miner,
    Result,
    Subscription,
    Task,
    Worker,
)
from template.clock import utcnow
from template.storage import record

# Enough of a task's prompt to tell it from the others in a list (a page shortens it at a word).
PROMPT_START = 200


TaskStatus = Literal["IN_PROGRESS", "COMPLETED", "EXPIRED"]


def task_status(task: Task, now: datetime | None = None) -> TaskStatus:
    if task.num_results >= task.max_results:
        return "COMPLETED"
    if task.expire_at <= (now or utcnow()):
        return "EXPIRED"
    return "IN_PROGRESS"


def _others_holding(worker_id: int, now: datetime) -> Any:
    """SQL: how many live holds other workers have on the task."""
    return (
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.task_id == Task.id,
            Assignment.worker_id != worker_id,
            Assignment.status == HOLD,
            Assignment.held_until > now,
        )
        .scalar_subquery()
    )


def closed_reason(
    task: Task, my_status: str | None, has_result: bool, others_holding: int, now: datetime
) -> str | None:
    """Why the worker cannot answer ``task`` now, in words for the page; None when it can.

    ``my_status`` is the worker's live assignment status (an expired hold is none)."""
    if task.expire_at <= now:
        return "its deadline has passed"
    if has_result:
        return None  # the worker's place is kept: resubmitting replaces the answer
    if my_status == SKIPPED:
        return "you skipped this task"
    if task.num_results >= task.max_results:
        return "it has all the results it needs"
    if my_status != HOLD and task.num_results + others_holding >= task.max_results:
        return "other workers hold its remaining places; try again later"
    return None


def live_subscription(worker_id: int) -> ColumnElement[bool]:
    """SQL: the task's miner has a live subscription of this worker (key enabled, or no key)."""
    return exists(
        select(1)
        .select_from(Subscription)
        .outerjoin(ApiKey, ApiKey.id == Subscription.key_id)
        .where(
            Subscription.worker_id == worker_id,
            Subscription.miner_id == Task.miner_id,
            or_(Subscription.key_id.is_(None), ApiKey.disabled_at.is_(None)),
        )
    )


@dataclass(frozen=True)
class SubscriptionView:
    id: int
    name: str
    miner_hotkey: str
    key_prefix: str | None
    active: bool
    created_at: datetime


def list_subscriptions(db: Session, worker: Worker) -> list[SubscriptionView]:
    rows = db.execute(
        select(Subscription, Miner.hotkey, ApiKey.prefix, ApiKey.disabled_at)
        .join(Miner, Miner.id == Subscription.miner_id)
        .outerjoin(ApiKey, ApiKey.id == Subscription.key_id)
        .where(Subscription.worker_id == worker.id)
        .order_by(Subscription.id)
    ).all()
    return [
        SubscriptionView(
            id=sub.id,
            name=sub.name,
            miner_hotkey=hotkey,
            key_prefix=prefix,
            active=sub.key_id is None or disabled_at is None,
            created_at=sub.created_at,
        )
        for sub, hotkey, prefix, disabled_at in rows
    ]


API_KEY_PASTED = (
    "that is a miner's API key (for the miner's scripts), not a subscription key; ask the miner"
    " for a subscription key, and tell them the API key was shared so they can disable it"
)


def add_subscription(db: Session, worker: Worker, name: str, key: str) -> SubscriptionView:
    """Subscribe with a miner's subscription key; 404 for an unknown or disabled key, 422
    for a miner's API key pasted by mistake (one issued, or one written as an API key)."""
    key = key.strip()
    pasted_api_key = db.scalar(
        select(ApiKey.id).where(ApiKey.key_hash == hash_secret(key), ApiKey.kind == KEY_KIND_API)
    )
    if pasted_api_key is not None or looks_like_api_key(key):
        raise Invalid(API_KEY_PASTED)
    key_row = active_subscription_key(db, key)
    existing = db.scalar(
        select(Subscription).where(
            Subscription.worker_id == worker.id, Subscription.miner_id == key_row.miner_id
        )
    )
    if existing is not None:
        current = db.get(ApiKey, existing.key_id) if existing.key_id is not None else None
        if existing.key_id is None or (current is not None and current.disabled_at is None):
            raise Conflict(f"you already have a subscription to this miner ({existing.name!r})")
        existing.key_id, existing.name = key_row.id, name  # its old key was disabled: renew
        sub = existing
    else:
        sub = Subscription(worker_id=worker.id, miner_id=key_row.miner_id, key_id=key_row.id, name=name)
        db.add(sub)
    db.flush()
    miner = db.get(Miner, key_row.miner_id)
    assert miner is not None
    return SubscriptionView(sub.id, sub.name, miner.hotkey, key_row.prefix, True, sub.created_at)


def remove_subscription(db: Session, worker: Worker, subscription_id: int) -> None:
    sub = db.scalar(
        select(Subscription).where(Subscription.id == subscription_id, Subscription.worker_id == worker.id)
    )
    if sub is None:
        raise NotFound(f"no subscription with id {subscription_id} among yours")
    db.delete(sub)


@dataclass(frozen=True)
class WorkerTaskSummary:
    id: str
    title: str
    task_type: str
    num_results: int
    max_results: int
    expire_at: datetime
    status: str
    my_status: str | None
    prompt_start: str = ""  # the prompt's first characters, to tell tasks apart


def worker_tasks(
    db: Session, worker: Worker, include_closed: bool = False, limit: int = 200
) -> list[WorkerTaskSummary]:
    """The tasks of the worker's miners, soonest deadline first.

    By default only those the worker can work now: open, not skipped by it, with a place free
    for it (its own hold, or one no other worker holds), or already answered by it (it may
    resubmit). With ``include_closed``, also expired, complete, skipped and wholly held ones
    (``HELD_BY_OTHERS``)."""
    now = utcnow()
    mine = (
        select(Assignment.status)
        .where(Assignment.task_id == Task.id, Assignment.worker_id == worker.id)
        .scalar_subquery()
    )
    mine_until = (
        select(Assignment.held_until)
        .where(Assignment.task_id == Task.id, Assignment.worker_id == worker.id)
        .scalar_subquery()
    )
    others = _others_holding(worker.id, now)
    query = select(Task, mine, mine_until, others).where(live_subscription(worker.id))
    if not include_closed:
        query = query.where(
            Task.expire_at > now,
            or_(
                mine == DONE,
                and_(
                    or_(mine.is_(None), mine != SKIPPED),
                    Task.num_results < Task.max_results,
                    or_(and_(mine == HOLD, mine_until > now), Task.num_results + others < Task.max_results),
                ),
            ),
        )
    rows = db.execute(query.order_by(Task.expire_at, Task.id).limit(limit)).all()
    summaries = []
    for t, status, until, holding in rows:
        state: TaskStatus | Literal["HELD_BY_OTHERS"] = task_status(t, now)
        held = status == HOLD and until is not None and until > now
        if (
            state == "IN_PROGRESS"
            and not held
            and status != DONE
            and t.num_results + holding >= t.max_results
        ):
            state = "HELD_BY_OTHERS"
        summaries.append(
            record(
                WorkerTaskSummary,
                t,
                status=state,
                my_status=None if status == HOLD and not held else status,
                prompt_start=t.prompt[:PROMPT_START],
            )
        )
    return summaries


@dataclass(frozen=True)
class TaskRow:
    """A task's own columns, in the order the queue's statements select them."""

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


@dataclass(frozen=True)
class WorkerTaskView(TaskRow):
    """What the task page shows: the task without model names, and only this worker's result."""

    held_until: datetime | None
    my_result: list[dict[str, Any]] | None
    # The worker's live assignment ("held", "done", "skipped") and why it cannot answer now.
    my_status: str | None = None
    closed_reason: str | None = None

    @classmethod
    def of(
        cls,
        task: Any,
        held_until: datetime | None,
        my_result: list[dict[str, Any]] | None,
        my_status: str | None = None,
        closed_reason: str | None = None,
    ) -> WorkerTaskView:
        """The view of a task (an ORM ``Task`` or the queue's raw row); model names are left out."""
        # Every claim makes one: keywords, not :func:`~template.storage.record` (1.5 µs less a call).
        return cls(
            id=task.id,
            miner_id=task.miner_id,
            title=task.title,
            body=task.body,
            prompt=task.prompt,
            task_type=task.task_type,
            criteria=task.criteria,
            completions=[{"cid": c["cid"], "completion": c["completion"]} for c in task.completions],
            num_results=task.num_results,
            max_results=task.max_results,
            expire_at=task.expire_at,
            held_until=held_until,
            my_result=my_result,
            my_status=my_status,
            closed_reason=closed_reason,
        )


def task_view(db: Session, worker: Worker, task: Task) -> WorkerTaskView:
    now = utcnow()
    assignment = db.execute(
        select(Assignment.status, Assignment.held_until).where(
            Assignment.task_id == task.id, Assignment.worker_id == worker.id
        )
    ).first()
    status = assignment.status if assignment is not None else None
    held_until = None
    if status == HOLD:
        if assignment is not None and assignment.held_until > now:
            held_until = assignment.held_until
        else:
            status = None  # a lapsed hold is no claim
    mine = db.scalar(
        select(Result.result_data).where(Result.task_id == task.id, Result.worker_id == worker.id)
    )
    others = db.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.task_id == task.id,
            Assignment.worker_id != worker.id,
            Assignment.status == HOLD,
            Assignment.held_until > now,
        )
    )
    closed = closed_reason(task, status, mine is not None, others or 0, now)
    return WorkerTaskView.of(task, held_until, mine, status, closed_reason=closed)


def worker_task(db: Session, worker: Worker, task_id: str) -> WorkerTaskView:
    """One task for the worker's page; 404 if it is not one of the worker's miners'."""
    task = db.scalar(select(Task).where(and_(Task.id == task_id, live_subscription(worker.id))))
    if task is None:
        raise NotFound("no such task among your subscriptions")
    return task_view(db, worker, task)


# --- the worker's history and flags ------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    task_id: str
    title: str
    task_type: str
    task_status: str
    submitted_at: datetime
    updated_at: datetime
    lead_time: float | None
    ranking: dict[str, int] | None
    cids: tuple[str, ...] = ()  # the task's completions in its order (response 1 first)
    prompt_start: str = ""  # the prompt's first characters, to tell tasks apart
    agreement: float | None = None  # with the other workers' answers to the task
    validator_score: float | None = None  # the validator's score for the task, once reported


def history(db: Session, worker: Worker, limit: int = 50, offset: int = 0) -> tuple[list[HistoryEntry], int]:
    """This worker's own results, newest first, and how many there are in all. Tasks of
    miners the worker no longer subscribes to stay in its history: the answers are its own."""
    now = utcnow()
    total = db.scalar(select(func.count()).select_from(Result).where(Result.worker_id == worker.id)) or 0
    rows = db.execute(
        select(Result, Task, func.substr(Task.prompt, 1, PROMPT_START))
        .join(Task, Task.id == Result.task_id)
        .options(defer(Task.body), defer(Task.prompt))  # only the completions' ids are shown
        .where(Result.worker_id == worker.id)
        .order_by(Result.updated_at.desc(), Result.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    feedback = answer_feedback(db, worker, [task.id for _, task, _ in rows])
    entries = []
    for result, task, prompt_start in rows:
        ranking = next((item["value"] for item in result.result_data if item.get("type") == "ranking"), None)
        mine = feedback.get(task.id)
        entries.append(
            HistoryEntry(
                task_id=task.id,
                title=task.title,
                task_type=task.task_type,
                task_status=task_status(task, now),
                submitted_at=result.created_at,
                updated_at=result.updated_at,
                lead_time=result.lead_time,
                ranking=ranking,
                cids=tuple(str(c["cid"]) for c in task.completions),
                prompt_start=prompt_start or "",
                agreement=mine.agreement if mine else None,
                validator_score=mine.score if mine else None,
            )
        )
    return entries, total


def flag_completion(db: Session, worker: Worker, task_id: str, cid: str, reason: str) -> Flag:
    """Record that completion ``cid`` of the task is broken; a second flag of the same
    completion by the same worker replaces the reason. 404 not the worker's, 422 unknown cid."""
    task = db.scalar(select(Task).where(and_(Task.id == task_id, live_subscription(worker.id))))
    if task is None:
        raise NotFound("no such task among your subscriptions")
    cids = [str(c["cid"]) for c in task.completions]
    if cid not in cids:
        raise Invalid(f"task {task_id} has no completion {cid!r}; its completions are {cids}")
    reason = reason.strip()
    if not reason:
        raise Invalid("say what is broken: the reason must not be blank")
    now = utcnow()
    flag = db.scalar(
        select(Flag).where(Flag.task_id == task.id, Flag.worker_id == worker.id, Flag.cid == cid)
    )
    if flag is None:
        flag = Flag(
            task_id=task.id, worker_id=worker.id, cid=cid, reason=reason, created_at=now, updated_at=now
        )
        db.add(flag)
    else:
        flag.reason, flag.updated_at = reason, now
    db.flush()
    return flag


def my_flags(db: Session, worker: Worker, task_id: str) -> dict[str, str]:
    """The reasons this worker gave for the completions it flagged on the task, by cid."""
    rows = db.execute(
        select(Flag.cid, Flag.reason).where(Flag.task_id == task_id, Flag.worker_id == worker.id)
    )
    return {cid: reason for cid, reason in rows}
