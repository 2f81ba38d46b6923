"""``score_round``: defined on every odd input, and scoring the way docs/scoring.md says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from commons.scoring import RoundResult, ScoringParams, score_round

TRUTH = np.array([1.0, 2.0, 3.0, 4.0])


def assert_sane(result: RoundResult, miners: int, tasks: int) -> None:
    for name in (
        "scores",
        "agreement",
        "kappa",
        "rho_consensus",
        "rho_ground_truth",
        "tau_ground_truth",
        "distance",
    ):
        arr = getattr(result, name)
        assert arr.shape == (miners, tasks), name
        assert np.all(np.isfinite(arr)), name
    for name in ("task_agreement", "consensus_trust", "has_ground_truth"):
        assert getattr(result, name).shape == (tasks,)
        assert np.all(np.isfinite(getattr(result, name).astype(float))), name
    assert result.reliability.shape == (miners,) and np.all(np.isfinite(result.reliability))
    assert np.all((result.scores >= 0) & (result.scores <= 1))
    for name in ("kappa", "rho_consensus", "rho_ground_truth", "tau_ground_truth", "agreement"):
        assert np.all(np.abs(getattr(result, name)) <= 1.0)
    assert np.all((result.distance >= 0) & (result.distance <= 1))
    assert np.all((result.consensus_trust >= 0) & (result.consensus_trust <= 1))
    assert np.all(result.scores[~result.answered] == 0.0)


def one_task(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=float)[:, None, :]


def noisy_round(seed: int, miners: int = 12, tasks: int = 30, width: int = 5, noise: float = 0.4):
    rng = np.random.default_rng(seed)
    true = np.argsort(np.argsort(rng.random((tasks, width)), axis=1), axis=1) + 1.0
    subs = true[None] + rng.normal(0, noise, (miners, tasks, width))
    return subs, np.full(tasks, width), true


# ------------------------------------------------------------------ edge cases


def test_constant_ranking_scores_zero_and_disturbs_nobody() -> None:
    subs = one_task([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [2, 2, 2, 2])
    result = score_round(subs, [4], TRUTH[None])
    assert_sane(result, 4, 1)
    assert result.scores[3, 0] == 0.0
    assert result.rho_ground_truth[3, 0] == 0.0 and result.kappa[3, 0] == 0.0
    np.testing.assert_allclose(result.scores[:3, 0], 1.0)


def test_all_miners_constant_without_ground_truth() -> None:
    subs = one_task([2, 2, 2], [5, 5, 5], [1, 1, 1])
    result = score_round(subs, [3])
    assert_sane(result, 3, 1)
    assert np.all(result.scores == 0.0)
    assert result.task_agreement[0] == 0.0


def test_ties_are_average_ranks() -> None:
    # [1, 1, 3, 4] ties the two best; it still correlates strongly with the truth.
    subs = one_task([1, 1, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4])
    result = score_round(subs, [4], TRUTH[None])
    assert_sane(result, 3, 1)
    assert 0.5 < result.scores[0, 0] < result.scores[1, 0]
    assert result.rho_ground_truth[0, 0] == pytest.approx(np.corrcoef([1.5, 1.5, 3, 4], TRUTH)[0, 1])


def test_missing_and_partial_answers_score_zero() -> None:
    subs = one_task([1, 2, 3, 4], [1, 2, 3, 4], [np.nan] * 4, [1, 2, np.nan, 4], [1, 2, 3, 4])
    result = score_round(subs, [4], TRUTH[None])
    assert_sane(result, 5, 1)
    assert result.answered[:, 0].tolist() == [True, True, False, False, True]
    assert result.scores[2, 0] == 0.0 and result.scores[3, 0] == 0.0
    np.testing.assert_allclose(result.scores[[0, 1, 4], 0], 1.0)


def test_one_miner_alone_is_scored_on_ground_truth() -> None:
    result = score_round(one_task([1, 2, 3, 4]), [4], TRUTH[None])
    assert_sane(result, 1, 1)
    assert result.scores[0, 0] == pytest.approx(1.0)
    assert result.kappa[0, 0] == 0.0  # no consensus
    reverse = score_round(one_task([4, 3, 2, 1]), [4], TRUTH[None])
    assert reverse.scores[0, 0] == 0.0
    swap = score_round(one_task([2, 1, 3, 4]), [4], TRUTH[None])
    assert 0.0 < swap.scores[0, 0] < 1.0


def test_lone_valid_miner_among_silent_ones() -> None:
    subs = one_task([np.nan] * 4, [1, 2, 4, 3], [np.nan] * 4)
    result = score_round(subs, [4], TRUTH[None])
    assert_sane(result, 3, 1)
    assert result.scores[1, 0] > 0.3 and result.scores[[0, 2], 0].tolist() == [0.0, 0.0]


def test_one_miner_without_ground_truth_scores_zero() -> None:
    result = score_round(one_task([1, 2, 3, 4]), [4], None)
    assert_sane(result, 1, 1)
    assert result.scores[0, 0] == 0.0


def test_two_miners_have_too_few_peers_for_consensus() -> None:
    result = score_round(one_task([1, 2, 3, 4], [1, 2, 3, 4]), [4], None)
    assert_sane(result, 2, 1)
    assert np.all(result.scores == 0.0)  # min_peers = 2 by default
    relaxed = score_round(one_task([1, 2, 3, 4], [1, 2, 3, 4]), [4], None, params=ScoringParams(min_peers=1))
    np.testing.assert_allclose(relaxed.scores[:, 0], 1.0)


def test_all_identical_miners() -> None:
    subs = np.repeat(one_task([3, 1, 2, 4]), 6, axis=0)
    with_truth = score_round(subs, [4], np.array([[3.0, 1.0, 2.0, 4.0]]))
    without = score_round(subs, [4])
    for result in (with_truth, without):
        assert_sane(result, 6, 1)
        np.testing.assert_allclose(result.scores, 1.0)
        assert result.task_agreement[0] == pytest.approx(1.0)
    # Unanimous humans against a truth that only partly agrees with them (rho 0.4): the
    # truth keeps weight rho² = 0.16 against the consensus's 1; they lose a little, and a
    # miner who submits that truth loses much more.
    wrong_truth = score_round(np.concatenate([subs, TRUTH[None, None]]), [4], TRUTH[None])
    assert_sane(wrong_truth, 7, 1)
    assert np.all(wrong_truth.scores[:6] > 0.7)
    assert wrong_truth.scores[6, 0] < 0.5 * wrong_truth.scores[0, 0]


def test_tasks_of_two_completions() -> None:
    subs = np.array([[[1, 2]], [[1, 2]], [[1, 2]], [[2, 1]], [[1, 1]]], dtype=float)
    result = score_round(subs, [2], np.array([[1.0, 2.0]]))
    assert_sane(result, 5, 1)
    np.testing.assert_allclose(result.scores[:3, 0], 1.0)
    assert result.scores[3, 0] == 0.0 and result.scores[4, 0] == 0.0
    assert result.rho_ground_truth[3, 0] == -1.0


def test_tasks_of_fewer_than_two_completions_score_zero() -> None:
    subs = np.array([[[1, np.nan], [1, 2], [7, 7]]] * 4, dtype=float)
    result = score_round(subs, [1, 2, 0], np.array([[1.0, np.nan], [1.0, 2.0], [np.nan, np.nan]]))
    assert_sane(result, 4, 3)
    assert np.all(result.scores[:, [0, 2]] == 0.0)
    assert not result.answered[:, [0, 2]].any()
    np.testing.assert_allclose(result.scores[:, 1], 1.0)


def test_variable_completion_counts_ignore_the_padding() -> None:
    subs, n_comp, true = noisy_round(1, width=6)
    n_comp = np.array([2, 3, 4, 5, 6] * 6)
    pad = np.arange(6)[None, :] >= n_comp[:, None]
    subs_nan = subs.copy()
    subs_nan[:, pad] = np.nan
    subs_junk = subs.copy()
    subs_junk[:, pad] = 99.0
    gt = np.where(pad, np.nan, true)
    a = score_round(subs_nan, n_comp, gt)
    b = score_round(subs_junk, n_comp, np.where(pad, -5.0, true))
    assert_sane(a, 12, 30)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.answered.all()


def test_partial_ground_truth() -> None:
    subs, n_comp, true = noisy_round(2, noise=0.2)
    partial = true.copy()
    partial[:, [1, 3]] = np.nan  # two of five completions without a known rank
    full = score_round(subs, n_comp, true)
    part = score_round(subs, n_comp, partial)
    assert_sane(part, 12, 30)
    assert part.has_ground_truth.all()
    assert part.scores.mean() > 0.7
    assert abs(part.scores.mean() - full.scores.mean()) < 0.1
    # One known completion is no ground truth at all.
    single = true.copy()
    single[:, 1:] = np.nan
    one = score_round(subs, n_comp, single)
    assert_sane(one, 12, 30)
    assert not one.has_ground_truth.any() and np.all(one.rho_ground_truth == 0)


def test_absent_ground_truth_scores_on_consensus() -> None:
    subs, n_comp, _ = noisy_round(3, noise=0.2)
    result = score_round(subs, n_comp, None)
    assert_sane(result, 12, 30)
    assert not result.has_ground_truth.any()
    assert result.scores.mean() > 0.7
    assert np.all(result.distance == 0.0)


def test_ranking_and_multi_score_criteria_agree() -> None:
    subs, n_comp, true = noisy_round(4)
    ranks = score_round(subs, n_comp, true)
    scores = score_round(10.0 - subs, n_comp, true, higher_is_better=True)
    per_task = score_round(10.0 - subs, n_comp, true, higher_is_better=np.ones(30, dtype=bool))
    np.testing.assert_allclose(scores.scores, ranks.scores, atol=1e-12)
    np.testing.assert_allclose(per_task.scores, ranks.scores, atol=1e-12)
    # A mixed round: the orientation is per task.
    mixed_flags = np.arange(30) % 2 == 0
    mixed = np.where(mixed_flags[None, :, None], 10.0 - subs, subs)
    np.testing.assert_allclose(
        score_round(mixed, n_comp, true, higher_is_better=mixed_flags).scores, ranks.scores, atol=1e-12
    )


def test_empty_rounds() -> None:
    assert_sane(score_round(np.zeros((0, 3, 4)), [4, 4, 4], np.tile(TRUTH, (3, 1))), 0, 3)
    assert_sane(score_round(np.zeros((3, 0, 4)), np.zeros(0, dtype=int)), 3, 0)


def test_malformed_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="miners, tasks, completions"):
        score_round(np.zeros((3, 4)), [4, 4, 4])
    with pytest.raises(ValueError, match="n_completions"):
        score_round(np.zeros((3, 2, 4)), [4])
    with pytest.raises(ValueError, match="completion counts"):
        score_round(np.zeros((3, 1, 4)), [5])
    with pytest.raises(ValueError, match="ground_truth"):
        score_round(np.zeros((3, 1, 4)), [4], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="reliability"):
        score_round(np.zeros((3, 1, 4)), [4], reliability=np.ones(2))
    for bad in ({"kappa_min": 0.6}, {"min_peers": 0}, {"sharpness": 0.0}, {"agreement_floor": 2.0}):
        with pytest.raises(ValueError):
            ScoringParams(**bad)


# ------------------------------------------------------------------ mechanism


def test_honest_beats_random_constant_and_reverse() -> None:
    rng = np.random.default_rng(105)
    subs, n_comp, true = noisy_round(5, miners=14, tasks=60, noise=0.5)
    subs[10] = np.argsort(rng.random((60, 5)), axis=1)  # random
    subs[11] = np.arange(5.0)  # constant
    subs[12] = 6.0 - true  # reverse
    subs[13] = 3.0  # all ties
    result = score_round(subs, n_comp, true)
    means = result.miner_scores()
    assert means[:10].min() > 0.6
    assert means[10] < 0.2 * np.median(means[:10])
    assert means[11] < 0.2 * np.median(means[:10])
    assert means[12] == 0.0 and means[13] == 0.0
    assert result.reliability[:10].min() > 3 * result.reliability[10:].max()


def test_no_consensus_trust_when_miners_do_not_agree() -> None:
    rng = np.random.default_rng(6)
    subs = np.argsort(rng.random((30, 40, 5)), axis=-1).astype(float)  # nobody agrees
    result = score_round(subs, np.full(40, 5), None)
    assert_sane(result, 30, 40)
    assert np.all(result.task_agreement < 0.2)
    assert np.all(result.consensus_trust == 0.0)
    assert np.all(result.scores == 0.0)


def test_human_agreement_wins_over_a_contradicting_ground_truth() -> None:
    subs, n_comp, true = noisy_round(7, miners=10, tasks=20, noise=0.3)
    wrong = 6.0 - true  # the synthetic truth says the opposite
    oracle = wrong[None]  # a miner who leaked the (wrong) ground truth
    result = score_round(np.concatenate([subs, oracle]), n_comp, wrong)
    assert_sane(result, 11, 20)
    assert np.all(result.consensus_trust == 1.0)
    assert result.scores[:10].mean() > 0.8
    assert result.scores[10].mean() < 0.05


def test_ground_truth_decides_when_miners_do_not_agree() -> None:
    rng = np.random.default_rng(8)
    subs = np.argsort(rng.random((20, 40, 5)), axis=-1).astype(float) + 1
    true = np.tile(np.arange(1.0, 6.0), (40, 1))
    subs[0] = true  # one miner gets it right, nobody agrees with anybody
    result = score_round(subs, np.full(40, 5), true)
    # Agreement among 20 miners of whom 19 are random stays under kappa_min but for the
    # odd chance fluctuation; on those tasks the consensus gets no trust.
    assert np.mean(result.consensus_trust == 0.0) >= 0.9
    no_trust = result.consensus_trust == 0.0
    np.testing.assert_allclose(result.scores[0, no_trust], 1.0)
    assert result.scores[0].mean() > 0.9
    assert result.scores[1:].mean() < 0.15


def test_colluders_lose_their_say_in_the_consensus() -> None:
    rng = np.random.default_rng(109)
    subs, n_comp, true = noisy_round(9, miners=14, tasks=60, noise=0.5)
    shared = np.argsort(rng.random((60, 5)), axis=1).astype(float)
    subs[9:] = shared  # 5 of 14 collude on one random ranking per task
    for gt in (true, None):
        result = score_round(subs, n_comp, gt)
        means = result.miner_scores()
        assert means[9:].max() < 0.2 * means[:9].min(), gt is None
        assert result.reliability[9:].max() < 0.5 * result.reliability[:9].min()


def test_prior_reliability_seeds_the_consensus() -> None:
    subs, n_comp, _ = noisy_round(10, miners=6, tasks=10)
    result = score_round(subs, n_comp, None, reliability=np.array([1, 1, 1, 1, 0, 0.0]))
    assert_sane(result, 6, 10)
    uniform = score_round(subs, n_comp, None, reliability=np.zeros(6))  # all zero: uniform
    np.testing.assert_allclose(uniform.scores, score_round(subs, n_comp, None).scores)


def test_better_rankings_score_higher() -> None:
    subs, n_comp, true = noisy_round(11, miners=8, tasks=300, noise=0.0)
    rng = np.random.default_rng(111)
    for m, noise in enumerate(np.linspace(0.0, 2.0, 8)):
        subs[m] = true + rng.normal(0, noise, true.shape)
    means = score_round(subs, n_comp, true).miner_scores()
    assert np.all(np.diff(means) < 0.03)  # falls with noise (allowing sampling wobble)
    assert means[0] > means[-1] + 0.3


def test_deterministic() -> None:
    subs, n_comp, true = noisy_round(12)
    a = score_round(subs, n_comp, true)
    b = score_round(subs.copy(), n_comp, true.copy())
    np.testing.assert_array_equal(a.scores, b.scores)


# ------------------------------------------------------------------ properties

values = st.one_of(
    st.integers(min_value=1, max_value=4).map(float), st.just(np.nan), st.just(np.inf), st.just(-1e300)
)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (5, 3, 4), elements=values),
    arrays(np.int64, (3,), elements=st.integers(min_value=0, max_value=4)),
    arrays(np.float64, (3, 4), elements=values),
    st.booleans(),
    st.booleans(),
)
def test_never_nan_never_raises(subs, n_comp, gt, use_gt, higher) -> None:
    result = score_round(subs, n_comp, gt if use_gt else None, higher_is_better=higher)
    assert_sane(result, 5, 3)
    odd_prior = np.array([np.inf, np.nan, -1.0, 1e308, 0.5])
    assert_sane(score_round(subs, n_comp, gt, reliability=odd_prior), 5, 3)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000),
    st.permutations(list(range(6))),
    st.permutations(list(range(5))),
)
def test_equivariant_under_miner_and_completion_permutations(seed, miner_perm, comp_perm) -> None:
    subs, n_comp, true = noisy_round(seed, miners=6, tasks=8, noise=1.0)
    subs[2, 3] = np.nan
    base = score_round(subs, n_comp, true)
    moved = score_round(subs[miner_perm][:, :, comp_perm], n_comp, true[:, comp_perm])
    np.testing.assert_allclose(moved.scores, base.scores[miner_perm], atol=1e-9)


def test_module_docstring_example_runs() -> None:
    import doctest

    import commons.scoring

    failures, tried = doctest.testmod(commons.scoring)
    assert tried > 0 and failures == 0


def test_diagnostics_match_scipy_and_sklearn_per_miner_and_task() -> None:
    import warnings

    from scipy.stats import kendalltau, rankdata, spearmanr
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(13)
    miners, tasks, width = 7, 12, 5
    true = np.argsort(np.argsort(rng.random((tasks, width)), axis=1), axis=1) + 1.0
    workers = np.argsort(np.argsort(true[None, None] + rng.normal(0, 1.0, (miners, 3, tasks, width)), -1), -1)
    subs = workers.mean(axis=1) + 1.0  # mean of 3 workers' ranks: ties
    subs[2, 4] = np.nan
    # One pass: uniform consensus weights, so the leave-one-out consensus is a plain mean.
    result = score_round(subs, np.full(tasks, width), true, params=ScoringParams(iterations=1))
    labels = np.arange(2, 2 * width + 1)
    for t in range(tasks):
        answered = np.flatnonzero(np.all(np.isfinite(subs[:, t]), axis=1))
        ranks = {m: rankdata(subs[m, t]) for m in answered}
        for m in answered:
            others = np.mean([ranks[k] for k in answered if k != m], axis=0)
            cons = rankdata(others)
            r, g = ranks[m], true[t]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant input: NaN, which we define as 0
                expected = {
                    "kappa": cohen_kappa_score(
                        (2 * r).astype(int), (2 * cons).astype(int), weights="quadratic", labels=labels
                    ),
                    "rho_consensus": spearmanr(r, cons).statistic,
                    "rho_ground_truth": spearmanr(r, g).statistic,
                    "tau_ground_truth": kendalltau(r, g).statistic,
                }
            for name, value in expected.items():
                assert getattr(result, name)[m, t] == pytest.approx(np.nan_to_num(value), abs=1e-9), name
