"""The miner dashboard: the miner's tasks, each worker's answer, the flags workers raised on
completions, and how well the workers agree on each task.

Agreement is the validator's own measure of agreement on a task
(:func:`commons.scoring.multi_rater_kappa`, the ``task_agreement`` of
:func:`commons.scoring.score_round` with every rater weighted alike), here with the
miner's workers as the raters: on the average ranks ``r`` of each worker's answer, over
ordered pairs of distinct workers ``k ≠ l``,

    kappa = 1 − Σ mean_c (r_kc − r_lc)² / Σ (var_k + var_l + (mean_k − mean_l)²)

the quadratic-weighted Cohen's kappa for two workers, its pairwise (Conger) form for more.
1 when every worker gave the same order, about 0 for unrelated orders, below 0 for
opposed ones (−1 for two reversed rankings). The answer used is the task's first
criterion, as the validator scores it: ranks as given, multi-scores negated (higher score,
better rank; ties share the mean rank). Only complete answers count (the validator treats
a partial one as missing); fewer than two give no agreement (``None``); answers without
any spread (all ties) give 0, as for the validator.

One numpy call covers every task of the dashboard: answers are padded into a
``(workers, tasks, completions)`` array, so a page of a hundred tasks costs no more Python
than reading its rows.

>>> round(float(agreements([[[1, 2, 3], [1, 3, 2]]])[0]), 3)
0.5
>>> agreements([[[1, 2]]])
[None]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from commons.scoring import average_ranks, multi_rater_kappa
from dojo.platform.auth import worker_pseudonym
from dojo.platform.models import Flag, Miner, Result, Task, Worker
from dojo.platform.subscriptions import task_status

RANKING = "ranking"
MULTI_SCORE = "multi-score"


def agreements(answers: Sequence[Sequence[Sequence[float]]]) -> list[float | None]:
    """Per task, the validator's multi-rater kappa of its answers; None below two.

    ``answers[t]`` holds task ``t``'s complete answers, each one value per completion,
    lower = better (ranks, or negated scores); tasks may differ in completion count.
    """
    counts = [len(rows) for rows in answers]
    if not answers or max(counts) < 2:
        return [None] * len(answers)
    width = max(len(row) for rows in answers for row in rows)
    values = np.full((max(counts), len(answers), width), np.nan)
    items = np.zeros((len(answers), width), dtype=bool)
    for t, rows in enumerate(answers):
        if rows:
            values[: len(rows), t, : len(rows[0])] = rows
            items[t, : len(rows[0])] = True
    kappa = multi_rater_kappa(average_ranks(values, mask=items), mask=items)
    return [float(kappa[t]) if n >= 2 else None for t, n in enumerate(counts)]


def _criterion(task: Task) -> str:
    """The criterion the validator scores a task by: its first."""
    return str(task.criteria[0]["type"]) if task.criteria else RANKING


def _values(result_data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item["value"] for item in result_data if isinstance(item.get("value"), dict)}


def _answer_row(task: Task, values: dict[str, dict[str, Any]]) -> list[float] | None:
    """The answer to the task's first criterion, lower = better, or None when incomplete."""
    kind = _criterion(task)
    given = values.get(kind)
    cids = [str(c["cid"]) for c in task.completions]
    if given is None or any(cid not in given for cid in cids):
        return None
    sign = -1.0 if kind == MULTI_SCORE else 1.0
    return [sign * float(given[cid]) for cid in cids]


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
    task_type: str
    status: str
    num_results: int
    max_results: int
    expire_at: datetime
    created_at: datetime
    agreement: float | None
    completions: list[dict[str, str]] = field(default_factory=list)  # [{"cid", "model"}]
    answers: list[DashboardAnswer] = field(default_factory=list)
    flags: list[DashboardFlag] = field(default_factory=list)


@dataclass(frozen=True)
class Dashboard:
    hotkey: str
    tasks: list[DashboardTask]
    total_tasks: int
    total_results: int
    workers: int


def miner_dashboard(db: Session, miner: Miner, limit: int = 100) -> Dashboard:
    """The miner's latest ``limit`` tasks with answers, flags and agreement, and totals over
    all tasks. A fixed number of queries, whatever the number of tasks and results."""
    tasks = list(
        db.scalars(
            select(Task)
            .options(defer(Task.body), defer(Task.prompt))  # only the completions' ids are shown
            .where(Task.miner_id == miner.id)
            .order_by(Task.created_at.desc(), Task.id)
            .limit(limit)
        )
    )
    ids = [t.id for t in tasks]
    answers: dict[str, list[DashboardAnswer]] = {t: [] for t in ids}
    rows: dict[str, list[list[float]]] = {t: [] for t in ids}
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
            values = _values(data)
            answers[task_id].append(
                DashboardAnswer(
                    worker=worker_pseudonym(public_id, miner.hotkey),
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
            row = _answer_row(by_id[task_id], values)
            if row is not None:
                rows[task_id].append(row)
        for task_id, cid, reason, created_at, updated_at, public_id in db.execute(
            select(Flag.task_id, Flag.cid, Flag.reason, Flag.created_at, Flag.updated_at, Worker.public_id)
            .join(Worker, Worker.id == Flag.worker_id)
            .where(Flag.task_id.in_(ids))
            .order_by(Flag.created_at, Flag.id)
        ):
            flags[task_id].append(
                DashboardFlag(worker_pseudonym(public_id, miner.hotkey), cid, reason, created_at, updated_at)
            )
    agreement = agreements([rows[t] for t in ids])
    total_tasks, total_results = db.execute(
        select(func.count(), func.coalesce(func.sum(Task.num_results), 0)).where(Task.miner_id == miner.id)
    ).one()
    workers = db.scalar(
        select(func.count(func.distinct(Result.worker_id)))
        .join(Task, Task.id == Result.task_id)
        .where(Task.miner_id == miner.id)
    )
    return Dashboard(
        hotkey=miner.hotkey,
        tasks=[
            DashboardTask(
                id=t.id,
                title=t.title,
                task_type=t.task_type,
                status=task_status(t),
                num_results=t.num_results,
                max_results=t.max_results,
                expire_at=t.expire_at,
                created_at=t.created_at,
                agreement=agreement[i],
                completions=[
                    {"cid": str(c["cid"]), "model": str(c.get("model") or "")} for c in t.completions
                ],
                answers=answers[t.id],
                flags=flags[t.id],
            )
            for i, t in enumerate(tasks)
        ],
        total_tasks=int(total_tasks),
        total_results=int(total_results),
        workers=int(workers or 0),
    )
