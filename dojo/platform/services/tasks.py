"""The miner's side of tasks: create them, read their status and their results.

Tasks carry the prompt, the completions (each with the miner's completion id ``cid``) and
the criteria; never a ground truth. Results are readable only by the miner that created
the task: for anyone else the task does not exist (404).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from commons.dojo_wire import CreateTasksIn, to_utc
from dojo.platform.errors import Conflict, Invalid, NotFound
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.platform.services.subscriptions import TaskStatus, task_status
from dojo.platform.storage.models import CreateRequest, Miner, Result, Task, Worker
from template.clock import utcnow

MAX_TASK_LIFETIME = timedelta(days=5)
# A client that computes "now + 5 days" and sends it a moment later is still within limits.
CLOCK_GRACE = timedelta(seconds=60)
# Longer than a task lives: a retry of a create-tasks request comes long before.
IDEMPOTENCY_KEY_DAYS = 7


def _shown(value: datetime) -> str:
    """A UTC time as a refusal quotes it: ISO 8601 with ``Z``."""
    return value.replace(tzinfo=None).isoformat() + "Z"


def create_tasks(
    db: Session, miner: Miner, payload: CreateTasksIn, idempotency_key: str | None = None
) -> list[str]:
    """One task per ``taskData`` entry; returns their ids in order.

    With an ``idempotency_key`` (the ``Idempotency-Key`` header) a repeat of the request
    returns the ids the first one created, and creates nothing; the same key with other
    tasks is a 409. Keys are remembered for ``IDEMPOTENCY_KEY_DAYS`` days.
    """
    body_hash = None
    if idempotency_key is not None:
        body_hash = hashlib.sha256(payload.model_dump_json().encode()).hexdigest()
        earlier = db.execute(
            select(CreateRequest).where(
                CreateRequest.miner_id == miner.id, CreateRequest.key == idempotency_key
            )
        ).scalar_one_or_none()
        if earlier is not None:
            if earlier.body_hash != body_hash:
                raise Conflict(
                    f"Idempotency-Key {idempotency_key!r} was used for other tasks; send a new key for new tasks"
                )
            return list(earlier.task_ids)
    now = utcnow()
    expire_at = to_utc(payload.expire_at)
    if expire_at <= now:
        raise Invalid(f"expireAt {_shown(expire_at)} is in the past; send a time in the next 5 days")
    if expire_at > now + MAX_TASK_LIFETIME + CLOCK_GRACE:
        raise Invalid(f"expireAt {_shown(expire_at)} is more than 5 days ahead; tasks live at most 5 days")
    ids = []
    for data in payload.task_data:
        task_id = str(uuid.uuid4())
        db.add(
            Task(
                id=task_id,
                miner_id=miner.id,
                title=payload.title,
                body=payload.body,
                prompt=data.prompt,
                task_type=data.task,
                criteria=[c.model_dump(exclude_none=True) for c in data.criteria],
                completions=[
                    {"cid": r.cid or r.model, "model": r.model, "completion": r.completion}
                    for r in data.responses
                ],
                max_results=payload.max_results,
                num_results=0,
                expire_at=expire_at,
            )
        )
        ids.append(task_id)
    if idempotency_key is not None and body_hash is not None:
        db.execute(
            delete(CreateRequest).where(
                CreateRequest.miner_id == miner.id,
                CreateRequest.created_at < now - timedelta(days=IDEMPOTENCY_KEY_DAYS),
            )
        )
        db.add(CreateRequest(miner_id=miner.id, key=idempotency_key, body_hash=body_hash, task_ids=ids))
    return ids


def _own_task(db: Session, miner: Miner, task_id: str) -> Task:
    task = db.get(Task, task_id)
    if task is None or task.miner_id != miner.id:
        raise NotFound(f"no task {task_id} among yours")
    return task


@dataclass(frozen=True)
class TaskStatusView:
    id: str
    status: TaskStatus
    num_results: int
    max_results: int
    expire_at: datetime


def get_task_status(db: Session, miner: Miner, task_id: str) -> TaskStatusView:
    task = _own_task(db, miner, task_id)
    return TaskStatusView(task.id, task_status(task), task.num_results, task.max_results, task.expire_at)


@dataclass(frozen=True)
class TaskResultView:
    id: int
    worker_id: str
    result_data: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    rationale: str | None = None


def get_task_results(db: Session, miner: Miner, task_id: str) -> list[TaskResultView]:
    """The workers' results, each under the worker's pseudonym for this miner."""
    task = _own_task(db, miner, task_id)
    rows = db.execute(
        select(Result, Worker.public_id)
        .join(Worker, Worker.id == Result.worker_id)
        .where(Result.task_id == task.id)
        .order_by(Result.id)
    ).all()
    return [
        TaskResultView(
            r.id,
            worker_pseudonym_for_miner(public_id, miner.hotkey),
            r.result_data,
            r.created_at,
            r.updated_at,
            r.rationale,
        )
        for r, public_id in rows
    ]


def record_score(db: Session, miner: Miner, task_id: str, score: float) -> Task:
    """Store the validator's score for the task, as its miner reports it; a repeat replaces
    it. The workers who answered the task see it on *Your work*, the miner on its team page."""
    task = _own_task(db, miner, task_id)
    task.score, task.scored_at = score, utcnow()
    db.flush()
    return task
