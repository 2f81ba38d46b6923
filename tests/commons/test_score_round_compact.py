"""The compact layout of ``score_round`` (a few miners per task out of many) is the dense
round with every unassigned miner missing, slot for slot."""

from __future__ import annotations

import numpy as np
import pytest

from commons.scoring import score_round, slot_window_mean, window_mean


def _round(seed: int, n_miners: int = 12, n_tasks: int = 40, per_task: int = 4, width: int = 6):
    rng = np.random.default_rng(seed)
    truth = np.full((n_tasks, width), np.nan)
    n_comp = rng.integers(2, width + 1, size=n_tasks)
    dense = np.full((n_miners, n_tasks, width), np.nan)
    slots = np.full((per_task, n_tasks), -1, dtype=np.int64)
    quality = rng.uniform(0, 2, size=n_miners)  # noise per miner: some good, some near random
    for t in range(n_tasks):
        n = int(n_comp[t])
        order = rng.permutation(n) + 1.0
        known = rng.random(n) < 0.8
        truth[t, :n] = np.where(known, order, np.nan)
        k = int(rng.integers(1, per_task + 1))  # some tasks have empty slots
        chosen = rng.choice(n_miners, size=k, replace=False)
        slots[:k, t] = rng.permutation(chosen)
        for m in chosen:
            if rng.random() < 0.1:
                continue  # assigned, no answer
            dense[m, t, :n] = order + rng.normal(0, quality[m], size=n)
    compact = np.full((per_task, n_tasks, width), np.nan)
    for t in range(n_tasks):
        for k in range(per_task):
            if slots[k, t] >= 0:
                compact[k, t] = dense[slots[k, t], t]
    return dense, compact, slots, n_comp, truth


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_compact_round_is_the_dense_round(seed):
    dense, compact, slots, n_comp, truth = _round(seed)
    n_miners = dense.shape[0]
    a = score_round(dense, n_comp, truth)
    b = score_round(compact, n_comp, truth, slot_miners=slots, reliability=np.ones(n_miners))
    t_idx = np.broadcast_to(np.arange(slots.shape[1]), slots.shape)
    held = slots >= 0
    for field in ("scores", "agreement", "kappa", "rho_consensus", "rho_ground_truth", "distance"):
        dense_values = getattr(a, field)[slots[held], t_idx[held]]
        np.testing.assert_allclose(getattr(b, field)[held], dense_values, atol=1e-9, err_msg=field)
        assert np.all(getattr(b, field)[~held] == 0), field
    np.testing.assert_array_equal(b.answered[held], a.answered[slots[held], t_idx[held]])
    np.testing.assert_allclose(b.task_agreement, a.task_agreement, atol=1e-9)
    np.testing.assert_allclose(b.consensus_trust, a.consensus_trust, atol=1e-9)
    np.testing.assert_allclose(b.reliability, a.reliability, atol=1e-9)
    assigned = np.zeros(dense.shape[:2], dtype=bool)
    assigned[slots[held], t_idx[held]] = True
    np.testing.assert_allclose(
        slot_window_mean(b.scores, slots, n_miners), window_mean(a.scores, assigned), atol=1e-9
    )


def test_an_empty_slots_answer_is_ignored():
    dense, compact, slots, n_comp, truth = _round(5)
    noisy = compact.copy()
    noisy[slots < 0] = 1.0  # garbage where no miner is
    a = score_round(compact, n_comp, truth, slot_miners=slots)
    b = score_round(noisy, n_comp, truth, slot_miners=slots)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize(
    ("slots", "reason"),
    [
        (np.array([[0, 1], [0, 2]]), "two slots of one task"),
        (np.array([[0, 1], [-2, 2]]), "-1 for an empty slot"),
        (np.array([[0.0, 1.0], [1.0, 2.0]]), "integers"),
        (np.array([[0, 1]]), "integers shaped"),
    ],
)
def test_malformed_slots_are_refused(slots, reason):
    with pytest.raises(ValueError, match=reason):
        score_round(np.ones((2, 2, 3)), [3, 3], slot_miners=slots)
