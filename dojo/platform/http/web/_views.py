"""What each page shows, built from the platform's service modules.

One function per page; each takes an open read session and returns the template's
context, with the page's ``title`` and the ``active`` tab of its menu. Nothing here
writes: changes go through the JSON API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date
from functools import cached_property
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dojo.platform.errors import NotFound
from dojo.platform.http.web._guidelines import criteria_lines, guidelines_for
from dojo.platform.http.web._render import CompletionView, completion_view, shared_turns
from dojo.platform.http.web._templating import short
from dojo.platform.schemas import DraftOut, wire
from dojo.platform.services import dashboard, drafts, queue, team
from dojo.platform.services import keys as key_service
from dojo.platform.services import subscriptions as subscription_service
from dojo.platform.services.agreement import MULTI_SCORE, RANKING, answer_values
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.platform.services.subscriptions import live_subscription
from dojo.platform.storage.models import (
    DONE,
    KEY_KIND_API,
    KEY_KIND_SUBSCRIPTION,
    SKIPPED,
    Miner,
    Result,
    Subscription,
    Task,
    Worker,
)
from template.clock import utcnow
from template.storage import record


@dataclass(frozen=True)
class Badge:
    label: str
    short: str
    hotkey: str = ""


def worker_badge(worker: Worker) -> Badge:
    if worker.address:
        return Badge(worker.address, short(worker.address))
    # Invited workers have no wallet; show the random id they are known by here.
    return Badge(f"invited worker {worker.public_id}", f"worker {worker.public_id[:6]}")


def miner_badge(miner: Miner) -> Badge:
    return Badge(miner.hotkey, short(miner.hotkey), hotkey=miner.hotkey)


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    name: str
    prefix: str
    miner: str
    created_at: Any
    active: bool
    by_invite: bool = False  # an invite link's access: no key to add, none to renew
    pseudonym: str = ""  # the id this team's miner knows the worker by
    message: str | None = None  # what the miner tells its team


def subscription_rows(db: Session, worker: Worker) -> list[SubscriptionRow]:
    notes = {n.miner_hotkey: n.message for n in team.team_notes(db, worker)}
    return [
        SubscriptionRow(
            id=s.id,
            name=s.name,
            prefix=f"{s.key_prefix}…" if s.key_prefix else "invite link",
            miner=s.miner_hotkey,
            created_at=s.created_at,
            active=s.active,
            by_invite=s.key_prefix is None,
            pseudonym=worker_pseudonym_for_miner(worker.public_id, s.miner_hotkey),
            message=notes.get(s.miner_hotkey),
        )
        for s in subscription_service.list_subscriptions(db, worker)
    ]


def keys_page(db: Session, worker: Worker) -> dict[str, Any]:
    """The worker's subscriptions, the keys and invites that give it its miners' tasks."""
    return {"title": "Subscription keys", "active": "keys", "subscriptions": subscription_rows(db, worker)}


@dataclass(frozen=True)
class Progress:
    done_today: int
    done_total: int
    available: int
    skipped_total: int = 0
    time_total: float = 0.0
    time_median: float | None = None


def _progress(
    db: Session, worker: Worker, tasks: list[subscription_service.WorkerTaskSummary] | None = None
) -> Progress:
    """The worker's day, and how many of ``tasks`` (default: its list now) wait for it."""
    p = queue.worker_progress(db, worker)
    return Progress(
        done_today=p.results_today,
        done_total=p.results_total,
        available=_workable(subscription_service.worker_tasks(db, worker) if tasks is None else tasks),
        skipped_total=p.skipped_total,
        time_total=p.lead_time_total,
        time_median=p.lead_time_median,
    )


def _workable(tasks: list[subscription_service.WorkerTaskSummary]) -> int:
    """How many of the listed tasks wait for an answer from this worker."""
    return sum(1 for t in tasks if t.status == "IN_PROGRESS" and t.my_status not in (DONE, SKIPPED))


# What the list says of a task the worker cannot answer now (only an answered task of
# the worker's can be closed and still listed, or any with include_closed).
TASK_STATE_WORDS = {"HELD_BY_OTHERS": "held by others", "COMPLETED": "full", "EXPIRED": "expired"}


@dataclass(frozen=True)
class WorkerTaskRow:
    id: str
    title: str
    kind: str
    num_results: int
    max_results: int
    expire_at: Any
    my_status: str | None  # "held" (a live hold of this worker's), "done", "skipped" or None
    state: str  # "open", or why nobody new can answer: "held by others", "full", "expired"
    prompt_start: str = ""


def task_list_page(db: Session, worker: Worker) -> dict[str, Any]:
    """The tasks this worker can work now (the service leaves out the others) and its day."""
    subs = subscription_service.list_subscriptions(db, worker)
    tasks = subscription_service.worker_tasks(db, worker)
    rows = [
        record(WorkerTaskRow, t, kind=_kind(t.task_type), state=TASK_STATE_WORDS.get(t.status, "open"))
        for t in tasks
    ]
    return {
        "title": "Tasks",
        "active": "tasks",
        "tasks": rows,
        "subscriptions_count": sum(1 for s in subs if s.active),
        "progress": _progress(db, worker, tasks),
        "notes": team.team_notes(db, worker),
    }


def _kind(task_type: str) -> str:
    return task_type.replace("_", " ").capitalize() if task_type else "Task"


def _number(value: Any) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def _criteria(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    criteria = []
    for c in raw:
        if c.get("type") == "multi-score":
            low, high = _number(c["min"]), _number(c["max"])
            whole = isinstance(low, int) and isinstance(high, int)
            step = 1 if whole and high - low >= 2 else (high - low) / 100
            mid = low + (high - low) / 2
            mid = round(mid) if whole else mid
            label = c.get("text") or c.get("label") or c.get("name") or "Score each response"
            criteria.append(
                {"type": "multi-score", "min": low, "max": high, "step": step, "mid": mid, "label": label}
            )
        elif c.get("type") == "ranking":
            criteria.append({"type": "ranking"})
    # The ranking first: it is the main question, and its keys are the page's shortcuts.
    return sorted(criteria, key=lambda c: c["type"] != "ranking")


def _draft_json(draft: drafts.Draft | None) -> str:
    if draft is None:
        return ""
    return json.dumps(wire(draft, DraftOut), separators=(",", ":"))


def task_detail_page(db: Session, worker: Worker, task_id: str) -> dict[str, Any]:
    """The task page: the task as the worker may see it, its earlier answer, and whether it
    can answer now. The page's script claims or extends the hold (POST …/hold) on load."""
    view = subscription_service.worker_task(db, worker, task_id)
    completions: list[CompletionView] = [
        completion_view(i, str(c["cid"]), c["completion"], task_id=view.id)
        for i, c in enumerate(view.completions)
    ]
    # A dialogue's turns that every completion shares are the conversation so far, shown
    # once in place of the prompt; each completion then shows its own turns.
    shared = shared_turns(completions)
    conversation = completions[0].turns[:shared] if shared else ()
    if shared:
        completions = [replace(c, turns=c.turns[shared:]) for c in completions]
    by_cid = {c.cid: c for c in completions}
    order = [c.cid for c in completions]
    scores: dict[str, Any] = {}
    for item in view.my_result or []:
        if item.get("type") == "ranking" and set(item["value"]) == set(order):
            order = sorted(order, key=lambda cid: item["value"][cid])
        elif item.get("type") == "multi-score":
            scores = {cid: _number(v) for cid, v in item["value"].items()}
    criteria = _criteria(view.criteria)
    return {
        "title": view.title,
        "active": "tasks",
        # The worker's view of the task, as the API gives it (closed_reason: why it cannot
        # answer now), with what the page words differently.
        "task": view,
        "kind": _kind(view.task_type),
        # The How to judge panel: what better means for this kind of task, and what the
        # task's criteria ask.
        "guidelines": guidelines_for(view.task_type),
        "criteria_lines": criteria_lines(criteria, len(completions)),
        "prompt": view.prompt or view.body,
        "completions": completions,
        "conversation": conversation,
        "completions_by_cid": by_cid,
        "ranking_order": order,
        "criteria": criteria,
        "scores": scores,
        "has_result": view.my_result is not None,
        # The rationale stored with the worker's answer, if it gave one.
        "rationale": db.scalar(
            select(Result.rationale).where(Result.task_id == view.id, Result.worker_id == worker.id)
        )
        or "",
        "flags": subscription_service.my_flags(db, worker, view.id),
        # Keys the browser's draft of this answer (localStorage) to this worker.
        "worker_id": worker.public_id,
        # The draft kept on the platform (another browser's), for the page to take up.
        "draft_json": _draft_json(drafts.get_draft(db, worker, view.id)),
        # The server's clock, so that the page counts the hold down in the server's time.
        "now": utcnow(),
        "progress": _progress(db, worker),
    }


def task_preview_document(db: Session, worker: Worker, task_id: str, label: str) -> str | None:
    """The preview document of response ``label`` (1-based, as the pages number them) of a
    task the worker may see or answered; None when that response has none (or there is no
    such one)."""
    try:
        completions = subscription_service.worker_task(db, worker, task_id).completions
    except NotFound:  # not on the task's team (now): a task it answered is still its to see
        answered = db.scalar(
            select(Task)
            .join(Result, Result.task_id == Task.id)
            .where(Task.id == task_id, Result.worker_id == worker.id)
        )
        if answered is None:
            raise
        completions = answered.completions
    if not label.isdigit() or not 1 <= int(label) <= len(completions):
        return None
    index = int(label) - 1
    completion = completions[index]
    return completion_view(
        index, str(completion["cid"]), completion["completion"], highlight=False
    ).preview_document


def _image_of(completions: list[dict[str, Any]], cid: str) -> tuple[bytes, str]:
    from commons.media import ImageRefused, b64decode, magic_type

    for c in completions:
        value = c.get("completion")
        if str(c.get("cid")) == cid and isinstance(value, dict) and value.get("kind") == "image":
            try:
                data = b64decode(str(value.get("data") or ""))
            except ImageRefused:
                break
            # Checked when the task was created; served only as the type its bytes are.
            media_type = magic_type(data)
            if media_type is None or media_type != value.get("mediaType"):
                break
            return data, media_type
    raise NotFound("no such image in this task")


def task_image_bytes(db: Session, worker: Worker, task_id: str, cid: str) -> tuple[bytes, str]:
    """The bytes and type of an image completion of a task the worker may see, or answered."""
    task = db.scalar(select(Task).where(Task.id == task_id, live_subscription(worker.id)))
    if task is None:
        task = db.scalar(
            select(Task)
            .join(Result, Result.task_id == Task.id)
            .where(Task.id == task_id, Result.worker_id == worker.id)
        )
    if task is None:
        raise NotFound("no such task among your subscriptions")
    return _image_of(task.completions, cid)


def miner_task_image_bytes(db: Session, miner: Miner, task_id: str, cid: str) -> tuple[bytes, str]:
    """The bytes and type of an image completion of one of the miner's tasks."""
    task = db.scalar(select(Task).where(Task.id == task_id, Task.miner_id == miner.id))
    if task is None:
        raise NotFound("no such task of yours")
    return _image_of(task.completions, cid)


@dataclass(frozen=True)
class TaskShown:
    """A service's record of a task as a page shows it: the record's fields read through as
    they are, and what the page words differently as properties (a subclass adds its own)."""

    record: Any

    def __getattr__(self, name: str) -> Any:  # only for the names the row has not itself
        if name == "record":  # not set yet: copy and pickle make the object without __init__
            raise AttributeError(name)
        return getattr(self.record, name)

    @property
    def kind(self) -> str:
        return _kind(self.record.task_type)


def _status_words(status: str) -> str:
    """A task's status (``task_status``) as the pages say it."""
    return STATUS_WORDS.get(status, status.lower())


class HistoryRow(TaskShown):
    """One of the worker's answers (:class:`subscription_service.HistoryEntry`) on its history page."""

    record: subscription_service.HistoryEntry

    @property
    def state(self) -> str:  # "open", "complete" or "expired"
        return _status_words(self.record.task_status)

    @property
    def order(self) -> list[str] | None:
        """The response numbers, best first, as the task page showed them."""
        return _labels_best_first(self.record.ranking, self.record.cids)

    @property
    def score(self) -> float | None:  # the validator's score for the task
        return self.record.validator_score

    @property
    def edited(self) -> bool:
        return self.record.updated_at is not None and self.record.updated_at != self.record.submitted_at


HISTORY_PAGE_SIZE = 50


def _labels_best_first(ranking: dict[str, int] | None, cids: tuple[str, ...]) -> list[str] | None:
    """``{cid: rank}`` as the response numbers the worker saw (1 for the task's first completion)."""
    if not ranking or not cids:
        return None
    label = {cid: str(i + 1) for i, cid in enumerate(cids)}
    return [label.get(cid, "?") for cid in sorted(ranking, key=lambda cid: ranking[cid])]


def history_page(db: Session, worker: Worker, page: int) -> dict[str, Any]:
    """The worker's own submissions, newest first, a page at a time, and its totals."""
    entries, total = subscription_service.history(
        db, worker, limit=HISTORY_PAGE_SIZE, offset=(page - 1) * HISTORY_PAGE_SIZE
    )
    rows = [HistoryRow(e) for e in entries]
    pages = max(1, -(-total // HISTORY_PAGE_SIZE))
    return {
        "title": "Your work",
        "active": "history",
        "results": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "invited": worker.address is None,
        "has_recovery_code": worker.recovery_hash is not None,
        "progress": _progress(db, worker),
        "summary": team.worker_summary(db, worker),
    }


def answer_page(db: Session, worker: Worker, task_id: str) -> dict[str, Any]:
    """One of the worker's own answers, read-only: the task as it was shown, the
    responses best first as the worker ranked them, and how the answer compares. Any task
    the worker answered, also of a team it has left (the answer is its own); 404 else."""
    row = db.execute(
        select(Result, Task)
        .join(Task, Task.id == Result.task_id)
        .where(Result.task_id == task_id, Result.worker_id == worker.id)
    ).first()
    if row is None:
        raise NotFound("you have not answered this task; your answers are under Your work")
    result, task = row
    completions = [
        completion_view(i, str(c["cid"]), c["completion"], task_id=task.id)
        for i, c in enumerate(task.completions)
    ]
    values = answer_values(result.result_data)
    ranking = values.get(RANKING)
    scores = values.get(MULTI_SCORE) or {}
    if ranking and set(ranking) == {c.cid for c in completions}:
        shown = sorted(completions, key=lambda c: ranking[c.cid])
    elif scores:
        shown = sorted(completions, key=lambda c: -float(scores.get(c.cid, 0)))
    else:
        shown = completions
    feedback = team.answer_feedback(db, worker, [task.id]).get(task.id)
    status = subscription_service.task_status(task)
    on_team = db.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(Subscription.worker_id == worker.id, Subscription.miner_id == task.miner_id)
    )
    return {
        "title": "Your answer",
        "active": "history",
        "task": task,
        "kind": _kind(task.task_type),
        "prompt": task.prompt or task.body,
        "completions": shown,
        "ranking": ranking,
        "scores": {cid: _number(v) for cid, v in scores.items()},
        "state": _status_words(status),
        "result": result,
        "order": _labels_best_first(ranking, tuple(c.cid for c in completions)),
        "agreement": feedback.agreement if feedback else None,
        "score": feedback.score if feedback else None,
        # Before the deadline a worker on the team may resubmit (the task page replaces the answer).
        "can_change": bool(on_team) and task.expire_at > utcnow(),
        "on_team": bool(on_team),
    }


@dataclass(frozen=True)
class KeyRow:
    id: int
    prefix: str
    created_at: Any
    last_used_at: Any
    disabled: bool
    disabled_at: Any = None
    in_use: bool = False  # the API key the miner used last, lately: the one it runs with
    subscribers: int = 0  # workers on the team by this subscription key


def _keys(db: Session, miner: Miner, kind: str) -> list[KeyRow]:
    """The miner's keys of one kind, active ones first (oldest first within each); the API
    key the miner used last (within a day) is marked as the one it runs with."""
    listed = key_service.list_keys(db, miner, kind)
    subscribers: dict[int, int] = {}
    if kind == KEY_KIND_SUBSCRIPTION and listed:
        subscribers = {
            key_id: count
            for key_id, count in db.execute(
                select(Subscription.key_id, func.count())
                .where(Subscription.miner_id == miner.id, Subscription.key_id.is_not(None))
                .group_by(Subscription.key_id)
            )
            if key_id is not None  # as the query says: the type of the column cannot
        }
    in_use = key_service.key_in_use(listed)
    rows = [
        KeyRow(
            k.id,
            k.prefix,
            k.created_at,
            k.last_used_at,
            k.disabled_at is not None,
            k.disabled_at,
            in_use=k.id == in_use,
            subscribers=subscribers.get(k.id, 0),
        )
        for k in listed
    ]
    return sorted(rows, key=lambda k: k.disabled)


STATUS_WORDS = {"IN_PROGRESS": "open", "COMPLETED": "complete", "EXPIRED": "expired"}


class MinerTaskRow(TaskShown):
    """A task of the miner's (:class:`dashboard.DashboardTask`) on its dashboard."""

    record: dashboard.DashboardTask

    @property
    def status(self) -> str:
        return _status_words(self.record.status)

    @cached_property
    def models(self) -> dict[str, str]:
        """cid -> model name."""
        return {c["cid"]: c["model"] for c in self.record.completions}

    @cached_property
    def numbers(self) -> dict[str, int]:
        """cid -> the response number the workers saw (1 first)."""
        return {c["cid"]: i + 1 for i, c in enumerate(self.record.completions)}

    @cached_property
    def glimpses(self) -> dict[str, dict[str, str]]:
        """cid -> {"kind", "glimpse"}."""
        return {c["cid"]: {"kind": c["kind"], "glimpse": c["glimpse"]} for c in self.record.completions}


@dataclass(frozen=True)
class MinerTotals:
    tasks: int
    open: int
    results: int
    workers: int
    agreement: float | None


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def miner_dashboard_page(
    db: Session,
    miner: Miner,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of the miner's tasks (filters from the page's form; a value the form could
    not have sent is no filter), its totals, keys and team link."""
    filters = dashboard.TaskFilter(
        state=status if status in dashboard.STATES else None, since=_day(since), until=_day(until)
    )
    board = dashboard.miner_dashboard(db, miner, cursor=cursor, filters=filters)
    rows = [MinerTaskRow(t) for t in board.tasks]
    measured = [t.agreement for t in rows if t.agreement is not None]
    totals = MinerTotals(
        tasks=board.total_tasks,
        open=board.open_tasks,
        results=board.total_results,
        workers=board.workers,
        agreement=sum(measured) / len(measured) if measured else None,
    )
    chosen = {
        "status": filters.state or "",
        "since": filters.since.isoformat() if filters.since else "",
        "until": filters.until.isoformat() if filters.until else "",
    }
    return {
        "title": "Miner dashboard",
        "active": "miner",
        "tasks": rows,
        "totals": totals,
        "filters": chosen,
        "filtered": any(chosen.values()),
        "matching": board.matching,
        "next_cursor": board.next_cursor,
        "first_page": not cursor,
        "api_keys": _keys(db, miner, KEY_KIND_API),
        "subscription_keys": _keys(db, miner, KEY_KIND_SUBSCRIPTION),
    }


def team_page(db: Session, miner: Miner) -> dict[str, Any]:
    """The miner's team: its workers and their figures, its invites, its message."""
    view = team.team_view(db, miner)
    return {
        "title": "Your team",
        "active": "team",
        "team": view,
        "members": [m for m in view.members if m.member],
        "former": [m for m in view.members if not m.member],
    }
