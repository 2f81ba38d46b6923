"""Dojo's scoring: how miners' rankings become scores, moving scores and chain weights.

A pure, vectorised library over arrays shaped ``(miners, tasks, completions)``. The
validator calls it after a round's deadline, the incentive simulator (``dojo simulate``)
calls the very same functions, and ``docs/scoring.md`` explains every formula with a worked
example and the attacks it was tested against.

Conventions
-----------
- A *round* is ``M`` miners × ``T`` tasks × ``C`` completion slots. Tasks with fewer
  completions are padded: ``n_completions[t]`` says how many slots of task ``t`` are real;
  values in the padding are ignored whatever they are.
- ``submissions[m, t, c]`` is miner ``m``'s answer for completion ``c`` of task ``t``: a
  rank (1 = best) for ranking criteria, or a score (higher = better) for multi-score
  criteria (``higher_is_better``). ``NaN`` means "no value". A miner *answered* a task when
  every real completion carries a finite value; a partial answer counts as missing (the
  protocol asks for one value per completion, and imputing would reward skipping).
- ``ground_truth[t, c]`` is the synthetic rank of completion ``c`` (1 = best), ``NaN``
  where unknown (partial ground truth), or ``None`` for a round without any.
- All agreement is measured on *average ranks* (ties share the mean of the positions they
  span), so ranks, scores and the mean ranks of several workers are treated alike.

Public API
----------
Metrics, batched over every leading axis, items on the last axis, optional item ``mask``::

    average_ranks(x, mask=None) -> ndarray
    spearman_rho(x, y, mask=None) -> ndarray
    kendall_tau_b(x, y, mask=None) -> ndarray
    quadratic_weighted_kappa(a, b, n_categories=None, mask=None) -> ndarray
    multi_rater_kappa(ratings, weights=None, mask=None) -> ndarray
    footrule_distance(x, truth, mask=None) -> ndarray
    kendall_distance(x, truth, mask=None) -> ndarray
    leave_one_out_consensus(ratings, weights, mask=None) -> tuple[ndarray, ndarray]

Scoring a round::

    score_round(submissions, n_completions, ground_truth=None, *, higher_is_better=False,
                reliability=None, params=ScoringParams(), slot_miners=None) -> RoundResult
    window_mean(scores, assigned=None) -> ndarray
    slot_window_mean(scores, slot_miners, n_miners) -> ndarray   (the compact layout's)

Rounds with organic tasks (no ground truth; consensus weighted by the reliability carried
from round to round)::

    score_mixed_round(submissions, n_completions, ground_truth, organic, *, reliability,
                      alpha=RELIABILITY_ALPHA, ...) -> MixedRoundResult(result, measured, carried)
    carry_reliability(previous, measured, alpha) -> dict[str, float]
    weighted_consensus(answers, reliability, higher_is_better=False) -> (mean, consensus_rank)

Aggregation and weights::

    MovingScores(alpha=0.1)
        .update(hotkeys, uids, round_scores) / .sync(uid_to_hotkey)
        .scores() -> dict[str, float]; .uid_scores(n_neurons) -> ndarray
        .weights(n_neurons, rules) -> tuple[list[int], list[int]]   (u16, via template.chain.weights)
        .to_dict() / MovingScores.from_dict(data) / .save(path) / MovingScores.load(path)

Example
-------
>>> import numpy as np
>>> subs = np.array([[[1, 2, 3]], [[1, 2, 3]], [[1, 3, 2]], [[3, 2, 1]]], dtype=float)
>>> result = score_round(subs, n_completions=[3], ground_truth=np.array([[1.0, 2.0, 3.0]]))
>>> [round(float(s), 2) for s in result.scores[:, 0]]
[1.0, 1.0, 0.05, 0.0]

Nothing here raises on odd data (constant rankings, ties, missing answers, a lone miner,
two-completion tasks, absent ground truth): every output is finite and scores are in
``[0, 1]``. Only malformed input (wrong shapes, a negative completion count) raises
``ValueError``.

Modules: ``_metrics`` (the metrics), ``_round`` (:func:`score_round`, its steps and the window means),
``_moving`` (:class:`MovingScores` and its state), ``_organic`` (mixed rounds, carried
reliability, the caller's consensus); each imports only those before it.
"""

from __future__ import annotations

from commons.scoring._metrics import (
    average_ranks,
    footrule_distance,
    kendall_distance,
    kendall_tau_b,
    leave_one_out_consensus,
    multi_rater_kappa,
    quadratic_weighted_kappa,
    spearman_rho,
)
from commons.scoring._moving import STATE_VERSION, MovingScores, StateVersionError
from commons.scoring._organic import (
    RELIABILITY_ALPHA,
    MixedRoundResult,
    carry_reliability,
    score_mixed_round,
    weighted_consensus,
)
from commons.scoring._round import RoundResult, ScoringParams, score_round, slot_window_mean, window_mean

__all__ = [
    "RELIABILITY_ALPHA",
    "STATE_VERSION",
    "MixedRoundResult",
    "MovingScores",
    "RoundResult",
    "ScoringParams",
    "StateVersionError",
    "average_ranks",
    "carry_reliability",
    "footrule_distance",
    "kendall_distance",
    "kendall_tau_b",
    "leave_one_out_consensus",
    "multi_rater_kappa",
    "quadratic_weighted_kappa",
    "score_mixed_round",
    "score_round",
    "slot_window_mean",
    "spearman_rho",
    "weighted_consensus",
    "window_mean",
]
