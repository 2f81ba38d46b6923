"""Rounds with organic tasks: the synthetic part scored as before, organic tasks by the
consensus of the carried reliability, capped at what each miner showed on synthetic tasks,
and the caller's consensus."""

from __future__ import annotations

import numpy as np
import pytest

from commons.scoring import (
    ScoringParams,
    carry_reliability,
    score_mixed_round,
    score_round,
    weighted_consensus,
)

TRUE = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


def _round(rng: np.random.Generator, honest: int, ring: int, tasks: int) -> tuple[np.ndarray, np.ndarray]:
    """Honest miners rank truth + noise; a ring sends one shared random ranking per task."""
    subs = np.empty((honest + ring, tasks, 5))
    for t in range(tasks):
        subs[:honest, t] = (
            np.argsort(np.argsort(TRUE + rng.normal(0, 0.6, (honest, 5)), axis=1), axis=1) + 1.0
        )
        subs[honest:, t] = rng.permutation(5) + 1.0
    return subs, np.tile(TRUE, (tasks, 1))


def test_a_round_without_organic_tasks_is_score_round_from_the_carried_reliability():
    rng = np.random.default_rng(3)
    subs, gt = _round(rng, 6, 3, 20)
    carried = np.array([0.9, 0.8, np.nan, 0.7, 0.9, 0.6, 0.1, 0.2, np.nan])
    mixed = score_mixed_round(subs, [5] * 20, gt, np.zeros(20, bool), reliability=carried)
    start = np.where(np.isnan(carried), 0.9, carried)
    plain = score_round(subs, [5] * 20, gt, reliability=start)
    np.testing.assert_allclose(mixed.result.scores, plain.scores)
    np.testing.assert_allclose(mixed.measured, plain.reliability)
    # Carried: (1 - a) r + a q for the known, q for the new.
    expected = np.where(
        np.isnan(carried), plain.reliability, 0.7 * np.nan_to_num(carried) + 0.3 * plain.reliability
    )
    np.testing.assert_allclose(mixed.carried, expected)


def test_a_ring_that_agrees_with_itself_on_organic_tasks_gets_no_say_and_no_score():
    rng = np.random.default_rng(5)
    # As many colluders as honest miners: by numbers alone they would tie the consensus.
    subs, gt = _round(rng, 4, 4, 40)
    organic = np.arange(40) >= 20
    carried = np.full(8, np.nan)
    for _ in range(3):  # rounds earlier: reliability measured on synthetic tasks
        carried = score_mixed_round(subs, [5] * 40, gt, np.zeros(40, bool), reliability=carried).carried
    assert carried[4:].max() < 0.5 * carried[:4].min()
    held = np.where(organic[:, None], np.nan, gt)
    mixed = score_mixed_round(subs, [5] * 40, held, organic, reliability=carried)
    scores = mixed.result.scores
    assert scores[:4, organic].mean() > 0.5 and scores[4:, organic].mean() < 0.15
    # Capped: no miner earns more on organic tasks than its answered synthetic mean.
    synthetic_mean = scores[:, ~organic].mean(axis=1)
    assert np.all(scores[:, organic] <= synthetic_mean[:, None] + 1e-12)
    # The callers' consensus is the honest order.
    for t in np.flatnonzero(organic):
        _, ranks = weighted_consensus(subs[:, t], carried)
        assert np.corrcoef(ranks, TRUE)[0, 1] > 0.8


def test_the_compact_layout_gives_the_dense_result():
    rng = np.random.default_rng(9)
    subs, gt = _round(rng, 5, 2, 12)
    organic = np.arange(12) % 3 == 0
    held = np.where(organic[:, None], np.nan, gt)
    carried = np.array([0.8, 0.9, 0.7, np.nan, 0.85, 0.2, 0.1])
    dense = score_mixed_round(subs, [5] * 12, held, organic, reliability=carried)
    slots = np.tile(np.arange(7)[:, None], (1, 12))
    compact = score_mixed_round(subs, [5] * 12, held, organic, reliability=carried, slot_miners=slots)
    np.testing.assert_allclose(compact.result.scores, dense.result.scores, atol=1e-12)
    np.testing.assert_allclose(compact.carried, dense.carried, atol=1e-12)


def test_organic_tasks_use_one_pass_of_the_given_weights():
    rng = np.random.default_rng(2)
    subs, _ = _round(rng, 4, 2, 10)
    only_organic = score_mixed_round(subs, [5] * 10, None, np.ones(10, bool), reliability=np.full(6, 0.5))
    direct = score_round(
        subs, [5] * 10, None, reliability=np.full(6, 0.5), params=ScoringParams(iterations=1)
    )
    # With no synthetic task the cap is r^γ.
    np.testing.assert_allclose(only_organic.result.scores, np.minimum(direct.scores, 0.5**3))
    assert np.isnan(only_organic.measured).all()


def test_carry_reliability():
    assert carry_reliability({"a": 0.5, "b": 0.9}, {"a": 1.0, "c": 0.4}, alpha=0.5) == {
        "a": 0.75,
        "b": 0.9,
        "c": 0.4,
    }
    assert carry_reliability({}, {"x": float("nan"), "y": 2.0}) == {"x": 0.0, "y": 1.0}
    with pytest.raises(ValueError):
        carry_reliability({}, {}, alpha=0.0)


def test_weighted_consensus_weights_by_reliability_squared_and_reads_scores():
    answers = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    mean, rank = weighted_consensus(answers, np.array([1.0, 0.5]))
    np.testing.assert_allclose(mean, [(1 + 0.25 * 3) / 1.25, 2.0, (3 + 0.25) / 1.25])
    assert rank.tolist() == [1.0, 2.0, 3.0]
    _, by_score = weighted_consensus(np.array([[9.0, 5.0, 1.0]]), np.array([0.0]), higher_is_better=True)
    assert by_score.tolist() == [1.0, 2.0, 3.0]  # no reliability anywhere: uniform
