"""One scoring round: the collected tasks' answers turned into arrays and scored.

Each miner's answer to a task is the mean rank its valid workers gave each completion
(for a multi-score criterion, the mean score, higher better), in the task's own
completion order. Every miner assigned a task is in the round: one that refused it or
returned no valid result has no answer there, and :func:`commons.scoring.score_round`
scores a missing answer 0. Pure and CPU-bound: the neuron runs it in a thread.
"""

from __future__ import annotations

import numpy as np

from commons.scoring import score_round, slot_window_mean
from dojo.validator.store import RoundAssignment, RoundInputs, RoundScores, RoundTask, TaskMinerScore


def _answer(task: RoundTask, assignment: RoundAssignment) -> tuple[list[float] | None, int]:
    """The miner's answer in the task's completion order, and how many workers made it."""
    kind = _criterion(task)
    rows = [r.values for r in assignment.results if r.criteria_type == kind]
    if not rows:
        return None, 0
    matrix = np.array([[row[cid] for cid in task.completion_ids] for row in rows], dtype=np.float64)
    return matrix.mean(axis=0).tolist(), len(rows)


def _criterion(task: RoundTask) -> str:
    return str(task.criteria[0]["type"]) if task.criteria else "ranking"


def score_inputs(inputs: RoundInputs) -> RoundScores:
    """Score a round in the compact layout (``score_round(slot_miners=...)``): slot ``k``
    of task ``t`` is the ``k``-th miner assigned it, so the arrays grow with the miners per
    task, not with every miner of the subnet."""
    tasks = inputs.tasks
    hotkeys = sorted({a.miner_hotkey for a in inputs.assignments})
    miner_index = {h: i for i, h in enumerate(hotkeys)}
    task_index = {t.task_id: i for i, t in enumerate(tasks)}
    if not hotkeys or not tasks:
        return RoundScores(inputs.round_id, [], {t.task_id: (0.0, 0.0) for t in tasks}, {})
    per_task: dict[int, list[RoundAssignment]] = {}
    for a in inputs.assignments:
        per_task.setdefault(task_index[a.task_id], []).append(a)
    n_slots = max(len(v) for v in per_task.values())
    width = max(len(t.completion_ids) for t in tasks)
    n_t = len(tasks)
    submissions = np.full((n_slots, n_t, width), np.nan)
    slot_miners = np.full((n_slots, n_t), -1, dtype=np.int64)
    ground_truth = np.full((n_t, width), np.nan)
    n_completions = np.array([len(t.completion_ids) for t in tasks], dtype=np.int64)
    higher_is_better = np.array([_criterion(t) == "multi-score" for t in tasks], dtype=bool)
    for t, task in enumerate(tasks):
        for c, rank in enumerate(task.ground_truth):
            if rank is not None:
                ground_truth[t, c] = rank
    placed: list[tuple[RoundAssignment, int, int, list[float] | None, int]] = []
    uids: dict[str, int] = {}
    for t, assigned in per_task.items():
        for k, a in enumerate(assigned):
            slot_miners[k, t] = miner_index[a.miner_hotkey]
            uids[a.miner_hotkey] = a.miner_uid
            answer, n_workers = _answer(tasks[t], a)
            if answer is not None:
                submissions[k, t, : len(answer)] = answer
            placed.append((a, k, t, answer, n_workers))
    result = score_round(
        submissions,
        n_completions,
        ground_truth if np.isfinite(ground_truth).any() else None,
        higher_is_better=higher_is_better,
        slot_miners=slot_miners,
        reliability=np.ones(len(hotkeys)),
    )
    per_miner = slot_window_mean(result.scores, slot_miners, len(hotkeys))
    task_scores = [
        TaskMinerScore(
            task_id=a.task_id,
            assignment_id=a.assignment_id,
            miner_hotkey=a.miner_hotkey,
            miner_uid=a.miner_uid,
            answered=bool(result.answered[k, t]),
            score=float(result.scores[k, t]),
            agreement=float(result.agreement[k, t]),
            kappa=float(result.kappa[k, t]),
            rho_consensus=float(result.rho_consensus[k, t]),
            rho_ground_truth=float(result.rho_ground_truth[k, t]),
            distance=float(result.distance[k, t]),
            answer=answer,
            n_workers=n_workers,
        )
        for a, k, t, answer, n_workers in placed
    ]
    return RoundScores(
        round_id=inputs.round_id,
        task_scores=task_scores,
        task_agreement={
            task.task_id: (float(result.task_agreement[t]), float(result.consensus_trust[t]))
            for t, task in enumerate(tasks)
        },
        miner_round_scores={h: (uids[h], float(per_miner[miner_index[h]])) for h in hotkeys},
    )
