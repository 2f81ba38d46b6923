"""How the workers' answers agree: on a task among all its workers (:func:`agreements`),
and each worker with the rest (:func:`agreement_with_others`).

Both are the validator's own measure, :func:`commons.scoring.multi_rater_kappa` on the
average ranks of each answer (the ``task_agreement`` of :func:`commons.scoring.score_round`
with every rater weighted alike): over ordered pairs of distinct raters ``k ≠ l``,

    kappa = 1 − Σ mean_c (r_kc − r_lc)² / Σ (var_k + var_l + (mean_k − mean_l)²)

the quadratic-weighted Cohen's kappa for two raters, its pairwise (Conger) form for more.
1 when the orders are the same, about 0 for unrelated orders, below 0 for opposed ones
(−1 for two reversed rankings).

A worker's agreement with the rest is that kappa between two raters, the worker's answer
and the consensus of the task's other answers (the mean of their average ranks, ranked
again: :func:`commons.scoring.leave_one_out_consensus`), as the validator measures a
miner against the other miners. It needs one other complete answer.

The answer used is the task's first criterion, as the validator scores it: ranks as
given, multi-scores negated (higher score, better rank; ties share the mean rank). Only
complete answers count (the validator treats a partial one as missing); answers without
any spread (all ties) give 0, as for the validator.

One numpy call covers every task asked about: answers are padded into a
``(answers, tasks, completions)`` array.

>>> round(float(agreements([[[1, 2, 3], [1, 3, 2]]])[0]), 3)
0.5
>>> agreements([[[1, 2]]])
[None]
>>> [[round(k, 2) for k in task] for task in agreement_with_others([[[1, 2, 3], [1, 2, 3], [1, 3, 2]]])]
[[0.86, 0.86, 0.5]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from commons.scoring import average_ranks, leave_one_out_consensus, multi_rater_kappa

RANKING = "ranking"
MULTI_SCORE = "multi-score"

Answers = Sequence[Sequence[Sequence[float]]]


def criterion(criteria: list[Any]) -> str:
    """The criterion the validator scores a task by: its first."""
    return str(criteria[0]["type"]) if criteria else RANKING


def answer_values(result_data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A stored answer's values by criterion type: ``{"ranking": {cid: rank}, …}``."""
    return {item["type"]: item["value"] for item in result_data if isinstance(item.get("value"), dict)}


def answer_row(kind: str, values: dict[str, dict[str, Any]], cids: Sequence[str]) -> list[float] | None:
    """The answer to criterion ``kind`` over ``cids``, lower = better, or None when incomplete."""
    given = values.get(kind)
    if given is None or any(cid not in given for cid in cids):
        return None
    sign = -1.0 if kind == MULTI_SCORE else 1.0
    return [sign * float(given[cid]) for cid in cids]


def _padded(answers: Answers) -> tuple[np.ndarray, np.ndarray]:
    """``answers`` as a ``(answers, tasks, completions)`` array (NaN padding) and the
    ``(tasks, completions)`` mask of each task's completions."""
    counts = [len(rows) for rows in answers]
    width = max(len(row) for rows in answers for row in rows)
    values = np.full((max(counts), len(answers), width), np.nan)
    items = np.zeros((len(answers), width), dtype=bool)
    for t, rows in enumerate(answers):
        if rows:
            values[: len(rows), t, : len(rows[0])] = rows
            items[t, : len(rows[0])] = True
    return values, items


def agreements(answers: Answers) -> list[float | None]:
    """Per task, the validator's multi-rater kappa of its answers; None below two.

    ``answers[t]`` holds task ``t``'s complete answers, each one value per completion,
    lower = better (ranks, or negated scores); tasks may differ in completion count.
    """
    counts = [len(rows) for rows in answers]
    if not answers or max(counts) < 2:
        return [None] * len(answers)
    values, items = _padded(answers)
    kappa = multi_rater_kappa(average_ranks(values, mask=items), mask=items)
    return [float(kappa[t]) if n >= 2 else None for t, n in enumerate(counts)]


def agreement_with_others(answers: Answers) -> list[list[float | None]]:
    """Per task and answer (as ``answers`` lists them), the kappa of that answer with the
    consensus of the task's other answers; None for an answer with no other beside it."""
    counts = [len(rows) for rows in answers]
    if not answers or max(counts) < 2:
        return [[None] * n for n in counts]
    values, items = _padded(answers)
    ranks = average_ranks(values, mask=items)
    present = np.zeros(ranks.shape[:-1])
    for t, n in enumerate(counts):
        present[:n, t] = 1.0
    consensus, _peers = leave_one_out_consensus(np.where(np.isfinite(ranks), ranks, 0.0), present, mask=items)
    pair = np.stack([ranks, average_ranks(consensus, mask=items)])
    kappa = multi_rater_kappa(pair, mask=items)
    return [[float(kappa[k, t]) if n >= 2 else None for k in range(n)] for t, n in enumerate(counts)]
