"""Rounds that mix synthetic and organic tasks, the miners' reliability carried from round to
round, and the consensus an organic task's caller gets.

Organic tasks have no ground truth. A round is therefore scored in two passes of
:func:`commons.scoring.score_round`:

1. the **synthetic** tasks, starting from each miner's carried reliability ``r_m``; the
   pass measures the miners' in-round reliability ``q_m`` (ground truth and consensus);
2. the carried reliability takes it in, ``r_m ← (1 - β) r_m + β q_m`` (``r_m = q_m`` for a
   miner measured the first time), for every miner that answered a synthetic task;
3. the **organic** tasks, by consensus alone, weighted by the carried reliability and with
   one pass (``iterations=1``): agreement on organic tasks never feeds the weights of their
   own consensus, so a ring that agrees with itself there gains nothing it has not earned on
   synthetic tasks;
4. each organic task's score is capped at what the miner showed where the truth is known:
   ``s_mt ← min(s_mt, c_m)``, ``c_m`` its mean score over the synthetic tasks of the round
   it answered (or ``r_m^γ`` without one). A task that cannot be checked can confirm quality, never add to
   it: chance agreement with the crowd earns an attacker no more than its synthetic tasks do.

The caller's ranking is the consensus of step 3 over every answering miner
(:func:`weighted_consensus`): the mean of the miners' answers (each the mean rank its
workers gave) weighted by ``(r_m / max r)²``, as each miner's leave-one-out consensus is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from commons.scoring._metrics import _EPS, average_ranks
from commons.scoring._round import RoundResult, ScoringParams, _by_slot, score_round, slot_window_mean

RELIABILITY_ALPHA = 0.3


def carry_reliability(
    previous: Mapping[str, float], measured: Mapping[str, float], alpha: float = RELIABILITY_ALPHA
) -> dict[str, float]:
    """``previous`` with this round's ``measured`` reliabilities folded in:
    ``(1 - α) r + α q``, or ``q`` for a miner not seen before. Values are clipped to [0, 1]."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError("alpha must be in (0, 1]")
    out = {h: float(np.clip(v, 0.0, 1.0)) for h, v in previous.items()}
    for hotkey, q in measured.items():
        value = float(np.clip(q, 0.0, 1.0)) if np.isfinite(q) else 0.0
        out[hotkey] = value if hotkey not in out else (1.0 - alpha) * out[hotkey] + alpha * value
    return out


@dataclass(frozen=True)
class MixedRoundResult:
    """A round of both kinds: :class:`RoundResult` over every task (``(M, T)`` or ``(K, T)`` by
    slot, as laid out), and per miner ``measured`` (``(M,)``: the synthetic pass's in-round
    reliability, NaN for a miner that answered no synthetic task) and ``carried`` (``(M,)``:
    the reliability after this round, what weighted the organic consensus)."""

    result: RoundResult
    measured: np.ndarray
    carried: np.ndarray


def score_mixed_round(
    submissions: np.ndarray,
    n_completions: np.ndarray,
    ground_truth: np.ndarray | None,
    organic: np.ndarray,
    *,
    reliability: np.ndarray,
    alpha: float = RELIABILITY_ALPHA,
    higher_is_better: bool | np.ndarray = False,
    params: ScoringParams | None = None,
    slot_miners: np.ndarray | None = None,
) -> MixedRoundResult:
    """Score a round whose tasks ``organic`` (``(T,)`` bool) have no ground truth.

    ``reliability`` ``(M,)`` is each miner's carried reliability, NaN for a miner never
    measured. Shapes otherwise as :func:`score_round`. The synthetic tasks are scored
    exactly as :func:`score_round` would with ``reliability`` as its starting weights.
    """
    p = params or ScoringParams()
    x = np.asarray(submissions, dtype=np.float64)
    organic = np.asarray(organic, dtype=bool).reshape(-1)
    n_comp = np.asarray(n_completions, dtype=np.int64).reshape(-1)
    carried_in = np.asarray(reliability, dtype=np.float64).reshape(-1)
    n_miners = carried_in.size
    hib = np.broadcast_to(np.asarray(higher_is_better, dtype=bool), organic.shape)
    synthetic = ~organic
    gt = None if ground_truth is None else np.asarray(ground_truth, dtype=np.float64)

    def part(mask: np.ndarray, start: np.ndarray, part_params: ScoringParams, truth: bool) -> RoundResult:
        return score_round(
            x[:, mask],
            n_comp[mask],
            None if gt is None or not truth else gt[mask],
            higher_is_better=hib[mask],
            reliability=start,
            params=part_params,
            slot_miners=None if slot_miners is None else np.asarray(slot_miners)[:, mask],
        )

    known = np.isfinite(carried_in)
    # Synthetic pass: measured miners start at their carried reliability, new ones at the
    # best known (ground truth corrects them within the pass), everybody at 1 before any.
    start = np.where(known, carried_in, np.nanmax(carried_in) if known.any() else 1.0)
    start = np.where(start > 0, start, _EPS)
    measured = np.full(n_miners, np.nan)
    syn: RoundResult | None = None
    if synthetic.any():
        syn = part(synthetic, start, p, True)
        answered = _answered_per_miner(syn.answered, slot_miners, synthetic, n_miners)
        measured = np.where(answered, syn.reliability, np.nan)
    carried = np.where(known, carried_in, np.nan)
    took = np.isfinite(measured)
    carried = np.where(took & known, (1.0 - alpha) * carried + alpha * measured, carried)
    carried = np.where(took & ~known, measured, carried)
    org: RoundResult | None = None
    if organic.any():
        # Never measured: no say in the consensus (score_round falls back to uniform weights
        # only when no miner of the round has any).
        weights = np.nan_to_num(carried, nan=0.0)
        org = part(organic, weights, replace(p, iterations=1), False)
        cap = np.nan_to_num(carried, nan=0.0) ** p.sharpness
        if syn is not None:
            syn_mean = _answered_mean(syn.scores, syn.answered, slot_miners, synthetic, n_miners)
            cap = np.where(np.isfinite(syn_mean), syn_mean, cap)
        slots = None if slot_miners is None else np.asarray(slot_miners)[:, organic]
        org = replace(org, scores=np.minimum(org.scores, _by_slot(cap, slots)))
    return MixedRoundResult(_merge(syn, org, organic, x.shape[:2], n_miners), measured, carried)


def _answered_mean(
    scores: np.ndarray, answered: np.ndarray, slot_miners: np.ndarray | None, mask: np.ndarray, n_miners: int
) -> np.ndarray:
    """Each miner's mean score over the synthetic tasks it answered (its quality, whatever its
    participation), NaN for a miner that answered none."""
    if slot_miners is None:
        count = answered.sum(axis=1)
        total = (scores * answered).sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    slots = np.where(answered, np.asarray(slot_miners)[:, mask], -1)
    held = np.bincount(slots[slots >= 0], minlength=n_miners) > 0
    return np.where(held, slot_window_mean(scores, slots, n_miners), np.nan)


def _answered_per_miner(
    answered: np.ndarray, slot_miners: np.ndarray | None, mask: np.ndarray, n_miners: int
) -> np.ndarray:
    if slot_miners is None:
        return np.asarray(answered.any(axis=1), dtype=bool)
    slots = np.asarray(slot_miners)[:, mask]
    held = (slots >= 0) & answered
    return np.bincount(slots[held], minlength=n_miners) > 0


def _merge(
    syn: RoundResult | None,
    org: RoundResult | None,
    organic: np.ndarray,
    shape: tuple[int, ...],
    n_miners: int,
) -> RoundResult:
    """One :class:`RoundResult` over every task from the two passes' results."""
    n_rows, n_tasks = shape
    parts = [(r, m) for r, m in ((syn, ~organic), (org, organic)) if r is not None]

    def grid(name: str, dtype: type = np.float64) -> np.ndarray:
        out: np.ndarray = np.zeros((n_rows, n_tasks), dtype=dtype)
        for r, m in parts:
            out[:, m] = getattr(r, name)
        return out

    def per_task(name: str, dtype: type = np.float64) -> np.ndarray:
        out: np.ndarray = np.zeros(n_tasks, dtype=dtype)
        for r, m in parts:
            out[m] = getattr(r, name)
        return out

    reliability = syn.reliability if syn is not None else np.zeros(n_miners)
    return RoundResult(
        scores=grid("scores"),
        answered=grid("answered", bool),
        agreement=grid("agreement"),
        kappa=grid("kappa"),
        rho_consensus=grid("rho_consensus"),
        rho_ground_truth=grid("rho_ground_truth"),
        tau_ground_truth=grid("tau_ground_truth"),
        distance=grid("distance"),
        task_agreement=per_task("task_agreement"),
        consensus_trust=per_task("consensus_trust"),
        has_ground_truth=per_task("has_ground_truth", bool),
        reliability=reliability,
    )


def weighted_consensus(
    answers: np.ndarray, reliability: np.ndarray, *, higher_is_better: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The consensus of one task's answers ``(k, C)`` (NaN-free rows) weighted by each
    answering miner's reliability ``(k,)``: ``(mean, consensus_rank)``, both ``(C,)``.

    ``mean`` is the weighted mean of the answers (ranks, or scores when
    ``higher_is_better``) with weights ``(r / max r)²`` (uniform when every ``r`` is 0);
    ``consensus_rank`` its average ranks, 1 = best.

    >>> mean, rank = weighted_consensus(np.array([[1., 2., 3.], [1., 3., 2.], [3., 2., 1.]]),
    ...                                 np.array([1.0, 1.0, 0.0]))
    >>> mean.tolist(), rank.tolist()
    ([1.0, 2.5, 2.5], [1.0, 2.5, 2.5])
    """
    a = np.asarray(answers, dtype=np.float64)
    r = np.clip(np.nan_to_num(np.asarray(reliability, dtype=np.float64), nan=0.0), 0.0, None)
    w = (r / r.max()) ** 2 if r.size and r.max() > _EPS else np.ones(a.shape[0])
    mean = (w[:, None] * a).sum(axis=0) / max(float(w.sum()), _EPS)
    rank = average_ranks(-mean if higher_is_better else mean)
    return mean, rank
