"""The miner's side of tasks: create them, read their status and their results.

Tasks carry the prompt, the completions (each with the miner's completion id ``cid``) and
the criteria; never a ground truth. Results are readable only by the miner that created
the task: for anyone else the task does not exist (404).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dojo.platform.auth import worker_pseudonym
from dojo.platform.errors import Invalid, NotFound
from dojo.platform.models import Miner, Result, Task, Worker, utcnow
from dojo.platform.schemas import CreateTasksIn, to_naive_utc
from dojo.platform.subscriptions import task_status

MAX_TASK_LIFETIME = timedelta(days=5)
# A client that computes "now + 5 days" and sends it a moment later is still within limits.
CLOCK_GRACE = timedelta(seconds=60)


def create_tasks(db: Session, miner: Miner, payload: CreateTasksIn) -> list[str]:
    """One task per ``taskData`` entry; returns their ids in order."""
    now = utcnow()
    expire_at = to_naive_utc(payload.expire_at)
    if expire_at <= now:
        raise Invalid(f"expireAt {expire_at.isoformat()}Z is in the past; send a time in the next 5 days")
    if expire_at > now + MAX_TASK_LIFETIME + CLOCK_GRACE:
        raise Invalid(
            f"expireAt {expire_at.isoformat()}Z is more than 5 days ahead; tasks live at most 5 days"
        )
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
    return ids


def _own_task(db: Session, miner: Miner, task_id: str) -> Task:
    task = db.get(Task, task_id)
    if task is None or task.miner_id != miner.id:
        raise NotFound(f"no task {task_id} among yours")
    return task


@dataclass(frozen=True)
class TaskStatusView:
    id: str
    status: str
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
            r.id, worker_pseudonym(public_id, miner.hotkey), r.result_data, r.created_at, r.updated_at
        )
        for r, public_id in rows
    ]
