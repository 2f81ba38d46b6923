"""The steps of ``score_round``, each against the formula in its docstring on small rounds
worked out by hand (ranks of three completions unless noted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from commons.scoring import ScoringParams
from commons.scoring._metrics import _rater_stats
from commons.scoring._round import (
    Answers,
    blend,
    consensus_agreement,
    corroboration,
    ground_truth_terms,
    initial_reliability,
    rank_answers,
    sharpen,
    task_agreement,
    updated_reliability,
)

NAN = math.nan


def answers_of(
    *rows: list[float],
    n_completions: int = 3,
    higher_is_better: bool = False,
    slots: np.ndarray | None = None,
    reliability: np.ndarray | None = None,
) -> Answers:
    """One task, one row per miner (or slot)."""
    subs = np.array(rows, dtype=float)[:, None, :]
    return rank_answers(subs, [n_completions], higher_is_better, slots, reliability)


# ------------------------------------------------------------------ ranking the answers


def test_rank_answers_ranks_real_completions_of_complete_answers() -> None:
    # The 4th slot is padding; miner 1's answer is partial; miner 2 ties its first two.
    a = answers_of([3, 1, 2, 99], [1, NAN, 2, NAN], [2, 2, 1, NAN], n_completions=3)
    assert a.n_miners == 3 and a.slots is None
    assert a.items.tolist() == [[True, True, True, False]]
    assert a.answered[:, 0].tolist() == [True, False, True]
    assert a.ranks[:, 0].tolist() == [[3, 1, 2, 0], [0, 0, 0, 0], [2.5, 2.5, 1, 0]]
    assert a.n_items[:, 0].tolist() == [3, 0, 3]
    # centred = R - (n + 1) / 2 on the valid items; s_rr = Σ centred²
    assert a.centred[:, 0].tolist() == [[1, -1, 0, 0], [0, 0, 0, 0], [0.5, 0.5, -1, 0]]
    assert a.s_rr[:, 0].tolist() == [2.0, 0.0, 1.5]


def test_rank_answers_negates_where_higher_is_better_and_skips_short_tasks() -> None:
    a = answers_of([10, 30, 20], higher_is_better=True)
    assert a.ranks[0, 0].tolist() == [3, 1, 2]
    short = answers_of([1, NAN, NAN], n_completions=1)
    assert not short.answered.any() and not short.items.any()


def test_rank_answers_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="n_completions"):
        rank_answers(np.ones((2, 1, 3)), [3, 3], False, None, None)
    with pytest.raises(ValueError, match="reliability has 2 entries"):
        rank_answers(np.ones((1, 1, 3)), [3], False, np.array([[2]]), np.ones(2))


# ------------------------------------------------------------------ step 1: ground truth


def test_ground_truth_terms_follow_the_formula() -> None:
    a = answers_of([1, 2, 3], [3, 2, 1], [1, 3, 2])
    t = ground_truth_terms(a, np.array([[1.0, 2.0, 3.0]]))
    assert t.has_gt.tolist() == [True] and t.gt_info.tolist() == [1.0] and t.full_truth
    # [1,3,2]: rho = 1 - 6·2/(3·8) = 1/2; d_F = 2/floor(9/2) = 1/2; d_K = 1/3 pairs
    # discordant; d = 5/12; a_gt = (1/2 + 1 - 10/12) / 2 = 1/3; tau = (2 - 1)/3.
    np.testing.assert_allclose(t.rho[:, 0], [1.0, -1.0, 0.5])
    np.testing.assert_allclose(t.distance[:, 0], [0.0, 1.0, 5 / 12])
    np.testing.assert_allclose(t.a_gt[:, 0], [1.0, -1.0, 1 / 3])
    np.testing.assert_allclose(t.tau[:, 0], [1.0, -1.0, 1 / 3])


def test_ground_truth_terms_on_partial_truth_rank_the_known_completions() -> None:
    a = answers_of([1, 2, 3], [3, 2, 1], [1, NAN, 2])
    t = ground_truth_terms(a, np.array([[1.0, NAN, 2.0]]))
    # k = 2 of n = 3 known: gt_info = (k - 1)/(n - 1) = 1/2; [3, 1] on the known ones
    # ranks [2, 1], reversed: rho = -1, d_F = 2/2, d_K = 1.
    assert not t.full_truth and t.gt_info.tolist() == [0.5]
    assert t.gt_ok[:, 0].tolist() == [True, True, False]
    np.testing.assert_allclose(t.a_gt[:, 0], [1.0, -1.0, 0.0])


@pytest.mark.parametrize("truth", [None, np.array([[2.0, 2.0, 2.0]]), np.array([[1.0, NAN, NAN]])])
def test_ground_truth_terms_without_two_distinct_known_ranks_give_nothing(truth: np.ndarray | None) -> None:
    t = ground_truth_terms(answers_of([1, 2, 3], [3, 2, 1]), truth)
    assert t.has_gt.tolist() == [False] and t.gt_info.tolist() == [0.0]
    assert not t.gt_ok.any() and not t.a_gt.any() and not t.rho.any() and not t.distance.any()


# ------------------------------------------------------------------ step 5: reliability


def test_initial_reliability_is_relative_to_the_most_reliable() -> None:
    np.testing.assert_allclose(initial_reliability(np.array([2.0, 1.0, NAN, -1.0]), 4), [1, 0.5, 0, 0])
    assert initial_reliability(None, 3).tolist() == [1, 1, 1]
    assert initial_reliability(np.zeros(2), 2).tolist() == [1, 1]
    with pytest.raises(ValueError, match="2 entries for 3 miners"):
        initial_reliability(np.ones(2), 3)


def test_updated_reliability_is_the_mean_positive_agreement_over_answered_tasks() -> None:
    # Miner 0 skips task 1: its reliability is its mean over task 0 alone.
    subs = np.array([[[1, 2, 3], [NAN, NAN, NAN]], [[1, 2, 3], [1, 2, 3]]], dtype=float)
    a = rank_answers(subs, [3, 3], False, None, None)
    q = updated_reliability(np.array([[0.5, 0.9], [1.0, -0.2]]), a, np.array([0.3, 0.3]))
    np.testing.assert_allclose(q, [0.5, 0.5])  # max(0, 1.0) and max(0, -0.2) average to 0.5
    kept = updated_reliability(np.array([[-0.5, 0.0], [0.0, -1.0]]), a, np.array([0.3, 0.7]))
    assert kept.tolist() == [0.3, 0.7]


# ------------------------------------------------------------------ step 3: task agreement


def trust_of(a: Answers, q: list[float], params: ScoringParams) -> tuple[float, float]:
    agreement, trust = task_agreement(a, np.array(q), _rater_stats(a.ranks, a.items), params)
    return float(agreement[0]), float(trust[0])


def test_task_agreement_is_the_weighted_pairwise_kappa() -> None:
    a = answers_of([1, 2, 3], [1, 2, 3], [1, 3, 2])
    params = ScoringParams(kappa_min=0.5, kappa_full=0.9, agreement_floor=0.3)
    # Every var R = 2/3, every mean 2; pairs (0,2) and (1,2) differ by mean (0+1+1)/3 = 2/3.
    # Equal weights: A = 1 - (4/3) / (3 · 4/3) = 2/3;  u = (2/3 - 0.5) / 0.4 = 5/12.
    agreement, trust = trust_of(a, [1, 1, 1], params)
    assert agreement == pytest.approx(2 / 3) and trust == pytest.approx(5 / 12)
    # w = [1, 1, 0.5]: A = 1 - (2 · 0.5 · 2/3) / ((1 + 0.5 + 0.5) · 4/3) = 3/4.
    assert trust_of(a, [2, 2, 1], params)[0] == pytest.approx(0.75)
    # q_2 / max q = 0.1 is floored at 0.3: A = 1 - 0.4 / (1.6 · 4/3) = 0.8125.
    assert trust_of(a, [1, 1, 0.1], params)[0] == pytest.approx(0.8125)
    assert trust_of(a, [1, 1, 0], params)[0] == pytest.approx(0.8125)


def test_task_agreement_trust_is_clipped() -> None:
    params = ScoringParams(kappa_min=0.2, kappa_full=0.5)
    assert trust_of(answers_of([1, 2, 3], [1, 2, 3]), [1, 1], params) == (1.0, 1.0)
    # Reversed rankings: obs = (4 + 0 + 4)/3 = 8/3 over exp 4/3: A = -1, no trust.
    assert trust_of(answers_of([1, 2, 3], [3, 2, 1]), [1, 1], params) == (pytest.approx(-1.0), 0.0)


# ------------------------------------------------------------------ step 2: consensus


def test_consensus_is_the_leave_one_out_sum_weighted_by_squared_reliability() -> None:
    a = answers_of([1, 2, 3], [1, 2, 3], [3, 2, 1])
    c = consensus_agreement(a, np.array([1.0, 0.5, 1.0]), ScoringParams(min_peers=2))
    # Σ_{l≠m} q_l² R_l
    np.testing.assert_allclose(c.consensus[:, 0], [[3.25, 2.5, 1.75], [4, 4, 4], [1.25, 2.5, 3.75]])
    # Miner 0's consensus ranks [3, 2, 1] against its [1, 2, 3]: rho = kappa = -1; miner 1's
    # is a tie (rho = kappa = 0); miner 2's [1, 2, 3] against its [3, 2, 1].
    np.testing.assert_allclose(c.a_c[:, 0], [-1.0, 0.0, -1.0])
    assert c.ok.all()


def test_consensus_agreement_averages_rho_and_kappa() -> None:
    a = answers_of([1, 2, 3], [1, 2, 3], [2, 1, 3])
    c = consensus_agreement(a, np.ones(3), ScoringParams(min_peers=2))
    # Miner 0: K = ranks of [3, 3, 6] = [1.5, 1.5, 3], centred [-.5, -.5, 1] against [-1, 0, 1]:
    # s_rc = 1.5, s_rr = 2, s_cc = 1.5; rho = 1.5/√3, kappa = 2 · 1.5 / (2 + 1.5) = 6/7.
    rho, kappa = 1.5 / math.sqrt(3.0), 6 / 7
    assert c.rho[0, 0] == pytest.approx(rho) and c.kappa[0, 0] == pytest.approx(kappa)
    assert c.a_c[0, 0] == pytest.approx((rho + kappa) / 2)


def test_consensus_needs_min_peers_of_positive_weight() -> None:
    a = answers_of([1, 2, 3], [1, 2, 3], [3, 2, 1])
    q = np.array([1.0, 1.0, 0.0])  # miner 2 has no say in the others' consensus
    c = consensus_agreement(a, q, ScoringParams(min_peers=2))
    assert c.ok[:, 0].tolist() == [False, False, True]
    np.testing.assert_allclose(c.a_c[:, 0], [0.0, 0.0, -1.0])
    c1 = consensus_agreement(a, q, ScoringParams(min_peers=1))
    assert c1.ok.all()
    np.testing.assert_allclose(c1.a_c[:, 0], [1.0, 1.0, -1.0])


def test_consensus_in_the_compact_layout_weights_each_slot_by_its_miner() -> None:
    # Slot 0 holds miner 2, slot 1 miner 0, slot 2 miner 1 (q = [1, 0.5, 1] by miner).
    slots = np.array([[2], [0], [1]])
    a = answers_of([3, 2, 1], [1, 2, 3], [1, 2, 3], slots=slots, reliability=np.ones(3))
    c = consensus_agreement(a, np.array([1.0, 0.5, 1.0]), ScoringParams(min_peers=2))
    np.testing.assert_allclose(c.consensus[0, 0], [1.25, 2.5, 3.75])  # 1 · R_slot1 + 0.25 · R_slot2
    np.testing.assert_allclose(c.consensus[1, 0], [3.25, 2.5, 1.75])  # 1 · R_slot0 + 0.25 · R_slot2


# ------------------------------------------------------------------ step 4: blend


def test_corroboration_is_the_positive_part_of_rho_of_consensus_and_truth() -> None:
    a = answers_of([1, 2, 3], [1, 2, 3], [3, 2, 1])
    cons = consensus_agreement(a, np.ones(3), ScoringParams(min_peers=2))
    # Miner 2's consensus is [1, 2, 3]; miner 0's and 1's a tie (rho 0).
    same = corroboration(a, ground_truth_terms(a, np.array([[1.0, 2.0, 3.0]])), cons)
    np.testing.assert_allclose(same[:, 0], [0.0, 0.0, 1.0])
    reversed_ = corroboration(a, ground_truth_terms(a, np.array([[3.0, 2.0, 1.0]])), cons)
    np.testing.assert_allclose(reversed_[:, 0], [0.0, 0.0, 0.0])
    partial = corroboration(a, ground_truth_terms(a, np.array([[1.0, NAN, 3.0]])), cons)
    np.testing.assert_allclose(partial[:, 0], [0.0, 0.0, 1.0])


def blend_one(
    a_c: float, a_gt: float, u: float, info: float, c: float, *, cons: bool = True, gt: bool = True
) -> float:
    one = np.array([[True]])
    out = blend(
        np.array([[a_c]]),
        np.array([[a_gt]]),
        np.array([u]),
        one & cons,
        np.array([info]),
        one & gt,
        np.array([[c]]),
    )
    return float(out[0, 0])


def test_blend_weights_consensus_by_trust_and_truth_by_information() -> None:
    # w_c = 1, w_g = 1 · (1 - 1 · (1 - 0²)) = 0: a trusted consensus contradicting the truth wins.
    assert blend_one(0.5, 1.0, u=1.0, info=1.0, c=0.0) == pytest.approx(0.5)
    # c = 1: w_g = 1, a = (0.5 + 1) / 2.
    assert blend_one(0.5, 1.0, u=1.0, info=1.0, c=1.0) == pytest.approx(0.75)
    # u = 1/2, k - 1 / n - 1 = 1/2, c = 0: w_g = 1/2 · (1 - 1/2) = 1/4; a = (1/4 + 1/4) / (3/4).
    assert blend_one(0.5, 1.0, u=0.5, info=0.5, c=0.0) == pytest.approx(2 / 3)
    # No consensus: the truth alone; no truth either: 0.
    assert blend_one(0.5, -0.4, u=1.0, info=0.5, c=0.0, cons=False) == pytest.approx(-0.4)
    assert blend_one(0.5, -0.4, u=1.0, info=1.0, c=1.0, cons=False, gt=False) == 0.0


def test_sharpen_raises_positive_agreement_to_gamma() -> None:
    scores = sharpen(np.array([[0.5, -0.2, 1.0]]), np.array([[True, True, False]]), 3.0)
    np.testing.assert_allclose(scores, [[0.125, 0.0, 0.0]])
