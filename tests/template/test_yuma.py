"""Yuma consensus against hand-worked epochs and against the definition of its weighted median."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from template.chain.yuma import YumaParams, weighted_median_col, yuma_epoch


def test_three_equal_validators_one_leaning_on_a_miner() -> None:
    # Worked by hand: consensus is the middle weight of each column (equal stakes, kappa 0.5).
    weights = np.array([[0.6, 0.4], [0.5, 0.5], [0.0, 1.0]])
    r = yuma_epoch(weights, np.array([1.0, 1.0, 1.0]), None)
    np.testing.assert_allclose(r.consensus, [0.5, 0.5])
    np.testing.assert_allclose(r.clipped_weights, [[0.5, 0.4], [0.5, 0.5], [0.0, 0.5]])
    np.testing.assert_allclose(r.validator_trust, [0.9, 1.0, 0.5])
    np.testing.assert_allclose(r.ranks, [1.0 / 3, 1.4 / 3])
    np.testing.assert_allclose(r.incentive, [1.0 / 2.4, 1.4 / 2.4])
    # First epoch: the bonds are this epoch's stake-weighted clipped weights, per miner.
    np.testing.assert_allclose(r.bonds, [[0.5, 0.4 / 1.4], [0.5, 0.5 / 1.4], [0.0, 0.5 / 1.4]])
    np.testing.assert_allclose(r.dividends, [0.375, 5.0 / 12, 5.0 / 24])
    # The validator that put all on one miner lifted that miner no higher than consensus.
    assert r.clipped_weights[2, 1] == pytest.approx(r.consensus[1])


def test_the_public_two_validator_example() -> None:
    # The weight table of https://subtensor.com/learn/mechanics/yuma-consensus (kappa 0.51):
    # V0 60% of stake [0.5, 0.3, 0.2], V1 40% [0.4, 0.4, 0.2]. Walking up each column until
    # the stake passes 1 - kappa = 0.49 gives consensus [0.5, 0.3, 0.2]; V1's 0.4 on M1 is
    # clipped to 0.3.
    r = yuma_epoch(
        np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]]), np.array([600.0, 400.0]), None, YumaParams(kappa=0.51)
    )
    np.testing.assert_allclose(r.consensus, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(r.clipped_weights, [[0.5, 0.3, 0.2], [0.4, 0.3, 0.2]])
    np.testing.assert_allclose(r.validator_trust, [1.0, 0.9])
    # ranks = 0.6 * [0.5, 0.3, 0.2] + 0.4 * [0.4, 0.3, 0.2] = [0.46, 0.30, 0.20]
    np.testing.assert_allclose(r.ranks, [0.46, 0.30, 0.20])
    np.testing.assert_allclose(r.incentive, np.array([0.46, 0.30, 0.20]) / 0.96)
    # Bonds: column shares of stake x clipped weight; V0 holds 0.30/0.46 of M0's bond.
    np.testing.assert_allclose(r.bonds[:, 0], [0.30 / 0.46, 0.16 / 0.46])
    np.testing.assert_allclose(r.dividends, [0.625, 0.375])


def test_raw_rows_are_normalised_like_the_chain_does() -> None:
    raw = np.array([[6.0, 4.0], [50.0, 50.0], [0.0, 65535.0]])
    normalised = np.array([[0.6, 0.4], [0.5, 0.5], [0.0, 1.0]])
    a = yuma_epoch(raw, np.ones(3), None)
    b = yuma_epoch(normalised, np.ones(3), None)
    np.testing.assert_allclose(a.incentive, b.incentive)
    np.testing.assert_allclose(a.validator_trust, b.validator_trust)


def test_kappa_is_the_stake_majority_needed_to_support_a_weight() -> None:
    # 75% of stake backs miner 0 only, 25% backs miner 1 only.
    weights = np.array([[1.0, 0.0], [0.0, 1.0]])
    stakes = np.array([3.0, 1.0])
    r = yuma_epoch(weights, stakes, None)
    np.testing.assert_allclose(r.consensus, [1.0, 0.0])
    np.testing.assert_allclose(r.validator_trust, [1.0, 0.0])
    np.testing.assert_allclose(r.incentive, [1.0, 0.0])
    np.testing.assert_allclose(r.dividends, [1.0, 0.0])
    # With kappa 0.2 a fifth of the stake suffices: nobody is clipped.
    low = yuma_epoch(weights, stakes, None, YumaParams(kappa=0.2))
    np.testing.assert_allclose(low.consensus, [1.0, 1.0])
    np.testing.assert_allclose(low.validator_trust, [1.0, 1.0])
    np.testing.assert_allclose(low.incentive, [0.75, 0.25])


def test_bonds_are_a_moving_average_so_an_early_validator_keeps_its_share() -> None:
    # Two equal validators agree on one miner, but validator 0 held the whole bond before:
    # alpha = 1 - 0.9 = 0.1 of this epoch's even split is taken in.
    weights = np.array([[1.0], [1.0]])
    stakes = np.array([1.0, 1.0])
    r = yuma_epoch(weights, stakes, np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(r.bonds, [[0.95], [0.05]])
    np.testing.assert_allclose(r.dividends, [0.95, 0.05])
    # After k epochs the latecomer holds 0.5 (1 - 0.9^k).
    bonds = np.array([[1.0], [0.0]])
    for _ in range(10):
        bonds = yuma_epoch(weights, stakes, bonds).bonds
    assert bonds[1, 0] == pytest.approx(0.5 * (1 - 0.9**10))
    # A faster moving average converges sooner.
    fast = yuma_epoch(weights, stakes, np.array([[1.0], [0.0]]), YumaParams(bond_moving_average=0.5))
    np.testing.assert_allclose(fast.bonds, [[0.75], [0.25]])


def test_bonds_penalty_zero_builds_bonds_from_unclipped_weights() -> None:
    weights = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = yuma_epoch(weights, np.array([3.0, 1.0]), None, YumaParams(bonds_penalty=0.0))
    np.testing.assert_allclose(r.bonds, [[1.0, 0.0], [0.0, 1.0]])


def test_validators_without_stake_take_no_part_in_consensus() -> None:
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    r = yuma_epoch(weights, np.array([1.0, 0.0, 0.0]), None)
    np.testing.assert_allclose(r.consensus, [1.0, 0.0])
    np.testing.assert_allclose(r.dividends, [1.0, 0.0, 0.0])


def test_no_weights_give_no_incentive_and_no_dividends() -> None:
    r = yuma_epoch(np.zeros((2, 3)), np.array([1.0, 2.0]), None)
    assert not r.incentive.any() and not r.dividends.any() and not r.validator_trust.any()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="V×M"):
        yuma_epoch(np.ones((2, 3)), np.ones(3), None)
    with pytest.raises(ValueError, match="non-negative"):
        yuma_epoch(np.array([[1.0, -1.0]]), np.ones(1), None)
    with pytest.raises(ValueError, match="bonds must be"):
        yuma_epoch(np.ones((2, 3)), np.ones(2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="kappa"):
        YumaParams(kappa=0.0)
    with pytest.raises(ValueError, match="liquid alpha"):
        YumaParams(liquid_alpha=True)


def _median_by_definition(stake: np.ndarray, column: np.ndarray, kappa: float) -> float:
    """The lowest value whose cumulative stake (values <= it) exceeds 1 - kappa."""
    s = stake[stake > 0] / stake[stake > 0].sum()
    c = column[stake > 0]
    for v in sorted(set(c.tolist())):
        if s[c <= v].sum() > 1 - kappa + 1e-12:
            return float(v)
    return float(max(c))


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=8),
    kappa=st.sampled_from([0.2, 0.5, 0.51, 0.8]),
)
def test_weighted_median_matches_its_definition(data: list[tuple[int, int, int]], kappa: float) -> None:
    stake = np.array([float(d[0]) for d in data])
    weights = np.array([[d[1] / 4, d[2] / 4] for d in data])
    got = weighted_median_col(stake, weights, kappa)
    if not (stake > 0).any():
        assert not got.any()
        return
    for j in range(2):
        assert got[j] == pytest.approx(_median_by_definition(stake, weights[:, j], kappa))
