"""What each page shows, built from the platform's service modules.

One function per page; each takes an open read session and returns the template's
context. Nothing here writes: changes go through the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dojo.platform import dashboard, queue
from dojo.platform import keys as key_service
from dojo.platform import subscriptions as subscription_service
from dojo.platform.models import DONE, KEY_KIND_API, KEY_KIND_SUBSCRIPTION, SKIPPED, Miner, Worker, utcnow
from dojo.platform.web._render import CompletionView, completion_view
from dojo.platform.web._templating import short


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


def subscription_rows(db: Session, worker: Worker) -> list[SubscriptionRow]:
    return [
        SubscriptionRow(
            id=s.id,
            name=s.name,
            prefix=f"{s.key_prefix}…" if s.key_prefix else "invite link",
            miner=s.miner_hotkey,
            created_at=s.created_at,
            active=s.active,
        )
        for s in subscription_service.list_subscriptions(db, worker)
    ]


@dataclass(frozen=True)
class Progress:
    done_today: int
    done_total: int
    available: int


def _progress(db: Session, worker: Worker, available: int) -> Progress:
    p = queue.worker_progress(db, worker)
    return Progress(done_today=p.results_today, done_total=p.results_total, available=available)


@dataclass(frozen=True)
class TaskRow:
    id: str
    title: str
    kind: str
    num_results: int
    max_results: int
    expire_at: Any
    my_status: str | None
    full: bool


def task_list(db: Session, worker: Worker) -> dict[str, Any]:
    subs = subscription_service.list_subscriptions(db, worker)
    rows = [
        TaskRow(
            id=t.id,
            title=t.title,
            kind=_kind(t.task_type),
            num_results=t.num_results,
            max_results=t.max_results,
            expire_at=t.expire_at,
            my_status=t.my_status if t.my_status in (DONE, SKIPPED) else None,
            full=t.num_results >= t.max_results,
        )
        for t in subscription_service.worker_tasks(db, worker)
    ]
    available = sum(1 for t in rows if t.my_status is None and not t.full)
    return {
        "tasks": rows,
        "subscriptions_count": sum(1 for s in subs if s.active),
        "progress": _progress(db, worker, available),
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


@dataclass(frozen=True)
class TaskHeader:
    id: str
    title: str
    prompt: str
    kind: str
    num_results: int
    max_results: int
    expire_at: Any
    closed: str | None


def task_page(db: Session, worker: Worker, task_id: str) -> dict[str, Any]:
    view = subscription_service.worker_task(db, worker, task_id)
    completions: list[CompletionView] = [
        completion_view(i, str(c["cid"]), c["completion"]) for i, c in enumerate(view.completions)
    ]
    by_cid = {c.cid: c for c in completions}
    order = [c.cid for c in completions]
    scores: dict[str, Any] = {}
    for item in view.my_result or []:
        if item.get("type") == "ranking" and set(item["value"]) == set(order):
            order = sorted(order, key=lambda cid: item["value"][cid])
        elif item.get("type") == "multi-score":
            scores = {cid: _number(v) for cid, v in item["value"].items()}
    closed = None
    if view.expire_at <= utcnow():
        closed = "its deadline has passed"
    elif view.num_results >= view.max_results and view.my_result is None:
        closed = "it has all the results it needs"
    header = TaskHeader(
        id=view.id,
        title=view.title,
        prompt=view.prompt or view.body,
        kind=_kind(view.task_type),
        num_results=view.num_results,
        max_results=view.max_results,
        expire_at=view.expire_at,
        closed=closed,
    )
    available = sum(
        1
        for t in subscription_service.worker_tasks(db, worker)
        if t.my_status not in (DONE, SKIPPED) and t.num_results < t.max_results
    )
    return {
        "task": header,
        "completions": completions,
        "completions_by_cid": by_cid,
        "ranking_order": order,
        "criteria": _criteria(view.criteria),
        "scores": scores,
        "has_result": view.my_result is not None,
        "progress": _progress(db, worker, available),
    }


@dataclass(frozen=True)
class KeyRow:
    id: int
    prefix: str
    created_at: Any
    last_used_at: Any
    disabled: bool


def _keys(db: Session, miner: Miner, kind: str) -> list[KeyRow]:
    return [
        KeyRow(k.id, k.prefix, k.created_at, k.last_used_at, k.disabled_at is not None)
        for k in key_service.list_keys(db, miner, kind)
    ]


STATUS_WORDS = {"IN_PROGRESS": "open", "COMPLETED": "complete", "EXPIRED": "expired"}


@dataclass(frozen=True)
class MinerTaskRow:
    id: str
    title: str
    kind: str
    status: str
    num_results: int
    max_results: int
    expire_at: Any
    created_at: Any
    agreement: float | None


@dataclass(frozen=True)
class MinerTotals:
    tasks: int
    open: int
    results: int
    workers: int
    agreement: float | None


def miner_dashboard(db: Session, miner: Miner) -> dict[str, Any]:
    board = dashboard.miner_dashboard(db, miner)
    rows = [
        MinerTaskRow(
            id=t.id,
            title=t.title,
            kind=_kind(t.task_type),
            status=STATUS_WORDS.get(t.status, t.status.lower()),
            num_results=t.num_results,
            max_results=t.max_results,
            expire_at=t.expire_at,
            created_at=t.created_at,
            agreement=t.agreement,
        )
        for t in board.tasks
    ]
    measured = [t.agreement for t in rows if t.agreement is not None]
    totals = MinerTotals(
        tasks=board.total_tasks,
        open=sum(1 for t in rows if t.status == "open"),
        results=board.total_results,
        workers=board.workers,
        agreement=sum(measured) / len(measured) if measured else None,
    )
    return {
        "tasks": rows,
        "totals": totals,
        "api_keys": _keys(db, miner, KEY_KIND_API),
        "subscription_keys": _keys(db, miner, KEY_KIND_SUBSCRIPTION),
    }
