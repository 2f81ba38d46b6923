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
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from template.chain.weights import WeightRules, weights_for_chain

__all__ = [
    "STATE_VERSION",
    "MovingScores",
    "RoundResult",
    "ScoringParams",
    "StateVersionError",
    "average_ranks",
    "footrule_distance",
    "kendall_distance",
    "kendall_tau_b",
    "leave_one_out_consensus",
    "multi_rater_kappa",
    "quadratic_weighted_kappa",
    "score_round",
    "slot_window_mean",
    "spearman_rho",
    "window_mean",
]

_EPS = 1e-12


# --------------------------------------------------------------------------- helpers


def _valid(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    valid = np.isfinite(x)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    return valid


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``|den| > eps``, else 0 (never a warning, never NaN)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=np.abs(den) > _EPS)
    return out


def _rowsum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis (einsum: several times faster than ``sum`` on short rows)."""
    return np.einsum("...c->...", x)


def _rowdot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("...c,...c->...", x, y)


def _ranks(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Average ranks of ``x`` among the valid items of the last axis; 0 where invalid.

    ``rank_i = Σ_j [x_j < x_i] + (Σ_j [x_j = x_i] + 1) / 2 = (Σ_j ([x_j < x_i] + [x_j ≤ x_i]) + 1) / 2``
    over valid ``j`` (``j = i`` included). One pass per completion slot with a small-integer
    counter: for the handful of completions of a task this beats sorting and needs no
    ``C × C`` array.
    """
    xv = np.where(valid, x, np.inf)
    counter = np.zeros(xv.shape, dtype=np.uint8 if xv.shape[-1] < 127 else np.uint32)
    for j in range(xv.shape[-1]):
        xj = xv[..., j : j + 1]
        np.add(counter, xj < xv, out=counter, casting="unsafe")
        np.add(counter, xj <= xv, out=counter, casting="unsafe")
    out = counter + 1.0
    out *= 0.5 * valid
    return out


def _moments(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Count, means, centred cross- and self-products of x and y over the valid items."""
    v = valid.astype(np.float64)
    n = _rowsum(v)
    x = np.where(valid, x, 0.0)
    y = np.where(valid, y, 0.0)
    mx = _safe_div(_rowdot(x, v), n)
    my = _safe_div(_rowdot(y, v), n)
    dx = x - mx[..., None]
    dx *= v
    dy = y - my[..., None]
    dy *= v
    return n, mx, my, _rowdot(dx, dy), _rowdot(dx, dx), _rowdot(dy, dy)


def _rank_moments(rx: np.ndarray, ry: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_moments` for average ranks over the same valid items: both means are ``(n+1)/2``."""
    v = valid.astype(np.float64)
    n = _rowsum(v)
    mean = (n + 1.0) / 2.0
    dx = rx - mean[..., None]
    dx *= v
    dy = ry - mean[..., None]
    dy *= v
    return n, mean, mean, _rowdot(dx, dy), _rowdot(dx, dx), _rowdot(dy, dy)


def _pearson_from(n: np.ndarray, sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray) -> np.ndarray:
    # Ranks are multiples of 1/2, so a constant row has exactly zero spread; the tolerance
    # only guards against arbitrary float input.
    ok = (sxx > 1e-12) & (syy > 1e-12) & (n >= 2)
    return np.clip(_safe_div(sxy, np.sqrt(sxx * syy)) * ok, -1.0, 1.0)


def _kappa_from(
    n: np.ndarray, mx: np.ndarray, my: np.ndarray, sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray
) -> np.ndarray:
    den = sxx + syy + n * (mx - my) ** 2
    return np.clip(_safe_div(2.0 * sxy, den) * (n >= 1), -1.0, 1.0)


def _pearson(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pearson correlation over the valid items; 0 when undefined (n < 2 or a constant)."""
    n, _, _, sxy, sxx, syy = _moments(x, y, valid)
    return _pearson_from(n, sxy, sxx, syy)


def _lin_kappa(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Quadratic-weighted kappa in closed form over the valid items (see the public one)."""
    return _kappa_from(*_moments(a, b, valid))


def _pair_stats(rx: np.ndarray, rt: np.ndarray, both: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pair counts of average ranks ``rx`` against ``rt`` over pairs of ``both``-valid items.

    Returns ``(S, Ux, Ut, D, n)`` over unordered pairs ``i < j``: ``S = Σ sx·st`` with
    ``sx = sign(x_i - x_j)``, ``st = sign(t_i - t_j)``; ``Ux``/``Ut`` the pairs untied in x/t;
    ``D = Σ |sx - st| = Ux + Ut - Σ|sx·st| - S`` (concordant 0, discordant 2, tied on one
    side 1); ``n`` the valid item count. Average ranks doubled are small integers, so the
    C passes run on int8.
    """
    small = np.int8 if rx.shape[-1] <= 60 else np.int32
    x2 = np.rint(2.0 * rx * both).astype(small)
    t2 = np.rint(2.0 * rt * both).astype(small)
    shape = np.broadcast_shapes(x2.shape, t2.shape, both.shape)
    # Each accumulator keeps the shape of what it depends on: the truth's side of a batch
    # of miners is computed once, not once per miner.
    t_shape = np.broadcast_shapes(t2.shape, both.shape)
    s = np.zeros(shape, dtype=np.int16)
    b = np.zeros(shape, dtype=np.int16)
    ux = np.zeros(shape, dtype=np.int16)
    ut = np.zeros(t_shape, dtype=np.int16)
    for j in range(shape[-1]):
        pair = both[..., j : j + 1] & both
        sx = np.sign(x2[..., j : j + 1] - x2) * pair
        st = np.sign(t2[..., j : j + 1] - t2) * pair
        prod = sx * st
        s += prod
        b += np.abs(prod)
        ux += np.abs(sx)
        ut += np.abs(st)
    # Ordered pairs count each unordered pair twice.
    s_, b_, ux_ = (_rowsum(a) / 2.0 for a in (s, b, ux))
    ut_ = np.broadcast_to(_rowsum(ut) / 2.0, s_.shape)
    n = np.broadcast_to(_rowsum(both.astype(np.float64)), s_.shape)
    return s_, ux_, ut_, ux_ + ut_ - b_ - s_, n


def _tau_from(s: np.ndarray, ux: np.ndarray, ut: np.ndarray) -> np.ndarray:
    return np.clip(_safe_div(s, np.sqrt(ux * ut)), -1.0, 1.0)


def _kdist_from(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.clip(_safe_div(d, n * (n - 1.0)), 0.0, 1.0)


# --------------------------------------------------------------------------- metrics


def average_ranks(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Average ranks along the last axis, 1 = smallest; ``NaN`` where an item is not valid.

    ``rank_i = #{j : x_j < x_i} + (#{j : x_j = x_i} + 1) / 2`` over the valid items ``j``
    (finite and inside ``mask``), which is ``scipy.stats.rankdata(method="average")``.

    Edge cases: ties share the mean of the positions they span (``[5, 5, 1] -> [2.5,
    2.5, 1]``); a row with no valid item is all NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    valid = _valid(x, mask)
    return np.where(valid, _ranks(x, valid), np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Spearman's rank correlation along the last axis, over items valid in both.

    ``rho = cov(R(x), R(y)) / (sd(R(x)) · sd(R(y)))`` with ``R`` the average ranks among the
    items valid in both ``x`` and ``y`` (Pearson on average ranks, so ties are handled as
    in ``scipy.stats.spearmanr``). In ``[-1, 1]``; symmetric; unchanged by any strictly
    increasing transform of either argument.

    Edge cases: fewer than 2 common items, or a constant ``x`` or ``y`` (scipy returns NaN
    there) give 0, "no evidence of association".
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    valid = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    return _pearson(_ranks(x, valid), _ranks(y, valid), valid)


def kendall_tau_b(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Kendall's tau-b along the last axis, over items valid in both.

    With ``P = Σ_{i<j} sign(x_i - x_j) · sign(y_i - y_j)``, ``n0 = n(n-1)/2`` pairs,
    ``n1``/``n2`` the pairs tied in ``x``/``y``::

        tau_b = P / sqrt((n0 - n1) · (n0 - n2))

    as ``scipy.stats.kendalltau`` (variant "b"). In ``[-1, 1]``; symmetric; invariant
    under strictly increasing transforms.

    Edge cases: fewer than 2 items or a constant argument give 0 (scipy: NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    valid = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    s, ux, uy, _, _ = _pair_stats(_ranks(x, valid), _ranks(y, valid), valid)
    return _tau_from(s, ux, uy)


def quadratic_weighted_kappa(
    a: np.ndarray,
    b: np.ndarray,
    n_categories: int | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Cohen's kappa with quadratic weights between two raters, along the last axis.

    The raters put each item into one of ``K`` ordered categories ``0 .. K-1``. With the
    observed joint distribution ``O``, the product of the raters' marginals ``E`` and
    weights ``w_ij = (i - j)² / (K - 1)²``::

        kappa = 1 - Σ w_ij O_ij / Σ w_ij E_ij
              = 2 cov(a, b) / (var a + var b + (mean a - mean b)²)

    The second, closed form (population moments; Lin's concordance coefficient) is what is
    computed: it needs no ``K × K`` table, and it is exactly sklearn's
    ``cohen_kappa_score(a, b, weights="quadratic", labels=range(K))`` because the full,
    explicit label set keeps unused categories at their true distance. ``n_categories``
    only validates that every value is a category index ``0 .. K-1``; any equally spaced
    labels give the same kappa (it is invariant under one affine relabelling of both raters).

    In ``[-1, 1]``, symmetric. Edge cases: no valid item, or both raters constant on the
    same category (``0/0`` in the formula, NaN in sklearn), give 0; one constant rater
    gives ``2·0/… = 0`` when it sits at the other's mean, and below 0 otherwise.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    valid = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    if n_categories is not None:
        for name, values in (("a", a), ("b", b)):
            v = values[valid]
            if v.size and (np.any(v < 0) or np.any(v > n_categories - 1) or np.any(v != np.round(v))):
                raise ValueError(
                    f"{name} holds values that are not category indices 0..{n_categories - 1}; "
                    "map labels to their index first"
                )
    return _lin_kappa(a, b, valid)


def _items(r: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The items of each row: ``mask`` if given, else those some rater has a value for."""
    if mask is None:
        return np.any(np.isfinite(r), axis=0)
    return np.broadcast_to(np.asarray(mask, dtype=bool), r.shape[1:])


def multi_rater_kappa(
    ratings: np.ndarray,
    weights: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Quadratic-weighted kappa among many raters: the agreement of a task.

    ``ratings`` has raters on axis 0 and items on the last axis: ``(R, ..., C)``; the result
    has shape ``ratings.shape[1:-1]``. Rater ``k`` counts with weight ``w_k ≥ 0`` (0 or a
    non-finite rating = absent). Over ordered pairs of distinct raters::

        D_obs = Σ_{k≠l} w_k w_l · mean_c (r_kc - r_lc)²
        D_exp = Σ_{k≠l} w_k w_l · (var_k + var_l + (mean_k - mean_l)²)
        kappa = 1 - D_obs / D_exp

    ``D_exp`` is the disagreement expected by chance given each rater's own marginal, as in
    Cohen's kappa, so for two raters this *is* :func:`quadratic_weighted_kappa`; for more it
    is the pairwise generalisation that averages numerators and denominators (Conger). Both
    sums reduce to per-item weighted moments, so the cost is O(R·C), not O(R²·C).

    The items of a row are ``mask`` (default: those at least one rater rated, so NaN
    padding drops out); a rater takes part in a row only if it rated all of them. Edge cases:
    fewer than two raters with positive weight, or no spread at all, give 0.
    """
    r = np.asarray(ratings, dtype=np.float64)
    items = _items(r, mask)
    complete = np.all(np.isfinite(r) | ~items, axis=-1)
    w = np.ones(r.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.where(complete & np.isfinite(w), np.maximum(w, 0.0), 0.0)
    r = np.where(np.isfinite(r) & items, r, 0.0)
    return _multi_kappa(r, w, _rater_stats(r, items))


def _rater_stats(r: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-rater ``(r², n, mean, var)`` over the valid items; ``r`` is 0 outside them."""
    v = np.asarray(items, dtype=np.float64)
    n = _rowsum(v)
    r2 = r * r
    m = _safe_div(_rowsum(r), n)
    var = np.maximum(_safe_div(_rowsum(r2), n) - m * m, 0.0)
    return r2, n, m, var


def _multi_kappa(r: np.ndarray, w: np.ndarray, stats: tuple[np.ndarray, ...]) -> np.ndarray:
    r2, n, m, var = stats
    big_w = w.sum(axis=0)
    s1 = np.einsum("m...,m...c->...c", w, r)
    s2 = np.einsum("m...,m...c->...c", w, r2)
    d_obs = _safe_div(_rowsum(2.0 * big_w[..., None] * s2 - 2.0 * s1 * s1), n)
    wv = (w * var).sum(axis=0)
    w2v = (w * w * var).sum(axis=0)
    wm = (w * m).sum(axis=0)
    wm2 = (w * m * m).sum(axis=0)
    d_exp = 2.0 * big_w * wv - 2.0 * w2v + 2.0 * (big_w * wm2 - wm * wm)
    two_raters = (w > 0).sum(axis=0) >= 2
    return np.clip((1.0 - _safe_div(d_obs, d_exp)) * two_raters * (d_exp > _EPS), -1.0, 1.0)


def footrule_distance(x: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Normalised Spearman footrule between a ranking and the truth, along the last axis.

    ``d_F = Σ_i |R(x)_i - R(truth)_i| / floor(n² / 2)`` with ``R`` the average ranks among
    the ``n`` items valid in both, and ``floor(n²/2)`` the footrule of a reversed
    permutation, its maximum. In ``[0, 1]``: 0 = same order, 1 = reversed. Unlike rho it
    sees *how far* each item is misplaced, which matters for short or partial rankings.

    Edge cases: ties use average ranks (a tied ranking is the mean of the permutations that
    break its ties, so by convexity it never exceeds the maximum); fewer than 2 items give 0.
    """
    x = np.asarray(x, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    valid = np.isfinite(x) & np.isfinite(truth)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    return _footrule(_ranks(x, valid), _ranks(truth, valid), valid)


def _footrule(rx: np.ndarray, rt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    n = valid.sum(axis=-1)
    return np.clip(_safe_div((np.abs(rx - rt) * valid).sum(axis=-1), np.floor(n * n / 2.0)), 0.0, 1.0)


def kendall_distance(x: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Normalised Kendall distance between a ranking and the truth, along the last axis.

    ``d_K = Σ_{i<j} |sign(x_i - x_j) - sign(t_i - t_j)| / (2 · n(n-1)/2)``: the share of
    discordant pairs, a pair tied on one side only counting one half. In ``[0, 1]``: 0 =
    same order, 1 = reversed; for untied rankings it is ``(1 - tau) / 2``.

    Edge cases: pairs tied on both sides count as agreeing; fewer than 2 items give 0.
    """
    x = np.asarray(x, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    valid = np.isfinite(x) & np.isfinite(truth)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    *_, d, n = _pair_stats(_ranks(x, valid), _ranks(truth, valid), valid)
    return _kdist_from(d, n)


def leave_one_out_consensus(
    ratings: np.ndarray, weights: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each rater, the weighted mean rating of the *other* raters.

    ``ratings`` is ``(R, ..., C)``, ``weights`` ``(R, ...)`` (0 = absent)::

        consensus_{-k} = (Σ_l w_l r_l - w_k r_k) / (Σ_l w_l - w_k)

    so a rater never agrees with itself. Returns ``(consensus, peers)``: the consensus
    (0 where no other rater has weight) and the number of other raters with positive
    weight, both per rater and row. Cost O(R·C) via the total sums.
    """
    r = np.asarray(ratings, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    items = _items(r, mask)
    w = np.where(np.all(np.isfinite(r) | ~items, axis=-1) & np.isfinite(w), np.maximum(w, 0.0), 0.0)
    return _loo(np.where(np.isfinite(r), r, 0.0), w)


def _loo(r: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    own = w[..., None] * r
    total = own.sum(axis=0)
    others_w = w.sum(axis=0)[None] - w
    consensus = _safe_div(total[None] - own, others_w[..., None])
    positive = w > 0
    peers = positive.sum(axis=0)[None] - positive
    return consensus, peers


# --------------------------------------------------------------------------- score_round


@dataclass(frozen=True)
class ScoringParams:
    """Parameters of :func:`score_round` (defaults are what the validator runs).

    - ``kappa_min``: task agreement at or below which consensus earns no trust.
    - ``kappa_full``: task agreement from which consensus has full trust (linear between).
    - ``agreement_floor``: least weight of a miner in the task agreement, relative to the
      most reliable one: unreliable miners count less, but a lone reliable miner among
      random ones cannot turn chance into agreement.
    - ``min_peers``: other answering miners needed for a consensus; below it a miner is
      scored on ground truth alone.
    - ``sharpness``: exponent ``γ`` in ``score = max(0, agreement)^γ``; at 2 a
      chance-level ranking earns little while a good one loses little.
    - ``iterations``: rounds of reliability re-weighting of the consensus.
    """

    kappa_min: float = 0.2
    kappa_full: float = 0.5
    agreement_floor: float = 0.3
    min_peers: int = 2
    sharpness: float = 3.0
    iterations: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.kappa_min < self.kappa_full <= 1.0:
            raise ValueError("need 0 <= kappa_min < kappa_full <= 1")
        if self.min_peers < 1 or self.iterations < 1 or self.sharpness <= 0:
            raise ValueError("min_peers and iterations must be >= 1, sharpness > 0")
        if not 0.0 <= self.agreement_floor <= 1.0:
            raise ValueError("agreement_floor must be within [0, 1]")


@dataclass(frozen=True)
class RoundResult:
    """What :func:`score_round` returns. ``(M, T)`` arrays unless noted; all finite.

    - ``scores``: the score in ``[0, 1]`` of each miner on each task (0 when missing).
    - ``answered``: bool, the miner gave a complete answer.
    - ``agreement``: the blended signed agreement ``a`` in ``[-1, 1]``, before sharpening.
    - ``kappa``: quadratic-weighted kappa of the miner against its leave-one-out consensus.
    - ``rho_consensus``: Spearman's rho against the leave-one-out consensus.
    - ``rho_ground_truth`` / ``tau_ground_truth``: against the known ground truth.
    - ``distance``: ``(d_F + d_K) / 2`` to the ground truth (0 where there is none).
    - ``task_agreement`` ``(T,)``: reliability-weighted multi-rater kappa of the task.
    - ``consensus_trust`` ``(T,)``: weight given to consensus on the task, in ``[0, 1]``.
    - ``has_ground_truth`` ``(T,)``: bool, at least two distinct known ranks.
    - ``reliability`` ``(M,)``: the miners' final in-round reliability.
    """

    scores: np.ndarray
    answered: np.ndarray
    agreement: np.ndarray
    kappa: np.ndarray
    rho_consensus: np.ndarray
    rho_ground_truth: np.ndarray
    tau_ground_truth: np.ndarray
    distance: np.ndarray
    task_agreement: np.ndarray
    consensus_trust: np.ndarray
    has_ground_truth: np.ndarray
    reliability: np.ndarray

    def miner_scores(self, assigned: np.ndarray | None = None) -> np.ndarray:
        """Each miner's mean score over the round's tasks; see :func:`window_mean`."""
        return window_mean(self.scores, assigned)


def window_mean(scores: np.ndarray, assigned: np.ndarray | None = None) -> np.ndarray:
    """Per-miner mean of task scores over a window: ``Σ_t a_mt s_mt / Σ_t a_mt``.

    ``scores`` is ``(M, T)`` with missing answers already at 0, so skipping costs what a
    wrong answer costs; ``assigned`` ``(M, T)`` excludes tasks a miner was never sent.
    A miner with no assigned task gets 0.
    """
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    a = np.ones(s.shape, dtype=bool) if assigned is None else np.asarray(assigned, dtype=bool)
    return _safe_div((s * a).sum(axis=-1), a.sum(axis=-1))


def _check_slots(slot_miners: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    slots = np.asarray(slot_miners)
    if slots.shape != shape or not np.issubdtype(slots.dtype, np.integer):
        raise ValueError(f"slot_miners must be integers shaped {shape}, got {slots.dtype} {slots.shape}")
    if np.any(slots < -1):
        raise ValueError("slot_miners holds miner indices, or -1 for an empty slot")
    ordered = np.sort(slots, axis=0)
    if np.any((ordered[1:] == ordered[:-1]) & (ordered[1:] >= 0)):
        raise ValueError("a miner appears in two slots of one task")
    return slots.astype(np.int64)


def _by_slot(per_miner: np.ndarray, slots: np.ndarray | None) -> np.ndarray:
    """A per-miner ``(M,)`` value laid out like the answers: ``(M, 1)``, or ``(K, T)`` by slot."""
    if slots is None:
        return per_miner[:, None]
    return np.where(slots >= 0, per_miner[np.maximum(slots, 0)], 0.0)


def _per_miner_mean(values: np.ndarray, answered: np.ndarray, slots: np.ndarray | None, n_miners: int) -> np.ndarray:
    """Each miner's mean of ``values`` over the tasks it answered (:func:`window_mean`)."""
    if slots is None:
        return window_mean(values, answered)
    return slot_window_mean(values, np.where(answered, slots, -1), n_miners)


def slot_window_mean(scores: np.ndarray, slot_miners: np.ndarray, n_miners: int) -> np.ndarray:
    """:func:`window_mean` for the compact layout: each miner's mean score over the slots
    it holds (``(K, T)`` scores and slots, ``-1`` empty), 0 for a miner with none."""
    slots = np.asarray(slot_miners)
    held = slots >= 0
    total = np.bincount(slots[held], weights=np.nan_to_num(np.asarray(scores, dtype=np.float64))[held],
                        minlength=n_miners)
    count = np.bincount(slots[held], minlength=n_miners).astype(np.float64)
    return _safe_div(total, count)


def _orient(submissions: np.ndarray, higher_is_better: bool | np.ndarray) -> np.ndarray:
    hib = np.asarray(higher_is_better, dtype=bool)
    if hib.ndim == 0:
        return -submissions if hib else submissions
    return np.where(hib[None, :, None], -submissions, submissions)


def score_round(
    submissions: np.ndarray,
    n_completions: Sequence[int] | np.ndarray,
    ground_truth: np.ndarray | None = None,
    *,
    higher_is_better: bool | Sequence[bool] | np.ndarray = False,
    reliability: np.ndarray | None = None,
    params: ScoringParams | None = None,
    slot_miners: np.ndarray | None = None,
) -> RoundResult:
    """Score one round: every miner on every task, from agreement and ground truth.

    Shapes: ``submissions (M, T, C)``, ``n_completions (T,)``, ``ground_truth (T, C)`` or
    None, ``higher_is_better`` a bool or ``(T,)``, ``reliability (M,)`` or None (the
    initial consensus weights, e.g. from earlier rounds; uniform by default).

    Compact layout, for rounds where each task goes to a few of many miners:
    ``slot_miners (K, T)`` of ints says which miner answered in slot ``k`` of task ``t``
    (``-1`` for an empty slot, whose answer must be NaN; a miner at most once per task),
    and ``submissions`` is then ``(K, T, C)``. The result is the same as the dense round
    with every other miner missing, its ``(M, T)`` outputs given as ``(K, T)`` by slot;
    ``reliability`` stays per miner, ``M = len(reliability)`` or ``slot_miners.max() + 1``.
    Memory and time then grow with ``K``, not ``M``.

    Per miner ``m`` and task ``t`` (``R`` = average ranks, best = 1):

    1. Ground truth, on the ``k ≥ 2`` completions whose rank is known::

           a_gt = (rho(R_m, G) + 1 - 2 d) / 2,    d = (d_F + d_K) / 2

       rho for the order, the distances for how far items are misplaced.
    2. Consensus: the leave-one-out mean of the other miners' ranks weighted by their
       reliability ``q_l²``, re-ranked to ``K``; ``a_c = (rho(R_m, K) + kappa(R_m, K)) / 2``.
    3. Task agreement ``A_t`` = multi-rater quadratic kappa of the answers, each miner
       weighted by ``max(q_m / max q, agreement_floor)``; trust
       ``u_t = clip((A_t - kappa_min) / (kappa_full - kappa_min), 0, 1)``, and 0 for a
       miner without ``min_peers`` peers: a task on which miners do not agree assigns no
       consensus trust.
    4. Blend, so that agreeing humans outweigh a ground truth they contradict::

           c = max(0, rho(K, G))          (does the consensus corroborate the truth?)
           w_c = u_t,   w_g = (k - 1)/(n - 1) · (1 - u_t · (1 - c²))
           a = (w_c a_c + w_g a_gt) / (w_c + w_g),     score = max(0, a)^γ

       ``w_g`` shrinks with partial truth and vanishes when a trusted consensus
       contradicts the truth; a truth the consensus corroborates keeps full weight.
    5. Reliability ``q_m`` = mean of ``max(0, a)`` over the miner's answered tasks; steps
       2-4 repeat ``params.iterations`` times, so miners far from truth and consensus
       (random, colluding) lose their say in the consensus.

    Edge cases: missing or partial answers score 0; tasks with fewer than 2 completions
    score 0; a miner with too few peers is scored on ground truth alone, and with neither
    peers nor ground truth scores 0; constant rankings have rho = kappa = 0; results are
    never NaN and this never raises on such data.
    """
    p = params or ScoringParams()
    x = np.asarray(submissions, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"submissions must be (miners, tasks, completions), got shape {x.shape}")
    n_slots, n_tasks, width = x.shape
    slots = None if slot_miners is None else _check_slots(slot_miners, x.shape[:2])
    if slots is None:
        n_miners = n_slots
    elif reliability is not None:
        n_miners = int(np.asarray(reliability).size)
    else:
        n_miners = int(slots.max(initial=-1)) + 1
    if slots is not None and int(slots.max(initial=-1)) >= n_miners:
        raise ValueError(f"slot_miners names miner {int(slots.max())}, but reliability has {n_miners} entries")
    n_comp = np.asarray(n_completions, dtype=np.int64).reshape(-1)
    if n_comp.shape != (n_tasks,):
        raise ValueError(f"n_completions has {n_comp.size} entries for {n_tasks} tasks")
    if np.any(n_comp < 0) or np.any(n_comp > width):
        raise ValueError(f"completion counts must be within 0..{width}")
    items = np.arange(width)[None, :] < n_comp[:, None]  # (T, C)
    items = items & (n_comp[:, None] >= 2)

    x = _orient(x, higher_is_better)
    if slots is not None:
        x = np.where((slots >= 0)[..., None], x, np.nan)  # an empty slot never answers
    answered = np.all(np.isfinite(x) | ~items[None], axis=-1) & (n_comp >= 2)[None]  # (M, T)
    valid = items[None] & answered[..., None]  # (M, T, C)
    ranks = _ranks(x, valid)
    v = valid.astype(np.float64)
    n_items = _rowsum(v)
    centred = (ranks - ((n_items + 1.0) / 2.0)[..., None]) * v  # every ranking's mean is (n+1)/2
    s_rr = _rowdot(centred, centred)

    # Ground truth terms: fixed for the round.
    if ground_truth is None:
        gt = np.full((n_tasks, width), np.nan)
    else:
        gt = np.asarray(ground_truth, dtype=np.float64)
        if gt.shape != (n_tasks, width):
            raise ValueError(f"ground_truth must be {(n_tasks, width)}, got {gt.shape}")
    known = np.isfinite(gt) & items  # (T, C)
    n_known = _rowsum(known.astype(np.float64))
    gt_ranks = _ranks(gt, known)
    gt_centred = (gt_ranks - ((n_known + 1.0) / 2.0)[:, None]) * known
    s_gg = _rowdot(gt_centred, gt_centred)
    has_gt = (n_known >= 2) & (s_gg > 0)
    gt_info = _safe_div(n_known - 1.0, n_comp - 1.0) * has_gt
    # Where every task's truth is complete, ranks on the known completions are the ranks.
    full_truth = bool(np.all((known == items) | ~has_gt[:, None]))
    valid_gt = valid & known[None]
    ranks_gt = ranks * known[None] if full_truth else _ranks(ranks, valid_gt)
    n_gt, _, _, s_rg, s_rr_gt, _ = _rank_moments(ranks_gt, gt_ranks[None], valid_gt)
    rho_gt = _pearson_from(n_gt, s_rg, s_rr_gt, s_gg[None])
    # Pairs over the known completions; rows of miners who did not answer are zeroed below.
    s, u_r, u_g, d_pairs, n_pairs = _pair_stats(ranks_gt, gt_ranks[None], known[None])
    tau_gt = _tau_from(s, u_r, u_g)
    distance = (_footrule(ranks_gt, gt_ranks[None], valid_gt) + _kdist_from(d_pairs, n_pairs)) / 2.0
    gt_ok = answered & has_gt[None]
    a_gt = np.where(gt_ok, (rho_gt + 1.0 - 2.0 * distance) / 2.0, 0.0)
    rho_gt = rho_gt * gt_ok
    tau_gt = tau_gt * gt_ok
    distance = distance * gt_ok

    if reliability is None:
        q = np.ones(n_miners)
    else:
        q = np.asarray(reliability, dtype=np.float64).reshape(-1)
        if q.shape != (n_miners,):
            raise ValueError(f"reliability has {q.size} entries for {n_miners} miners")
        q = np.where(np.isfinite(q), np.clip(q, 0.0, None), 0.0)
        # Only relative reliability matters; scaling to a maximum of 1 keeps q² finite.
        q = q / q.max() if np.any(q > 0) else np.ones(n_miners)

    stats = _rater_stats(ranks, items)
    for _ in range(p.iterations):
        # Agreement weighted by reliability floored at agreement_floor: attackers count
        # little, yet a few lucky miners among unreliable ones cannot make up agreement.
        q_agree = np.maximum(q / max(float(q.max(initial=0.0)), _EPS), p.agreement_floor)
        task_agreement = _multi_kappa(ranks, _by_slot(q_agree, slots) * answered, stats)
        trust = np.clip((task_agreement - p.kappa_min) / (p.kappa_full - p.kappa_min), 0.0, 1.0)
        w = _by_slot(q * q, slots) * answered  # (M, T), or (K, T) by slot
        # The leave-one-out weighted sum: its ranks are the consensus's (a positive scale).
        own = w[..., None] * ranks
        consensus = own.sum(axis=0)[None] - own
        positive = w > 0
        peers = positive.sum(axis=0)[None] - positive
        cons_ok = answered & (peers >= p.min_peers) & (w.sum(axis=0)[None] - w > _EPS)
        # Ranked over every answer; the rows without a consensus are masked by cons_ok.
        cons_centred = (_ranks(consensus, valid) - ((n_items + 1.0) / 2.0)[..., None]) * v
        s_rc = _rowdot(centred, cons_centred)
        s_cc = _rowdot(cons_centred, cons_centred)
        rho_c = _pearson_from(n_items, s_rc, s_rr, s_cc) * cons_ok
        mean = (n_items + 1.0) / 2.0  # both sides are rankings of the same items
        kappa_c = _kappa_from(n_items, mean, mean, s_rc, s_rr, s_cc) * cons_ok
        a_c = (rho_c + kappa_c) / 2.0
        if full_truth:
            s_cg = _rowdot(cons_centred, gt_centred[None])
            corroboration = np.maximum(_pearson_from(n_items, s_cg, s_cc, s_gg[None]), 0.0)
        else:
            n_k, _, _, s_cg, s_ck, _ = _rank_moments(_ranks(consensus, valid_gt), gt_ranks[None], valid_gt)
            corroboration = np.maximum(_pearson_from(n_k, s_cg, s_ck, s_gg[None]), 0.0)
        w_c = trust[None] * cons_ok
        w_g = gt_info[None] * gt_ok * (1.0 - w_c * (1.0 - corroboration**2))
        blend = _safe_div(w_c * a_c + w_g * a_gt, w_c + w_g)
        q_new = _per_miner_mean(np.maximum(blend, 0.0), answered, slots, n_miners)
        q = q_new if np.any(q_new > 0) else q

    scores = np.where(answered, np.maximum(blend, 0.0) ** p.sharpness, 0.0)
    logger.debug(
        "scored round: {} miners x {} tasks, {} answers, mean task agreement {:.3f}",
        n_miners,
        n_tasks,
        int(answered.sum()),
        float(task_agreement.mean()) if n_tasks else 0.0,
    )
    return RoundResult(
        scores=np.clip(scores, 0.0, 1.0),
        answered=answered,
        agreement=blend,
        kappa=kappa_c,
        rho_consensus=rho_c,
        rho_ground_truth=rho_gt,
        tau_ground_truth=tau_gt,
        distance=distance,
        task_agreement=task_agreement,
        consensus_trust=trust,
        has_ground_truth=has_gt,
        reliability=q,
    )


# --------------------------------------------------------------------------- aggregation

STATE_VERSION = 1


class StateVersionError(ValueError):
    """Saved scoring state of a version this code cannot read (newer, or unknown)."""


@dataclass
class _MinerRecord:
    uid: int
    score: float
    rounds: int


class MovingScores:
    """Per-hotkey exponential moving average of round scores, and the weights it implies.

    ``score ← (1 - α) · score + α · round_score``, starting from 0 for every new hotkey.
    Miners are keyed by hotkey and remember their uid: a hotkey seen on a different uid,
    or a uid now held by a different hotkey, starts again from 0 (a new registration
    inherits nothing). All methods take one lock, so the validator can update from the
    scoring thread and snapshot (``to_dict``/``save``) from another.

    State (``to_dict``): ``{"version": 1, "alpha": α, "miners": {hotkey: {"uid", "score",
    "rounds"}}}``. ``from_dict`` reads every version up to :data:`STATE_VERSION` through
    the migrations in ``_MIGRATIONS`` and refuses newer ones with :class:`StateVersionError`.
    """

    def __init__(self, alpha: float = 0.1):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = float(alpha)
        self._miners: dict[str, _MinerRecord] = {}
        self._lock = threading.RLock()

    def _reset_conflicts(self, hotkey: str, uid: int) -> None:
        record = self._miners.get(hotkey)
        if record is not None and record.uid != uid:
            del self._miners[hotkey]
        for other in [h for h, r in self._miners.items() if r.uid == uid and h != hotkey]:
            del self._miners[other]

    def update(self, hotkeys: Sequence[str], uids: Sequence[int], round_scores: Sequence[float]) -> None:
        """Fold one round's per-miner scores (e.g. :meth:`RoundResult.miner_scores`) in."""
        scores = np.nan_to_num(np.asarray(round_scores, dtype=np.float64), nan=0.0)
        if not len(hotkeys) == len(uids) == scores.size:
            raise ValueError(f"{len(hotkeys)} hotkeys, {len(uids)} uids and {scores.size} scores")
        if len(set(uids)) != len(uids) or len(set(hotkeys)) != len(hotkeys):
            raise ValueError("a uid or hotkey appears twice in one update")
        with self._lock:
            for hotkey, uid, s in zip(hotkeys, uids, np.clip(scores, 0.0, 1.0), strict=True):
                self._reset_conflicts(hotkey, int(uid))
                record = self._miners.setdefault(hotkey, _MinerRecord(int(uid), 0.0, 0))
                record.score = (1.0 - self.alpha) * record.score + self.alpha * float(s)
                record.rounds += 1

    def sync(self, uid_to_hotkey: Mapping[int, str]) -> None:
        """Forget every miner whose (uid, hotkey) is no longer on the metagraph."""
        with self._lock:
            for hotkey in [h for h, r in self._miners.items() if uid_to_hotkey.get(r.uid) != h]:
                logger.info(
                    "scoring: dropping hotkey {} (uid {}): deregistered or replaced",
                    hotkey,
                    self._miners[hotkey].uid,
                )
                del self._miners[hotkey]

    def scores(self) -> dict[str, float]:
        """Moving score by hotkey."""
        with self._lock:
            return {h: r.score for h, r in self._miners.items()}

    def uid_scores(self, n_neurons: int) -> np.ndarray:
        """Moving scores as a ``(n_neurons,)`` array by uid; 0 for uids not scored."""
        out = np.zeros(n_neurons)
        with self._lock:
            for record in self._miners.values():
                if 0 <= record.uid < n_neurons:
                    out[record.uid] = record.score
        return out

    def weights(self, n_neurons: int, rules: WeightRules | None = None) -> tuple[list[int], list[int]]:
        """The u16 ``(uids, weights)`` to set on chain, by ``template.chain.weights`` rules.

        Scores are normalised under the subnet's max weight limit, then max-upscaled to
        u16 with zeros dropped (``weights_for_chain``). No score at all gives no weights.
        """
        scores = self.uid_scores(n_neurons)
        if not np.any(scores > 0):
            return [], []
        return weights_for_chain(list(range(n_neurons)), scores, rules or WeightRules())

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": STATE_VERSION,
                "alpha": self.alpha,
                "miners": {
                    h: {"uid": r.uid, "score": r.score, "rounds": r.rounds} for h, r in self._miners.items()
                },
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MovingScores:
        version = data.get("version")
        if not isinstance(version, int):
            raise StateVersionError("scoring state has no integer 'version'; it is not a MovingScores state")
        if version > STATE_VERSION or version < 1:
            raise StateVersionError(
                f"scoring state version {version} is not readable by this code (reads 1..{STATE_VERSION}); "
                "upgrade the validator or move the state file aside"
            )
        state = dict(data)
        while state["version"] < STATE_VERSION:
            state = _MIGRATIONS[state["version"]](state)
        out = cls(alpha=float(state["alpha"]))
        for hotkey, rec in state["miners"].items():
            out._miners[str(hotkey)] = _MinerRecord(int(rec["uid"]), float(rec["score"]), int(rec["rounds"]))
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON atomically (temporary file in the same folder, then rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(self.to_dict(), indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], alpha: float = 0.1) -> MovingScores:
        """Read a state written by :meth:`save`; a missing file gives a fresh state."""
        target = Path(path)
        if not target.exists():
            return cls(alpha=alpha)
        return cls.from_dict(json.loads(target.read_text()))


# Migrations from version v to v + 1, applied in order by ``MovingScores.from_dict``.
# Version 1 is the first; add ``1: _v1_to_v2`` here, with a test, when the format changes.
_MIGRATIONS: dict[int, Any] = {}
