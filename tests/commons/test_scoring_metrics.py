"""The batched metrics of ``commons.scoring`` against scipy and scikit-learn, and their properties."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import kendalltau, rankdata, spearmanr
from sklearn.metrics import cohen_kappa_score

from commons.scoring import (
    average_ranks,
    footrule_distance,
    kendall_distance,
    kendall_tau_b,
    leave_one_out_consensus,
    multi_rater_kappa,
    quadratic_weighted_kappa,
    spearman_rho,
)

RNG_SEEDS = [0, 1, 2]


def tied_data(seed: int, rows: int = 400, width: int = 7, levels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Integer data with many ties (fewer levels than items), widths 2..width via NaN padding."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (rows, width)).astype(float)
    y = rng.integers(0, levels, (rows, width)).astype(float)
    lengths = rng.integers(2, width + 1, rows)
    pad = np.arange(width)[None, :] >= lengths[:, None]
    x[pad] = np.nan
    y[pad] = np.nan
    return x, y


def _undefined(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0


# ------------------------------------------------------------------ oracles


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_average_ranks_match_scipy_rankdata(seed: int) -> None:
    x, _ = tied_data(seed)
    ours = average_ranks(x)
    for row, mine in zip(x, ours, strict=True):
        keep = np.isfinite(row)
        np.testing.assert_allclose(mine[keep], rankdata(row[keep]), rtol=0, atol=1e-12)
        assert np.all(np.isnan(mine[~keep]))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    x, y = tied_data(seed)
    ours = spearman_rho(x, y)
    checked = 0
    for a, b, mine in zip(x, y, ours, strict=True):
        keep = np.isfinite(a)
        a, b = a[keep], b[keep]
        if _undefined(a, b):
            assert mine == 0.0
            continue
        assert abs(mine - spearmanr(a, b).statistic) < 1e-9
        checked += 1
    assert checked > 200


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_kendall_tau_b_matches_scipy_with_ties(seed: int) -> None:
    x, y = tied_data(seed)
    ours = kendall_tau_b(x, y)
    checked = 0
    for a, b, mine in zip(x, y, ours, strict=True):
        keep = np.isfinite(a)
        a, b = a[keep], b[keep]
        if _undefined(a, b):
            assert mine == 0.0
            continue
        assert abs(mine - kendalltau(a, b).statistic) < 1e-9
        checked += 1
    assert checked > 200


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("n_categories", [4, 9])
def test_quadratic_kappa_matches_sklearn_with_explicit_labels(seed: int, n_categories: int) -> None:
    # Values use categories 0..3 only; with K = 9 five categories are unused, and the
    # explicit label set must keep them (their distance) in the weights.
    x, y = tied_data(seed, rows=200, levels=4)
    ours = quadratic_weighted_kappa(x, y, n_categories=n_categories)
    labels = list(range(n_categories))
    checked = 0
    for a, b, mine in zip(x, y, ours, strict=True):
        keep = np.isfinite(a)
        a, b = a[keep].astype(int), b[keep].astype(int)
        if np.ptp(a) == 0 and np.ptp(b) == 0 and a[0] == b[0]:
            assert mine == 0.0  # sklearn: 0/0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            expected = cohen_kappa_score(a, b, weights="quadratic", labels=labels)
        assert abs(mine - expected) < 1e-9
        checked += 1
    assert checked > 150


def test_quadratic_kappa_labels_matter_when_categories_are_unused() -> None:
    # sklearn without labels infers {0, 3} and puts them one step apart; with the full
    # label set they are three apart. Our closed form equals the explicit-label result.
    a = np.array([0, 0, 3, 3, 0])
    b = np.array([0, 3, 3, 0, 0])
    full = cohen_kappa_score(a, b, weights="quadratic", labels=[0, 1, 2, 3])
    assert quadratic_weighted_kappa(a, b, n_categories=4) == pytest.approx(full, abs=1e-12)
    a2 = np.array([0, 1, 2, 2, 0])
    b2 = np.array([0, 2, 2, 0, 1])
    full2 = cohen_kappa_score(a2, b2, weights="quadratic", labels=list(range(6)))
    inferred2 = cohen_kappa_score(a2, b2, weights="quadratic")
    assert quadratic_weighted_kappa(a2, b2, n_categories=6) == pytest.approx(full2, abs=1e-12)
    assert quadratic_weighted_kappa(a2, b2, n_categories=6) == pytest.approx(inferred2, abs=1e-12)


def test_quadratic_kappa_rejects_values_outside_the_categories() -> None:
    with pytest.raises(ValueError, match="category indices"):
        quadratic_weighted_kappa(np.array([0, 1, 4]), np.array([0, 1, 2]), n_categories=4)
    with pytest.raises(ValueError, match="category indices"):
        quadratic_weighted_kappa(np.array([0, 1.5, 2]), np.array([0, 1, 2]), n_categories=4)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_multi_rater_kappa_of_two_raters_is_cohens(seed: int) -> None:
    x, y = tied_data(seed, levels=5)
    ours = multi_rater_kappa(np.stack([x, y]))
    np.testing.assert_allclose(ours, quadratic_weighted_kappa(x, y), rtol=0, atol=1e-12)


def test_multi_rater_kappa_matches_its_pairwise_definition() -> None:
    rng = np.random.default_rng(5)
    ratings = rng.integers(1, 6, (6, 40, 5)).astype(float)
    weights = rng.random((6, 40))
    weights[0, :10] = 0.0
    ours = multi_rater_kappa(ratings, weights)
    for t in range(40):
        obs = exp = 0.0
        for k, j in itertools.permutations(range(6), 2):
            wk = weights[k, t] * weights[j, t]
            a, b = ratings[k, t], ratings[j, t]
            obs += wk * np.mean((a - b) ** 2)
            exp += wk * (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
        assert ours[t] == pytest.approx(1 - obs / exp, abs=1e-9)


def test_multi_rater_kappa_is_one_for_identical_raters_and_zero_for_one_rater() -> None:
    one = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert multi_rater_kappa(np.stack([one] * 5))[0] == pytest.approx(1.0)
    assert multi_rater_kappa(one[None])[0] == 0.0
    # An absent rater (weight 0, or NaN ratings) does not count.
    ratings = np.stack([one, one, np.full_like(one, np.nan)])
    assert multi_rater_kappa(ratings)[0] == pytest.approx(1.0)
    assert multi_rater_kappa(ratings, np.array([[1.0], [0.0], [1.0]]))[0] == 0.0


def _naive_footrule(a: np.ndarray, b: np.ndarray) -> float:
    n = len(a)
    return float(np.abs(rankdata(a) - rankdata(b)).sum() / np.floor(n * n / 2))


def _naive_kendall_distance(a: np.ndarray, b: np.ndarray) -> float:
    n = len(a)
    total = sum(
        abs(np.sign(a[i] - a[j]) - np.sign(b[i] - b[j])) for i, j in itertools.combinations(range(n), 2)
    )
    return float(total / 2 / (n * (n - 1) / 2))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_distances_match_their_definitions(seed: int) -> None:
    x, y = tied_data(seed, rows=200)
    foot = footrule_distance(x, y)
    kend = kendall_distance(x, y)
    for a, b, f, k in zip(x, y, foot, kend, strict=True):
        keep = np.isfinite(a)
        assert f == pytest.approx(_naive_footrule(a[keep], b[keep]), abs=1e-12)
        assert k == pytest.approx(_naive_kendall_distance(a[keep], b[keep]), abs=1e-12)


def test_distances_known_values() -> None:
    ident = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert footrule_distance(ident, ident) == 0.0
    assert kendall_distance(ident, ident) == 0.0
    assert footrule_distance(ident[::-1], ident) == 1.0
    assert kendall_distance(ident[::-1], ident) == 1.0
    # One adjacent swap: footrule 2 of max 12; one discordant pair of 10.
    swapped = np.array([2.0, 1.0, 3.0, 4.0, 5.0])
    assert footrule_distance(swapped, ident) == pytest.approx(2 / 12)
    assert kendall_distance(swapped, ident) == pytest.approx(1 / 10)
    # Untied rankings: d_K = (1 - tau) / 2.
    rng = np.random.default_rng(3)
    perms = np.argsort(rng.random((50, 6)), axis=1).astype(float)
    np.testing.assert_allclose(
        kendall_distance(perms, np.arange(6.0)), (1 - kendall_tau_b(perms, np.arange(6.0))) / 2, atol=1e-12
    )


def test_masks_restrict_every_metric_to_the_chosen_items() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 6))
    y = rng.normal(size=(30, 6))
    mask = np.array([True, False, True, True, False, True])
    sub_x, sub_y = x[:, mask], y[:, mask]
    np.testing.assert_allclose(spearman_rho(x, y, mask), spearman_rho(sub_x, sub_y), atol=1e-12)
    np.testing.assert_allclose(kendall_tau_b(x, y, mask), kendall_tau_b(sub_x, sub_y), atol=1e-12)
    np.testing.assert_allclose(footrule_distance(x, y, mask), footrule_distance(sub_x, sub_y), atol=1e-12)
    np.testing.assert_allclose(kendall_distance(x, y, mask), kendall_distance(sub_x, sub_y), atol=1e-12)
    np.testing.assert_allclose(
        quadratic_weighted_kappa(x, y, mask=mask), quadratic_weighted_kappa(sub_x, sub_y), atol=1e-12
    )


def test_leave_one_out_consensus_is_the_mean_of_the_others() -> None:
    rng = np.random.default_rng(6)
    ratings = rng.random((5, 3, 4))
    weights = rng.random((5, 3))
    weights[2, 1] = 0.0
    consensus, peers = leave_one_out_consensus(ratings, weights)
    for k in range(5):
        for t in range(3):
            others = [j for j in range(5) if j != k]
            w = weights[others, t]
            expected = (w[:, None] * ratings[others, t]).sum(0) / w.sum()
            np.testing.assert_allclose(consensus[k, t], expected, atol=1e-12)
            assert peers[k, t] == sum(weights[j, t] > 0 for j in others)
    lone, lone_peers = leave_one_out_consensus(ratings[:1], weights[:1])
    assert np.all(lone == 0.0) and np.all(lone_peers == 0)


# ------------------------------------------------------------------ edge cases


def test_degenerate_inputs_give_zero_not_nan() -> None:
    const = np.array([2.0, 2.0, 2.0])
    ranks = np.array([1.0, 2.0, 3.0])
    for metric in (spearman_rho, kendall_tau_b, quadratic_weighted_kappa):
        assert metric(const, ranks) == 0.0
        assert metric(const, const) == 0.0
        assert metric(np.array([1.0]), np.array([1.0])) == 0.0
        assert metric(np.array([np.nan, 1.0]), np.array([1.0, np.nan])) == 0.0
    assert footrule_distance(np.array([1.0]), np.array([1.0])) == 0.0
    assert kendall_distance(np.array([]), np.array([])).shape == ()
    assert np.isnan(average_ranks(np.array([np.nan, np.nan]))).all()


def test_two_items() -> None:
    a = np.array([1.0, 2.0])
    assert spearman_rho(a, a) == 1.0
    assert spearman_rho(a, a[::-1]) == -1.0
    assert kendall_tau_b(a, a[::-1]) == -1.0
    assert footrule_distance(a, a[::-1]) == 1.0
    assert quadratic_weighted_kappa(a - 1, a[::-1] - 1, n_categories=2) == pytest.approx(-1.0)


# ------------------------------------------------------------------ properties

rows = st.integers(min_value=1, max_value=8)
ints = st.integers(min_value=0, max_value=5)


@st.composite
def paired(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(rows)
    x = draw(arrays(np.float64, (3, n), elements=ints.map(float)))
    y = draw(arrays(np.float64, (3, n), elements=ints.map(float)))
    return x, y


@settings(max_examples=80, deadline=None)
@given(paired())
def test_symmetric_and_bounded(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    for metric in (spearman_rho, kendall_tau_b, quadratic_weighted_kappa):
        a, b = metric(x, y), metric(y, x)
        np.testing.assert_allclose(a, b, atol=1e-12)
        assert np.all(np.isfinite(a)) and np.all(a >= -1.0) and np.all(a <= 1.0)
    for metric in (footrule_distance, kendall_distance):
        a, b = metric(x, y), metric(y, x)
        np.testing.assert_allclose(a, b, atol=1e-12)
        assert np.all((a >= 0.0) & (a <= 1.0))
        np.testing.assert_allclose(metric(x, x), 0.0, atol=1e-12)


monotone = st.sampled_from(
    [np.exp, lambda v: v**3 + v, lambda v: 10.0 * v - 7.0, lambda v: np.arctan(v), np.log1p]
)


@settings(max_examples=80, deadline=None)
@given(paired(), monotone, monotone)
def test_rank_metrics_invariant_under_strictly_increasing_transforms(data, f, g) -> None:
    x, y = data
    fx, gy = f(x), g(y)
    np.testing.assert_allclose(spearman_rho(fx, gy), spearman_rho(x, y), atol=1e-9)
    np.testing.assert_allclose(kendall_tau_b(fx, gy), kendall_tau_b(x, y), atol=1e-9)
    np.testing.assert_allclose(footrule_distance(fx, gy), footrule_distance(x, y), atol=1e-9)
    np.testing.assert_allclose(kendall_distance(fx, gy), kendall_distance(x, y), atol=1e-9)
    np.testing.assert_allclose(average_ranks(fx), average_ranks(x), atol=1e-9)
    # Reversing one side flips the sign of the correlations.
    np.testing.assert_allclose(spearman_rho(-fx, gy), -spearman_rho(x, y), atol=1e-9)
    np.testing.assert_allclose(kendall_tau_b(-fx, gy), -kendall_tau_b(x, y), atol=1e-9)


@settings(max_examples=80, deadline=None)
@given(paired(), st.floats(min_value=0.1, max_value=10), st.floats(min_value=-5, max_value=5))
def test_kappa_invariant_under_one_affine_relabelling_of_both_raters(data, scale, shift) -> None:
    # Kappa is an interval-scale agreement: not rank-invariant, but equally spaced labels
    # (the same map applied to both raters) leave it unchanged.
    x, y = data
    np.testing.assert_allclose(
        quadratic_weighted_kappa(scale * x + shift, scale * y + shift),
        quadratic_weighted_kappa(x, y),
        atol=1e-9,
    )
    np.testing.assert_allclose(quadratic_weighted_kappa(x, x), (np.ptp(x, axis=-1) > 0) * 1.0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 3, 5), elements=st.one_of(ints.map(float), st.just(np.nan))))
def test_multi_rater_kappa_bounded_and_invariant_to_rater_order(ratings: np.ndarray) -> None:
    k = multi_rater_kappa(ratings)
    assert np.all(np.isfinite(k)) and np.all((k >= -1.0) & (k <= 1.0))
    np.testing.assert_allclose(multi_rater_kappa(ratings[::-1]), k, atol=1e-12)
