"""The miner dashboard: the miner's tasks, a page at a time and filtered, each worker's
answer, the flags workers raised on completions, and how well the workers agree on each
task (:func:`dojo.platform.services.agreement.agreements`, the validator's own measure).

Pages go from the newest task to the oldest, :data:`PAGE_SIZE` at a time (at most
:data:`MAX_PAGE_SIZE`), by a cursor (:func:`encode_cursor`): the creation time and id of
the last task shown, so that a page is one range of the ``(miner, created_at)`` index
however deep it lies, and tasks created meanwhile shift no page after the first.
Filters: the task's state (open, complete, expired) and the UTC days it was created on.
A fixed number of queries per page, whatever the number of tasks and results.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, defer

from dojo.platform.errors import Invalid
from dojo.platform.services.agreement import (
    MULTI_SCORE,
    RANKING,
    agreements,
    answer_row,
    answer_values,
    criterion,
)
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.platform.services.subscriptions import PROMPT_START, task_status
from dojo.platform.storage.models import Flag, Miner, Result, Task, Worker
from template.clock import utcnow
from template.storage import record

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
STATES = ("open", "complete", "expired")


@dataclass(frozen=True)
class TaskFilter:
    """Which of the miner's tasks a page shows: a state, and created on ``since`` .. ``until``
    (UTC days, both included); None: any."""

    state: str | None = None
    since: date | None = None
    until: date | None = None

    def where(self, now: datetime) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.state == "complete":
            clauses.append(Task.num_results >= Task.max_results)
        elif self.state == "open":
            clauses += [Task.num_results < Task.max_results, Task.expire_at > now]
        elif self.state == "expired":
            clauses += [Task.num_results < Task.max_results, Task.expire_at <= now]
        if self.since is not None:
            clauses.append(Task.created_at >= datetime.combine(self.since, time(tzinfo=timezone.utc)))
        if self.until is not None:
            clauses.append(
                Task.created_at < datetime.combine(self.until + timedelta(days=1), time(tzinfo=timezone.utc))
            )
        return clauses


def encode_cursor(task: Task) -> str:
    """The cursor of the page after ``task``: its creation time and id, URL-safe."""
    # The time in UTC without its zone, as cursors have always carried it.
    raw = f"{task.created_at.astimezone(timezone.utc).replace(tzinfo=None).isoformat()}|{task.id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, task_id = raw.split("|", 1)
        when = datetime.fromisoformat(created)
        return (when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(
            "cursor is not one this dashboard gave: start from the first page (no cursor)"
        ) from None


GLIMPSE_CHARS = 140


def glimpse(completion: Any) -> dict[str, str]:
    """What a completion is, in a few words: its kind, and the start of a text, the last turn
    of a dialogue, the files of code (an image is shown as a thumbnail, no words)."""

    def short(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= GLIMPSE_CHARS else text[: GLIMPSE_CHARS - 1] + "…"

    if isinstance(completion, str):
        return {"kind": "text", "glimpse": short(completion)}
    if isinstance(completion, list):
        last = completion[-1] if completion and isinstance(completion[-1], dict) else {}
        said = last.get("message", last.get("content", ""))
        return {"kind": "dialogue", "glimpse": short(f"{last.get('role', '')}: {said}")}
    if isinstance(completion, dict):
        if completion.get("kind") == "image":
            return {"kind": "image", "glimpse": ""}
        files = completion.get("files")
        if isinstance(files, list):
            names = [str(f.get("filename", "")) for f in files if isinstance(f, dict)]
            return {"kind": "code", "glimpse": short(", ".join(names))}
    return {"kind": "text", "glimpse": short(str(completion))}


@dataclass(frozen=True)
class DashboardAnswer:
    """One worker's answer, under the pseudonym this miner knows the worker by."""

    worker: str
    ranking: dict[str, int] | None  # {cid: rank}, 1 best
    scores: dict[str, float] | None  # {cid: score} for a multi-score criterion
    lead_time: float | None  # seconds spent on it
    submitted_at: datetime
    updated_at: datetime

    @property
    def order(self) -> list[str]:
        """The completions best first, by ranking, else by score."""
        if self.ranking:
            return sorted(self.ranking, key=lambda cid: self.ranking[cid])  # type: ignore[index]
        if self.scores:
            return sorted(self.scores, key=lambda cid: -self.scores[cid])  # type: ignore[index]
        return []


@dataclass(frozen=True)
class DashboardFlag:
    """A worker's report that a completion is broken."""

    worker: str
    cid: str
    reason: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DashboardTask:
    id: str
    title: str
    prompt_start: str
    task_type: str
    status: str
    num_results: int
    max_results: int
    expire_at: datetime
    created_at: datetime
    agreement: float | None
    score: float | None = None  # the validator's, as the miner reported it
    # [{"cid", "model", "kind", "glimpse"}], as workers saw them (glimpse: see :func:`glimpse`)
    completions: list[dict[str, str]] = field(default_factory=list)
    answers: list[DashboardAnswer] = field(default_factory=list)
    flags: list[DashboardFlag] = field(default_factory=list)


@dataclass(frozen=True)
class Dashboard:
    hotkey: str
    tasks: list[DashboardTask]
    next_cursor: str | None  # the next (older) page's cursor; None on the last
    matching: int  # tasks matching the filters, over all pages
    total_tasks: int
    open_tasks: int
    total_results: int
    workers: int


def miner_dashboard(
    db: Session,
    miner: Miner,
    limit: int = PAGE_SIZE,
    cursor: str | None = None,
    filters: TaskFilter | None = None,
) -> Dashboard:
    """A page of the miner's tasks, newest first, with answers, flags and agreement; and
    totals over all its tasks."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    now = utcnow()
    matching_where = [Task.miner_id == miner.id, *(filters or TaskFilter()).where(now)]
    query = (
        select(Task, func.substr(Task.prompt, 1, PROMPT_START))
        .options(defer(Task.body), defer(Task.prompt))  # only the completions' ids are shown
        .where(*matching_where)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        created, task_id = _decode_cursor(cursor)
        query = query.where(
            or_(Task.created_at < created, and_(Task.created_at == created, Task.id < task_id))
        )
    rows = db.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    tasks = [task for task, _ in rows]
    starts = {task.id: start or "" for task, start in rows}
    ids = [t.id for t in tasks]
    answers: dict[str, list[DashboardAnswer]] = {t: [] for t in ids}
    answer_rows: dict[str, list[list[float]]] = {t: [] for t in ids}
    flags: dict[str, list[DashboardFlag]] = {t: [] for t in ids}
    by_id = {t.id: t for t in tasks}
    if ids:
        for task_id, data, lead_time, created_at, updated_at, public_id in db.execute(
            select(
                Result.task_id,
                Result.result_data,
                Result.lead_time,
                Result.created_at,
                Result.updated_at,
                Worker.public_id,
            )
            .join(Worker, Worker.id == Result.worker_id)
            .where(Result.task_id.in_(ids))
            .order_by(Result.created_at, Result.id)
        ):
            values = answer_values(data)
            answers[task_id].append(
                DashboardAnswer(
                    worker=worker_pseudonym_for_miner(public_id, miner.hotkey),
                    ranking={cid: int(rank) for cid, rank in values[RANKING].items()}
                    if RANKING in values
                    else None,
                    scores={cid: float(v) for cid, v in values[MULTI_SCORE].items()}
                    if MULTI_SCORE in values
                    else None,
                    lead_time=lead_time,
                    submitted_at=created_at,
                    updated_at=updated_at,
                )
            )
            task = by_id[task_id]
            row = answer_row(criterion(task.criteria), values, [str(c["cid"]) for c in task.completions])
            if row is not None:
                answer_rows[task_id].append(row)
        for task_id, cid, reason, created_at, updated_at, public_id in db.execute(
            select(Flag.task_id, Flag.cid, Flag.reason, Flag.created_at, Flag.updated_at, Worker.public_id)
            .join(Worker, Worker.id == Flag.worker_id)
            .where(Flag.task_id.in_(ids))
            .order_by(Flag.created_at, Flag.id)
        ):
            flags[task_id].append(
                DashboardFlag(
                    worker_pseudonym_for_miner(public_id, miner.hotkey), cid, reason, created_at, updated_at
                )
            )
    agreement = agreements([answer_rows[t] for t in ids])
    mine = Task.miner_id == miner.id
    total_tasks, total_results, open_tasks = db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Task.num_results), 0),
            func.count().filter(Task.num_results < Task.max_results, Task.expire_at > now),
        ).where(mine)
    ).one()
    matching = (
        total_tasks
        if len(matching_where) == 1
        else db.scalar(select(func.count()).select_from(Task).where(*matching_where))
    )
    workers = db.scalar(
        select(func.count(func.distinct(Result.worker_id))).join(Task, Task.id == Result.task_id).where(mine)
    )
    return Dashboard(
        hotkey=miner.hotkey,
        tasks=[
            record(
                DashboardTask,
                t,
                prompt_start=starts[t.id],
                status=task_status(t, now),
                agreement=agreement[i],
                completions=[
                    {"cid": str(c["cid"]), "model": str(c.get("model") or ""), **glimpse(c.get("completion"))}
                    for c in t.completions
                ],
                answers=answers[t.id],
                flags=flags[t.id],
            )
            for i, t in enumerate(tasks)
        ],
        next_cursor=encode_cursor(tasks[-1]) if more and tasks else None,
        matching=int(matching or 0),
        total_tasks=int(total_tasks),
        open_tasks=int(open_tasks),
        total_results=int(total_results),
        workers=int(workers or 0),
    )
