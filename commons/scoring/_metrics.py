"""The agreement metrics of Dojo's scoring, each batched over every leading axis with the
items on the last axis and an optional item ``mask``, under the conventions of
:mod:`commons.scoring` (``NaN`` = no value; agreement measured on average ranks).

Each returns a finite value where scipy or scikit-learn would return NaN (constant raters,
too few items), as its docstring says. The private helpers are shared with
:mod:`commons.scoring._round`, which works the same quantities out for a whole round from
moments it computes once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_EPS = 1e-12


# --------------------------------------------------------------------------- helpers


def _valid(x: np.ndarray, mask: np.ndarray | None) -> npt.NDArray[np.bool_]:
    valid: npt.NDArray[np.bool_] = np.isfinite(x)
    if mask is not None:
        valid = valid & np.asarray(mask, dtype=bool)
    return valid


def _paired(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """``x`` and ``y`` as floats, and where both have a value and ``mask`` (if any) allows."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return x, y, _valid(x, mask) & np.isfinite(y)


def _safe_div(num: np.ndarray, den: np.ndarray) -> npt.NDArray[np.float64]:
    """``num / den`` where ``|den| > eps``, else 0 (never a warning, never NaN)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=np.abs(den) > _EPS)
    return out


def _rowsum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis (einsum: several times faster than ``sum`` on short rows)."""
    total: np.ndarray = np.einsum("...c->...", x)
    return total


def _rowdot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dot: np.ndarray = np.einsum("...c,...c->...", x, y)
    return dot


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


def _pearson_from(
    n: np.ndarray, sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray
) -> npt.NDArray[np.float64]:
    # Ranks are multiples of 1/2, so a constant row has exactly zero spread; the tolerance
    # only guards against arbitrary float input.
    ok = (sxx > 1e-12) & (syy > 1e-12) & (n >= 2)
    rho: npt.NDArray[np.float64] = np.clip(_safe_div(sxy, np.sqrt(sxx * syy)) * ok, -1.0, 1.0)
    return rho


def _kappa_from(
    n: np.ndarray, mx: np.ndarray, my: np.ndarray, sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray
) -> npt.NDArray[np.float64]:
    den = sxx + syy + n * (mx - my) ** 2
    kappa: npt.NDArray[np.float64] = np.clip(_safe_div(2.0 * sxy, den) * (n >= 1), -1.0, 1.0)
    return kappa


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


def _tau_from(s: np.ndarray, ux: np.ndarray, ut: np.ndarray) -> npt.NDArray[np.float64]:
    tau: npt.NDArray[np.float64] = np.clip(_safe_div(s, np.sqrt(ux * ut)), -1.0, 1.0)
    return tau


def _kdist_from(d: np.ndarray, n: np.ndarray) -> npt.NDArray[np.float64]:
    dist: npt.NDArray[np.float64] = np.clip(_safe_div(d, n * (n - 1.0)), 0.0, 1.0)
    return dist


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

    C. Spearman. 1904. The Proof and Measurement of Association between Two Things.
    The American Journal of Psychology, Vol. 15, 1 (1904), 72–101.
    https://doi.org/10.2307/1412159
    """
    x, y, valid = _paired(x, y, mask)
    return _pearson(_ranks(x, valid), _ranks(y, valid), valid)


def kendall_tau_b(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Kendall's tau-b along the last axis, over items valid in both.

    With ``P = Σ_{i<j} sign(x_i - x_j) · sign(y_i - y_j)``, ``n0 = n(n-1)/2`` pairs,
    ``n1``/``n2`` the pairs tied in ``x``/``y``::

        tau_b = P / sqrt((n0 - n1) · (n0 - n2))

    as ``scipy.stats.kendalltau`` (variant "b"). In ``[-1, 1]``; symmetric; invariant
    under strictly increasing transforms.

    Edge cases: fewer than 2 items or a constant argument give 0 (scipy: NaN).

    M. G. Kendall. 1938. A New Measure of Rank Correlation. Biometrika, Vol. 30, 1/2
    (1938), 81–93. https://doi.org/10.1093/biomet/30.1-2.81

    M. G. Kendall. 1945. The Treatment of Ties in Ranking Problems. Biometrika, Vol. 33, 3
    (1945), 239–251 (tau-b). https://doi.org/10.1093/biomet/33.3.239
    """
    x, y, valid = _paired(x, y, mask)
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

    Jacob Cohen. 1968. Weighted Kappa: Nominal Scale Agreement Provision for Scaled
    Disagreement or Partial Credit. Psychological Bulletin, Vol. 70, 4 (1968), 213–220.
    https://doi.org/10.1037/h0026256

    Lawrence I-Kuei Lin. 1989. A Concordance Correlation Coefficient to Evaluate
    Reproducibility. Biometrics, Vol. 45, 1 (1989), 255–268 (the closed form).
    https://doi.org/10.2307/2532051
    """
    a, b, valid = _paired(a, b, mask)
    if n_categories is not None:
        for name, values in (("a", a), ("b", b)):
            v = values[valid]
            if v.size and (np.any(v < 0) or np.any(v > n_categories - 1) or np.any(v != np.round(v))):
                raise ValueError(
                    f"{name} holds values that are not category indices 0..{n_categories - 1}; "
                    "map labels to their index first"
                )
    return _lin_kappa(a, b, valid)


def _items(r: np.ndarray, mask: np.ndarray | None) -> npt.NDArray[np.bool_]:
    """The items of each row: ``mask`` if given, else those some rater has a value for."""
    if mask is None:
        rated: npt.NDArray[np.bool_] = np.any(np.isfinite(r), axis=0)
        return rated
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

    Anthony J. Conger. 1980. Integration and Generalization of Kappas for Multiple Raters.
    Psychological Bulletin, Vol. 88, 2 (1980), 322–328.
    https://doi.org/10.1037/0033-2909.88.2.322
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


def _multi_kappa(r: np.ndarray, w: np.ndarray, stats: tuple[np.ndarray, ...]) -> npt.NDArray[np.float64]:
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
    kappa: npt.NDArray[np.float64] = np.clip(
        (1.0 - _safe_div(d_obs, d_exp)) * two_raters * (d_exp > _EPS), -1.0, 1.0
    )
    return kappa


def footrule_distance(x: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Normalised Spearman footrule between a ranking and the truth, along the last axis.

    ``d_F = Σ_i |R(x)_i - R(truth)_i| / floor(n² / 2)`` with ``R`` the average ranks among
    the ``n`` items valid in both, and ``floor(n²/2)`` the footrule of a reversed
    permutation, its maximum. In ``[0, 1]``: 0 = same order, 1 = reversed. Unlike rho it
    sees *how far* each item is misplaced, which matters for short or partial rankings.

    Edge cases: ties use average ranks (a tied ranking is the mean of the permutations that
    break its ties, so by convexity it never exceeds the maximum); fewer than 2 items give 0.

    C. Spearman. 1906. 'Footrule' for Measuring Correlation. British Journal of
    Psychology, Vol. 2, 1 (1906), 89–108.
    https://doi.org/10.1111/j.2044-8295.1906.tb00174.x

    Persi Diaconis and R. L. Graham. 1977. Spearman's Footrule as a Measure of Disarray.
    Journal of the Royal Statistical Society, Series B, Vol. 39, 2 (1977), 262–268 (the
    maximum). https://doi.org/10.1111/j.2517-6161.1977.tb01624.x
    """
    x, truth, valid = _paired(x, truth, mask)
    return _footrule(_ranks(x, valid), _ranks(truth, valid), valid)


def _footrule(rx: np.ndarray, rt: np.ndarray, valid: np.ndarray) -> npt.NDArray[np.float64]:
    n = valid.sum(axis=-1)
    dist: npt.NDArray[np.float64] = np.clip(
        _safe_div((np.abs(rx - rt) * valid).sum(axis=-1), np.floor(n * n / 2.0)), 0.0, 1.0
    )
    return dist


def kendall_distance(x: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Normalised Kendall distance between a ranking and the truth, along the last axis.

    ``d_K = Σ_{i<j} |sign(x_i - x_j) - sign(t_i - t_j)| / (2 · n(n-1)/2)``: the share of
    discordant pairs, a pair tied on one side only counting one half. In ``[0, 1]``: 0 =
    same order, 1 = reversed; for untied rankings it is ``(1 - tau) / 2``.

    Edge cases: pairs tied on both sides count as agreeing; fewer than 2 items give 0.

    M. G. Kendall. 1938. A New Measure of Rank Correlation. Biometrika, Vol. 30, 1/2
    (1938), 81–93. https://doi.org/10.1093/biomet/30.1-2.81

    Ronald Fagin, Ravi Kumar, Mohammad Mahdian, D. Sivakumar and Erik Vee. 2004. Comparing
    and Aggregating Rankings with Ties. In Proceedings of PODS 2004, 47–58 (the penalty
    1/2 for a pair tied on one side). https://doi.org/10.1145/1055558.1055568
    """
    x, truth, valid = _paired(x, truth, mask)
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
