"""The miner dashboard: the miner's tasks with results collected and agreement per task.

Agreement is Kendall's coefficient of concordance W over the workers' answers to a task,
with the correction for ties:

    W = 12 S / (m² (n³ − n) − m Σᵢ Tᵢ),   S = Σⱼ (Rⱼ − R̄)²,   Tᵢ = Σ_g (t_g³ − t_g)

for m workers ranking n completions, Rⱼ the sum of the ranks completion j received and t_g
the sizes of the tie groups in worker i's ranks. W is 1 when every worker gave the same
order and near 0 when the orders are unrelated. Rankings are used as given; multi-scores
are turned into ranks (higher score, better rank; ties averaged). Fewer than two results,
or answers that are all ties, give no agreement (``None``).

>>> round(kendalls_w([[1, 2, 3], [1, 2, 3]]), 3)
1.0
>>> round(kendalls_w([[1, 2, 3], [3, 2, 1]]), 3)
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dojo.platform.models import Miner, Result, Task
from dojo.platform.subscriptions import task_status


def kendalls_w(ranks: Sequence[Sequence[float]]) -> float | None:
    """Kendall's W (tie-corrected) of an m×n matrix of ranks; None where undefined."""
    matrix = np.asarray(ranks, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 2:
        return None
    m, n = matrix.shape
    column_sums = matrix.sum(axis=0)
    s = float(((column_sums - column_sums.mean()) ** 2).sum())
    ties = 0.0
    for row in matrix:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    denominator = m**2 * (n**3 - n) - m * ties
    if denominator <= 0:
        return None
    return max(0.0, min(1.0, 12 * s / denominator))


def _ranks_of(task: Task, result_data: list[dict[str, Any]]) -> list[float] | None:
    cids = [c["cid"] for c in task.completions]
    by_type = {item["type"]: item["value"] for item in result_data}
    if "ranking" in by_type:
        return [float(by_type["ranking"][cid]) for cid in cids]
    for kind, value in by_type.items():
        if kind != "ranking":
            return list(rankdata([-float(value[cid]) for cid in cids]))
    return None


def task_agreement(task: Task, results: Sequence[list[dict[str, Any]]]) -> float | None:
    ranks = [r for r in (_ranks_of(task, data) for data in results) if r is not None]
    return kendalls_w(ranks)


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


@dataclass(frozen=True)
class Dashboard:
    hotkey: str
    tasks: list[DashboardTask]
    total_tasks: int
    total_results: int
    workers: int


def miner_dashboard(db: Session, miner: Miner, limit: int = 100) -> Dashboard:
    """The miner's latest ``limit`` tasks with counts and agreement, and totals over all tasks."""
    tasks = list(
        db.scalars(
            select(Task)
            .where(Task.miner_id == miner.id)
            .order_by(Task.created_at.desc(), Task.id)
            .limit(limit)
        )
    )
    results: dict[str, list[list[dict[str, Any]]]] = {t.id: [] for t in tasks}
    if tasks:
        for task_id, data in db.execute(
            select(Result.task_id, Result.result_data).where(Result.task_id.in_(list(results)))
        ):
            results[task_id].append(data)
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
                agreement=task_agreement(t, results[t.id]),
            )
            for t in tasks
        ],
        total_tasks=int(total_tasks),
        total_results=int(total_results),
        workers=int(workers or 0),
    )
