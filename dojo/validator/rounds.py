"""One scoring round: the collected tasks' answers turned into arrays and scored.

Each miner's answer to a task is the mean rank its valid workers gave each completion
(for a multi-score criterion, the mean score, higher better), in the task's own
completion order. Every miner assigned a task is in the round: one that refused it or
returned no valid result has no answer there, and :func:`commons.scoring.score_round`
scores a missing answer 0. Pure and CPU-bound: the neuron runs it in a thread.

Organic tasks (an outside caller's, no ground truth) are scored by consensus alone, weighted
by each miner's reliability measured on synthetic tasks and carried from round to round
(:func:`commons.scoring.score_mixed_round`); each one's caller gets the reliability-weighted
consensus of the miners' answers (:func:`organic_result`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from commons.scoring import score_mixed_round, slot_window_mean, weighted_consensus
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
    organic = np.array([t.organic for t in tasks], dtype=bool)
    carried_in = np.array([inputs.reliability.get(h, np.nan) for h in hotkeys], dtype=np.float64)
    mixed = score_mixed_round(
        submissions,
        n_completions,
        ground_truth if np.isfinite(ground_truth).any() else None,
        organic,
        reliability=carried_in,
        higher_is_better=higher_is_better,
        slot_miners=slot_miners,
    )
    result = mixed.result
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
        reliability={
            h: (uids[h], float(mixed.carried[miner_index[h]]))
            for h in hotkeys
            if np.isfinite(mixed.carried[miner_index[h]])
        },
        organic_results={
            task.task_id: organic_result(
                task,
                per_task.get(t, []),
                {h: float(np.nan_to_num(mixed.carried[i])) for h, i in miner_index.items()},
                float(result.task_agreement[t]),
            )
            for t, task in enumerate(tasks)
            if task.organic
        },
    )


def organic_result(
    task: RoundTask, assigned: list[RoundAssignment], reliability: dict[str, float], agreement: float
) -> dict[str, Any] | None:
    """What an organic task's caller gets, in the task's completion ids (None when no miner
    answered): the consensus ranking, each completion's reliability-weighted mean and the
    spread of the workers' values around it, the agreement, the counts, and each worker's
    answer under a pseudonym of this task only."""
    kind = _criterion(task)
    higher = kind == "multi-score"
    answering = [(a, rows) for a in assigned if (rows := [r for r in a.results if r.criteria_type == kind])]
    if not answering:
        return None
    cids = task.completion_ids
    answers = np.array([[np.mean([r.values[c] for r in rows]) for c in cids] for _, rows in answering])
    weights = np.array([reliability.get(a.miner_hotkey, 0.0) for a, _ in answering])
    mean, rank = weighted_consensus(answers, weights, higher_is_better=higher)
    # Each worker counts its miner's consensus weight shared among that miner's workers.
    scale = (weights / weights.max()) ** 2 if weights.max() > 0 else np.ones(len(answering))
    worker_values, worker_weights, raw = [], [], []
    for (a, rows), w in zip(answering, scale, strict=True):
        for r in rows:
            worker_values.append([r.values[c] for c in cids])
            worker_weights.append(w / len(rows))
            raw.append(
                {
                    "worker": _pseudonym(task.task_id, a.miner_hotkey, r.worker_id),
                    "values": {c: float(r.values[c]) for c in cids},
                    "rationale": r.rationale,
                }
            )
    values = np.array(worker_values)
    ww = np.array(worker_weights)
    ww = ww / ww.sum() if ww.sum() > 0 else np.full(len(ww), 1.0 / len(ww))
    spread = np.sqrt(np.maximum((ww[:, None] * (values - mean[None]) ** 2).sum(axis=0), 0.0))
    order = sorted(range(len(cids)), key=lambda i: (rank[i], -mean[i] if higher else mean[i], i))
    return {
        "criteria_type": kind,
        "ranking": [cids[i] for i in order],
        "completions": [
            {"id": c, "consensus_rank": float(rank[i]), "mean": float(mean[i]), "spread": float(spread[i])}
            for i, c in enumerate(cids)
        ],
        "agreement": agreement,
        "miners": len(answering),
        "workers": len(raw),
        "raw": sorted(raw, key=lambda w: w["worker"]),
    }


def _pseudonym(task_id: str, miner_hotkey: str, worker_id: str) -> str:
    digest = hashlib.sha256(f"{task_id}\x00{miner_hotkey}\x00{worker_id}".encode()).hexdigest()
    return f"w-{digest[:12]}"
