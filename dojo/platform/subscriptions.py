"""A worker's subscriptions and the tasks they open to the worker.

A subscription links a worker to one miner: by a subscription key the miner handed out
(access ends the moment the miner disables that key) or by an invite link (no key). Only
tasks of miners the worker has live access to are ever shown or accepted.

For the UI's page routes: :func:`list_subscriptions`, :func:`add_subscription`,
:func:`remove_subscription`, :func:`worker_tasks` (the task list with counts and
deadlines), :func:`worker_task` (one task's page data, with the worker's own result only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from dojo.platform.errors import Conflict, NotFound
from dojo.platform.keys import active_subscription_key
from dojo.platform.models import ApiKey, Assignment, Miner, Result, Subscription, Task, Worker, utcnow


def task_status(task: Task, now: datetime | None = None) -> str:
    if task.num_results >= task.max_results:
        return "COMPLETED"
    if task.expire_at <= (now or utcnow()):
        return "EXPIRED"
    return "IN_PROGRESS"


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


def can_access(db: Session, worker: Worker, miner_id: int) -> bool:
    return (
        db.scalar(
            select(Subscription.id)
            .outerjoin(ApiKey, ApiKey.id == Subscription.key_id)
            .where(
                Subscription.worker_id == worker.id,
                Subscription.miner_id == miner_id,
                or_(Subscription.key_id.is_(None), ApiKey.disabled_at.is_(None)),
            )
        )
        is not None
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


def add_subscription(db: Session, worker: Worker, name: str, key: str) -> SubscriptionView:
    """Subscribe with a miner's subscription key; 404 for an unknown or disabled key."""
    key_row = active_subscription_key(db, key.strip())
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


def worker_tasks(
    db: Session, worker: Worker, include_closed: bool = False, limit: int = 200
) -> list[WorkerTaskSummary]:
    """The tasks of the worker's miners, soonest deadline first; open ones unless ``include_closed``."""
    now = utcnow()
    my_status = (
        select(Assignment.status)
        .where(Assignment.task_id == Task.id, Assignment.worker_id == worker.id)
        .scalar_subquery()
    )
    query = select(Task, my_status).where(live_subscription(worker.id))
    if not include_closed:
        query = query.where(Task.expire_at > now, Task.num_results < Task.max_results)
    rows = db.execute(query.order_by(Task.expire_at, Task.id).limit(limit)).all()
    return [
        WorkerTaskSummary(
            id=t.id,
            title=t.title,
            task_type=t.task_type,
            num_results=t.num_results,
            max_results=t.max_results,
            expire_at=t.expire_at,
            status=task_status(t, now),
            my_status=status,
        )
        for t, status in rows
    ]


@dataclass(frozen=True)
class WorkerTaskView:
    """What the task page shows: the task without model names, and only this worker's result."""

    id: str
    title: str
    body: str
    prompt: str
    task_type: str
    criteria: list[dict[str, Any]]
    completions: list[dict[str, Any]]
    num_results: int
    max_results: int
    expire_at: datetime
    held_until: datetime | None
    my_result: list[dict[str, Any]] | None

    @classmethod
    def of(cls, task: Any, held_until: datetime | None, my_result: list[dict[str, Any]] | None) -> WorkerTaskView:
        """The view of a task (an ORM ``Task`` or the queue's raw row); model names are left out."""
        return cls(
            id=task.id,
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
        )


def task_view(db: Session, worker: Worker, task: Task) -> WorkerTaskView:
    now = utcnow()
    held_until = db.scalar(
        select(Assignment.held_until).where(
            Assignment.task_id == task.id,
            Assignment.worker_id == worker.id,
            Assignment.status == "held",
            Assignment.held_until > now,
        )
    )
    mine = db.scalar(
        select(Result.result_data).where(Result.task_id == task.id, Result.worker_id == worker.id)
    )
    return WorkerTaskView.of(task, held_until, mine)


def worker_task(db: Session, worker: Worker, task_id: str) -> WorkerTaskView:
    """One task for the worker's page; 404 if it is not one of the worker's miners'."""
    task = db.scalar(select(Task).where(and_(Task.id == task_id, live_subscription(worker.id))))
    if task is None:
        raise NotFound("no such task among your subscriptions")
    return task_view(db, worker, task)
