"""The worker's answer so far, kept on the platform with its hold.

The task page saves a draft as the worker works (``PUT /api/v1/worker/tasks/{id}/draft``):
the order its list shows, which responses the worker has placed, the scores, the rationale
and the time spent. The draft lives on the worker's assignment (the hold), so another
browser or session of the same worker opens the task where it was left; a submission or a
skip ends it (``queue.SET_ASSIGNMENT``). A draft is never an answer: nothing in it reaches
the miner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dojo.platform.errors import Conflict, Gone, Invalid, NotFound
from dojo.platform.services.queue import SKIPPED_DETAIL, readable_time
from dojo.platform.services.subscriptions import live_subscription
from dojo.platform.storage.models import SKIPPED, Assignment, Task, Worker
from template.clock import utcnow


@dataclass(frozen=True)
class Draft:
    task_id: str
    order: list[str]
    placed: list[str]
    scores: dict[str, float] | None
    rationale: str | None
    lead_time: float | None
    saved_at: datetime


def _task(db: Session, worker: Worker, task_id: str) -> Task:
    task = db.scalar(select(Task).where(Task.id == task_id, live_subscription(worker.id)))
    if task is None:
        raise NotFound("no such task among your subscriptions")
    return task


def _assignment(db: Session, worker: Worker, task_id: str) -> Assignment | None:
    return db.scalar(
        select(Assignment).where(Assignment.task_id == task_id, Assignment.worker_id == worker.id)
    )


def _checked(task: Task, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (``DraftIn``'s fields) in the task's completion ids, or 422 saying why."""
    cids = [str(c["cid"]) for c in task.completions]
    order, placed = list(given["order"]), list(given.get("placed") or [])
    if sorted(order) != sorted(cids):
        raise Invalid(f"a draft's order must list every completion id once: {cids}")
    if len(set(placed)) != len(placed) or not set(placed) <= set(cids):
        raise Invalid(f"a draft's placed responses must be distinct completion ids of the task: {cids}")
    scores = given.get("scores")
    if scores is not None and not set(scores) <= set(cids):
        raise Invalid(f"a draft's scores must be for completion ids of the task: {cids}")
    return {
        "order": order,
        "placed": placed,
        "scores": scores,
        "rationale": given.get("rationale"),
        "lead_time": given.get("lead_time"),
    }


def _draft(task_id: str, stored: dict[str, Any], saved_at: datetime) -> Draft:
    return Draft(
        task_id=task_id,
        order=list(stored.get("order") or []),
        placed=list(stored.get("placed") or []),
        scores=stored.get("scores"),
        rationale=stored.get("rationale"),
        lead_time=stored.get("lead_time"),
        saved_at=saved_at,
    )


def save_draft(db: Session, worker: Worker, task_id: str, given: dict[str, Any]) -> Draft:
    """Keep ``given`` as the worker's draft of the task. 404 not yours, 410 past its
    deadline, 409 skipped or never held (the page holds the task before it saves), 422 a
    draft that does not fit the task."""
    task = _task(db, worker, task_id)
    now = utcnow()
    if task.expire_at <= now:
        raise Gone(f"task {task.id} expired: its deadline passed at {readable_time(task.expire_at)}")
    assignment = _assignment(db, worker, task.id)
    if assignment is None:
        raise Conflict("hold the task first (POST …/hold): a draft is kept with the hold")
    if assignment.status == SKIPPED:
        raise Conflict(SKIPPED_DETAIL)
    assignment.draft = _checked(task, given)
    assignment.draft_saved_at = now
    return _draft(task.id, assignment.draft, now)


def get_draft(db: Session, worker: Worker, task_id: str) -> Draft | None:
    """The worker's draft of the task, if it keeps one; 404 if the task is not the worker's."""
    task = _task(db, worker, task_id)
    assignment = _assignment(db, worker, task.id)
    if assignment is None or assignment.draft is None or assignment.draft_saved_at is None:
        return None
    return _draft(task.id, assignment.draft, assignment.draft_saved_at)
