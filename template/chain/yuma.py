"""Yuma consensus: one epoch of subtensor's weights-to-rewards computation, in numpy.

The local chain runs this every tempo so a local network shows what the real chain would
make of its validators' weights: the consensus weight of each miner, each validator's
clipped weights and trust, the miners' incentive, the bonds the chain keeps between epochs
and the validators' dividends. The simulator runs it too, on the weights its simulated
validators set.

It follows subtensor's ``epoch`` with Yuma3 off (the subnet default), in
``pallets/subtensor/src/epoch/run_epoch.rs`` (opentensor/subtensor; the matrix helpers are
in ``pallets/subtensor/src/epoch/math.rs``), in floating point instead of the chain's
I32F32 fixed point. Step by step, with S the stake and W the weights:

1. ``S`` normalised to sum 1 over the validators with stake (``inplace_normalize``);
   "active stake".
2. ``W`` row-normalised (``inplace_row_normalize``): only the proportions a validator sets
   count, not their scale.
3. Consensus ``C_j = weighted_median_col(S, W, kappa)``: per miner, the stake-weighted
   median of the validators' weights at quantile ``1 - kappa`` of stake (math.rs
   ``weighted_median``: the lowest weight ``w`` such that the stake of validators giving at
   most ``w`` exceeds ``1 - kappa``). With ``kappa = 0.5`` (``SubtensorInitialKappa =
   32_767``, i.e. 0.5 of u16::MAX) it is the weight at least half the stake supports.
4. Clipped weights ``W'_ij = min(W_ij, C_j)`` (``inplace_col_clip``).
5. Validator trust ``T_i = sum_j W'_ij`` (``row_sum(&clipped_weights)``): the share of a
   validator's (normalised) weight that survives clipping.
6. Ranks ``R_j = sum_i S_i W'_ij`` (``matmul(&clipped_weights, &active_stake)``);
   incentive ``I = R / sum R`` (``inplace_normalize(&mut ranks)``).
7. Weights for bonds ``W_b = (1 - p) W + p W'`` with the bonds penalty ``p``
   (``interpolate``; ``SubtensorInitialBondsPenalty = u16::MAX``, i.e. ``p = 1``: bonds
   grow from the clipped weights only).
8. Bond delta ``dB_ij = S_i W_b,ij`` normalised per miner (``row_hadamard`` then
   ``inplace_col_normalize``).
9. Bonds ``B = alpha dB + (1 - alpha) B_prev`` (``mat_ema``), previous bonds normalised
   per miner first, then the result normalised per miner again; ``alpha = 1 -
   bonds_moving_average / 1e6`` (``compute_ema_bonds_normal``), and
   ``SubtensorInitialBondsMovingAverage = 900_000``, so ``alpha = 0.1``: a new validator
   (or a changed opinion) earns its full share of the bonds over tens of epochs.
10. Dividends ``D_i = sum_j B_ij I_j``, normalised (``matmul_transpose(&ema_bonds,
    &incentive)`` then ``inplace_normalize``).

What is left out: the activity cutoff and validator-permit masks (the caller passes only
the rows that count, and zero stake drops a row from consensus), the self-weight diagonal
(the caller's columns are miners), emission amounts, Yuma3's per-bond scaling and liquid
alpha (``YumaParams.liquid_alpha`` is kept for the subnet setting's name; turning it on is
refused rather than silently ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Subtensor stores kappa and the bonds moving average as integers (u16 of 65535, and
# millionths); these are its defaults read as fractions.
DEFAULT_KAPPA = 0.5
DEFAULT_BONDS_MOVING_AVERAGE = 0.9
DEFAULT_BONDS_PENALTY = 1.0


@dataclass(frozen=True)
class YumaParams:
    """The subnet hyperparameters the epoch reads.

    ``bond_moving_average`` is subtensor's ``bonds_moving_average / 1_000_000`` (default
    900_000 → 0.9): the weight the previous bonds keep each epoch, so the EMA's alpha is
    ``1 - bond_moving_average``.
    """

    kappa: float = DEFAULT_KAPPA
    bond_moving_average: float = DEFAULT_BONDS_MOVING_AVERAGE
    liquid_alpha: bool = False
    bonds_penalty: float = DEFAULT_BONDS_PENALTY

    def __post_init__(self) -> None:
        bad = [
            name
            for name, ok in (
                ("kappa", 0.0 < self.kappa <= 1.0),
                ("bond_moving_average", 0.0 <= self.bond_moving_average < 1.0),
                ("bonds_penalty", 0.0 <= self.bonds_penalty <= 1.0),
            )
            if not ok
        ]
        if bad:
            raise ValueError(f"invalid Yuma parameters: {', '.join(bad)} ({self})")
        if self.liquid_alpha:
            raise ValueError(
                "liquid alpha is not modelled: the epoch here follows subtensor with Yuma3 and "
                "liquid alpha off (one bonds moving average for every bond)"
            )

    @property
    def alpha(self) -> float:
        """The EMA coefficient of the bonds: how much of this epoch's bond delta is taken in."""
        return 1.0 - self.bond_moving_average


@dataclass(frozen=True)
class EpochResult:
    """One epoch's outputs; V validators (rows) by M miners (columns)."""

    consensus: FloatArray  # (M,) stake-weighted median weight per miner
    incentive: FloatArray  # (M,) normalised ranks, sums to 1 (or all 0)
    clipped_weights: FloatArray  # (V, M) normalised weights clipped at consensus
    validator_trust: FloatArray  # (V,) sum of each validator's clipped weights
    bonds: FloatArray  # (V, M) EMA bonds, each miner's column sums to 1 (or 0)
    dividends: FloatArray  # (V,) sums to 1 (or all 0)
    ranks: FloatArray  # (M,) stake-weighted sum of clipped weights, before normalising


def _normalize(x: FloatArray) -> FloatArray:
    total = float(x.sum())
    return x / total if total > 0 else np.zeros_like(x)


def _col_normalize(x: FloatArray) -> FloatArray:
    sums = x.sum(axis=0, keepdims=True)
    out: FloatArray = np.divide(x, sums, out=np.zeros_like(x), where=sums > 0)
    return out


def weighted_median_col(stake: FloatArray, weights: FloatArray, kappa: float) -> FloatArray:
    """Per column, the stake-weighted quantile ``1 - kappa`` of the rows with stake > 0.

    Matches math.rs ``weighted_median``: the returned value ``v`` is one of the column's
    values with ``stake(w < v) <= 1 - kappa < stake(w <= v)``, stake normalised over the
    rows with stake. Rows without stake take no part; a column with no staked row is 0.
    """
    n_cols = weights.shape[1]
    staked = stake > 0
    if not staked.any() or n_cols == 0:
        return np.zeros(n_cols)
    s = stake[staked] / stake[staked].sum()
    w = weights[staked]
    minority = 1.0 - kappa
    order = np.argsort(w, axis=0, kind="stable")
    sorted_w = np.take_along_axis(w, order, axis=0)
    cum = np.cumsum(s[order], axis=0)
    # First position whose cumulative stake exceeds the minority. A small tolerance keeps
    # exact ties (two validators of equal stake, kappa 0.5) where the fixed point puts them.
    above = cum > minority + 1e-12
    idx = np.argmax(above, axis=0)
    median: FloatArray = sorted_w[idx, np.arange(n_cols)]
    return median


def yuma_epoch(
    weights: FloatArray,
    stakes: FloatArray,
    bonds: FloatArray | None,
    params: YumaParams | None = None,
) -> EpochResult:
    """Run one epoch; see the module docstring for each step and its source.

    ``weights`` is V×M, non-negative, rows raw or normalised; ``stakes`` is (V,);
    ``bonds`` the previous epoch's :attr:`EpochResult.bonds` (or None for the first).
    """
    params = params or YumaParams()
    w = np.asarray(weights, dtype=np.float64)
    s_raw = np.asarray(stakes, dtype=np.float64)
    if w.ndim != 2 or s_raw.shape != (w.shape[0],):
        raise ValueError(f"weights must be V×M and stakes (V,); got {w.shape} and {s_raw.shape}")
    if not (np.isfinite(w).all() and np.isfinite(s_raw).all()) or (w < 0).any() or (s_raw < 0).any():
        raise ValueError("weights and stakes must be finite and non-negative")
    n_val, n_miners = w.shape

    # 1. Active stake, normalised.
    stake = _normalize(s_raw)
    # 2. Row-normalised weights.
    row_sums = w.sum(axis=1, keepdims=True)
    w = np.divide(w, row_sums, out=np.zeros_like(w), where=row_sums > 0)
    # 3. Consensus.
    consensus = weighted_median_col(stake, w, params.kappa)
    # 4. Clip at consensus.
    clipped = np.minimum(w, consensus[np.newaxis, :])
    # 5. Validator trust.
    validator_trust = clipped.sum(axis=1)
    # 6. Ranks and incentive.
    ranks = stake @ clipped
    incentive = _normalize(ranks)
    # 7. Weights for bonds.
    p = params.bonds_penalty
    weights_for_bonds = (1.0 - p) * w + p * clipped
    # 8. Bond delta, per miner.
    delta = _col_normalize(weights_for_bonds * stake[:, np.newaxis])
    # 9. EMA of bonds.
    if bonds is None:
        previous = np.zeros((n_val, n_miners))
    else:
        previous = np.asarray(bonds, dtype=np.float64)
        if previous.shape != (n_val, n_miners):
            raise ValueError(f"bonds must be {(n_val, n_miners)}, got {previous.shape}")
        previous = _col_normalize(np.clip(np.nan_to_num(previous), 0.0, None))
    alpha = params.alpha
    ema = _col_normalize(alpha * delta + (1.0 - alpha) * previous)
    # 10. Dividends.
    dividends = _normalize(ema @ incentive)
    return EpochResult(
        consensus=consensus,
        incentive=incentive,
        clipped_weights=clipped,
        validator_trust=validator_trust,
        bonds=ema,
        dividends=dividends,
        ranks=ranks,
    )


__all__ = ["EpochResult", "YumaParams", "weighted_median_col", "yuma_epoch"]
