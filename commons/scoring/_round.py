"""Scoring one round: every miner on every task, from ground truth and the leave-one-out
consensus of its peers (:func:`score_round`), with the per-miner means over a window of
tasks, in the dense layout and in the compact one by slot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from loguru import logger

from commons.scoring._metrics import (
    _EPS,
    _footrule,
    _kappa_from,
    _kdist_from,
    _multi_kappa,
    _pair_stats,
    _pearson_from,
    _rank_moments,
    _ranks,
    _rater_stats,
    _rowdot,
    _rowsum,
    _safe_div,
    _tau_from,
)


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


def _per_miner_mean(
    values: np.ndarray, answered: np.ndarray, slots: np.ndarray | None, n_miners: int
) -> np.ndarray:
    """Each miner's mean of ``values`` over the tasks it answered (:func:`window_mean`)."""
    if slots is None:
        return window_mean(values, answered)
    return slot_window_mean(values, np.where(answered, slots, -1), n_miners)


def slot_window_mean(scores: np.ndarray, slot_miners: np.ndarray, n_miners: int) -> np.ndarray:
    """:func:`window_mean` for the compact layout: each miner's mean score over the slots
    it holds (``(K, T)`` scores and slots, ``-1`` empty), 0 for a miner with none."""
    slots = np.asarray(slot_miners)
    held = slots >= 0
    total = np.bincount(
        slots[held], weights=np.nan_to_num(np.asarray(scores, dtype=np.float64))[held], minlength=n_miners
    )
    count = np.bincount(slots[held], minlength=n_miners).astype(np.float64)
    return _safe_div(total, count)


def _orient(submissions: np.ndarray, higher_is_better: bool | Sequence[bool] | np.ndarray) -> np.ndarray:
    hib = np.asarray(higher_is_better, dtype=bool)
    if hib.ndim == 0:
        return -submissions if hib else submissions
    return np.where(hib[None, :, None], -submissions, submissions)


@dataclass(frozen=True)
class Answers:
    """The round's answers as ranks, from :func:`rank_answers`. ``(M, T, ...)`` arrays are
    ``(K, T, ...)`` by slot in the compact layout.

    - ``slots``: ``slot_miners`` checked, or None for the dense layout; ``n_miners`` ``M``.
    - ``n_completions`` ``(T,)``; ``items`` ``(T, C)``: the real completions of tasks with
      at least 2 of them (the only ones scored).
    - ``answered`` ``(M, T)``: a finite value on every item; ``valid`` ``(M, T, C)``: the
      items of the answered tasks.
    - ``ranks`` ``(M, T, C)``: average ranks (best = 1) on ``valid``, 0 elsewhere;
      ``n_items`` the number ranked; ``centred`` the ranks minus their mean ``(n + 1) / 2``
      on ``valid``; ``s_rr`` ``Σ centred²``.
    """

    slots: np.ndarray | None
    n_miners: int
    n_completions: np.ndarray
    items: np.ndarray
    answered: np.ndarray
    valid: np.ndarray
    ranks: np.ndarray
    n_items: np.ndarray
    centred: np.ndarray
    s_rr: np.ndarray


def rank_answers(
    submissions: np.ndarray,
    n_completions: Sequence[int] | np.ndarray,
    higher_is_better: bool | Sequence[bool] | np.ndarray,
    slot_miners: np.ndarray | None,
    reliability: np.ndarray | None,
) -> Answers:
    """Check the shapes and rank every answer: ``R = average_ranks(x)`` with ``x`` negated
    where higher is better, on the completions ``c < n_t`` of tasks with ``n_t ≥ 2``; a
    miner answered task ``t`` when all of them are finite (an empty slot never answers)."""
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
        raise ValueError(
            f"slot_miners names miner {int(slots.max())}, but reliability has {n_miners} entries"
        )
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
    return Answers(
        slots=slots,
        n_miners=n_miners,
        n_completions=n_comp,
        items=items,
        answered=answered,
        valid=valid,
        ranks=ranks,
        n_items=n_items,
        centred=centred,
        s_rr=_rowdot(centred, centred),
    )


@dataclass(frozen=True)
class GroundTruthTerms:
    """Step 1 of :func:`score_round`, fixed for the round (from :func:`ground_truth_terms`).

    - ``known`` ``(T, C)``: completions of known rank; ``gt_ranks`` their average ranks,
      ``gt_centred`` those minus ``(k + 1) / 2``, ``s_gg`` ``Σ gt_centred²``.
    - ``has_gt`` ``(T,)``: at least two distinct known ranks; ``gt_info`` ``(T,)``:
      ``(k - 1) / (n - 1)`` where it has, else 0.
    - ``full_truth``: every task with ground truth knows every completion's rank.
    - ``valid_gt`` ``(M, T, C)``: the answered items of known rank.
    - ``gt_ok`` ``(M, T)``: answered, on a task with ground truth; ``a_gt``, ``rho``,
      ``tau`` and ``distance`` are 0 outside it.
    """

    known: np.ndarray
    gt_ranks: np.ndarray
    gt_centred: np.ndarray
    s_gg: np.ndarray
    has_gt: np.ndarray
    gt_info: np.ndarray
    full_truth: bool
    valid_gt: np.ndarray
    gt_ok: np.ndarray
    a_gt: np.ndarray
    rho: np.ndarray
    tau: np.ndarray
    distance: np.ndarray


def ground_truth_terms(answers: Answers, ground_truth: np.ndarray | None) -> GroundTruthTerms:
    """Step 1: each answer against the ground truth ``G`` on the ``k ≥ 2`` known completions::

        a_gt = (rho(R_m, G) + 1 - 2 d) / 2,    d = (d_F + d_K) / 2

    with ``R_m`` re-ranked over the known completions, ``d_F`` the normalised footrule and
    ``d_K`` the normalised Kendall distance; also Kendall's tau-b, reported alongside."""
    n_tasks, width = answers.items.shape
    if ground_truth is None:
        gt = np.full((n_tasks, width), np.nan)
    else:
        gt = np.asarray(ground_truth, dtype=np.float64)
        if gt.shape != (n_tasks, width):
            raise ValueError(f"ground_truth must be {(n_tasks, width)}, got {gt.shape}")
    known = np.isfinite(gt) & answers.items  # (T, C)
    n_known = _rowsum(known.astype(np.float64))
    gt_ranks = _ranks(gt, known)
    gt_centred = (gt_ranks - ((n_known + 1.0) / 2.0)[:, None]) * known
    s_gg = _rowdot(gt_centred, gt_centred)
    has_gt = (n_known >= 2) & (s_gg > 0)
    gt_info = _safe_div(n_known - 1.0, answers.n_completions - 1.0) * has_gt
    # Where every task's truth is complete, ranks on the known completions are the ranks.
    full_truth = bool(np.all((known == answers.items) | ~has_gt[:, None]))
    valid_gt = answers.valid & known[None]
    ranks = answers.ranks
    ranks_gt = ranks * known[None] if full_truth else _ranks(ranks, valid_gt)
    n_gt, _, _, s_rg, s_rr_gt, _ = _rank_moments(ranks_gt, gt_ranks[None], valid_gt)
    rho_gt = _pearson_from(n_gt, s_rg, s_rr_gt, s_gg[None])
    # Pairs over the known completions; rows of miners who did not answer are zeroed below.
    s, u_r, u_g, d_pairs, n_pairs = _pair_stats(ranks_gt, gt_ranks[None], known[None])
    tau_gt = _tau_from(s, u_r, u_g)
    distance = (_footrule(ranks_gt, gt_ranks[None], valid_gt) + _kdist_from(d_pairs, n_pairs)) / 2.0
    gt_ok = answers.answered & has_gt[None]
    return GroundTruthTerms(
        known=known,
        gt_ranks=gt_ranks,
        gt_centred=gt_centred,
        s_gg=s_gg,
        has_gt=has_gt,
        gt_info=gt_info,
        full_truth=full_truth,
        valid_gt=valid_gt,
        gt_ok=gt_ok,
        a_gt=np.where(gt_ok, (rho_gt + 1.0 - 2.0 * distance) / 2.0, 0.0),
        rho=rho_gt * gt_ok,
        tau=tau_gt * gt_ok,
        distance=distance * gt_ok,
    )


def initial_reliability(reliability: np.ndarray | None, n_miners: int) -> np.ndarray:
    """The reliability ``q`` the first consensus is weighted by: ``max(0, q) / max q``
    (non-finite as 0), or uniform 1 when none is given or none is positive. Only relative
    reliability matters; scaling to a maximum of 1 keeps ``q²`` finite."""
    if reliability is None:
        return np.ones(n_miners)
    q = np.asarray(reliability, dtype=np.float64).reshape(-1)
    if q.shape != (n_miners,):
        raise ValueError(f"reliability has {q.size} entries for {n_miners} miners")
    q = np.where(np.isfinite(q), np.clip(q, 0.0, None), 0.0)
    return q / q.max() if np.any(q > 0) else np.ones(n_miners)


def task_agreement(
    answers: Answers, q: np.ndarray, stats: tuple[np.ndarray, ...], params: ScoringParams
) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: ``A_t``, the multi-rater quadratic kappa of task ``t``'s answers, each miner
    weighted by ``w_m = max(q_m / max q, agreement_floor)``, and the consensus trust
    ``u_t = clip((A_t - kappa_min) / (kappa_full - kappa_min), 0, 1)``, both ``(T,)``::

        A_t = 1 - Σ_{a<b} w_a w_b mean_c (R_ac - R_bc)²
                  / Σ_{a<b} w_a w_b (var R_a + var R_b + (mean R_a - mean R_b)²)

    The floor keeps attackers counting little, yet a few lucky miners among unreliable
    ones cannot make up agreement; ``stats`` is ``_rater_stats(ranks, items)``."""
    q_agree = np.maximum(q / max(float(q.max(initial=0.0)), _EPS), params.agreement_floor)
    agreement = _multi_kappa(answers.ranks, _by_slot(q_agree, answers.slots) * answers.answered, stats)
    trust = np.clip((agreement - params.kappa_min) / (params.kappa_full - params.kappa_min), 0.0, 1.0)
    return agreement, trust


@dataclass(frozen=True)
class ConsensusTerms:
    """Step 2 of :func:`score_round` (from :func:`consensus_agreement`), ``(M, T)`` unless noted.

    - ``consensus`` ``(M, T, C)``: ``Σ_{l≠m} q_l² R_l``, whose ranks are the consensus ``K``.
    - ``centred`` ``(M, T, C)``: ``K`` minus its mean on the miner's items; ``s_cc`` ``Σ centred²``.
    - ``ok``: answered, with ``min_peers`` peers of positive weight: ``rho``, ``kappa`` and
      ``a_c`` are 0 outside it.
    """

    consensus: np.ndarray
    centred: np.ndarray
    s_cc: np.ndarray
    ok: np.ndarray
    rho: np.ndarray
    kappa: np.ndarray
    a_c: np.ndarray


def consensus_agreement(answers: Answers, q: np.ndarray, params: ScoringParams) -> ConsensusTerms:
    """Step 2: the leave-one-out consensus ``K`` of miner ``m`` ranks
    ``Σ_{l≠m} q_l² R_l`` over the answers of the others, and
    ``a_c = (rho(R_m, K) + kappa(R_m, K)) / 2`` (quadratic-weighted kappa, both sides
    rankings of the same items), where the miner has at least ``min_peers`` peers."""
    answered, ranks = answers.answered, answers.ranks
    w = _by_slot(q * q, answers.slots) * answered  # (M, T), or (K, T) by slot
    # The leave-one-out weighted sum: its ranks are the consensus's (a positive scale).
    own = w[..., None] * ranks
    consensus = own.sum(axis=0)[None] - own
    positive = w > 0
    peers = positive.sum(axis=0)[None] - positive
    ok = answered & (peers >= params.min_peers) & (w.sum(axis=0)[None] - w > _EPS)
    # Ranked over every answer; the rows without a consensus are masked by ok.
    n_items = answers.n_items
    cons_centred = (_ranks(consensus, answers.valid) - ((n_items + 1.0) / 2.0)[..., None]) * (
        answers.valid.astype(np.float64)
    )
    s_rc = _rowdot(answers.centred, cons_centred)
    s_cc = _rowdot(cons_centred, cons_centred)
    rho = _pearson_from(n_items, s_rc, answers.s_rr, s_cc) * ok
    mean = (n_items + 1.0) / 2.0  # both sides are rankings of the same items
    kappa = _kappa_from(n_items, mean, mean, s_rc, answers.s_rr, s_cc) * ok
    return ConsensusTerms(
        consensus=consensus,
        centred=cons_centred,
        s_cc=s_cc,
        ok=ok,
        rho=rho,
        kappa=kappa,
        a_c=(rho + kappa) / 2.0,
    )


def corroboration(answers: Answers, truth: GroundTruthTerms, cons: ConsensusTerms) -> np.ndarray:
    """Step 4's ``c = max(0, rho(K, G))`` ``(M, T)``: does miner ``m``'s consensus corroborate
    the ground truth, on the known completions?"""
    if truth.full_truth:
        s_cg = _rowdot(cons.centred, truth.gt_centred[None])
        return np.maximum(_pearson_from(answers.n_items, s_cg, cons.s_cc, truth.s_gg[None]), 0.0)
    n_k, _, _, s_cg, s_ck, _ = _rank_moments(
        _ranks(cons.consensus, truth.valid_gt), truth.gt_ranks[None], truth.valid_gt
    )
    return np.maximum(_pearson_from(n_k, s_cg, s_ck, truth.s_gg[None]), 0.0)


def blend(
    a_c: np.ndarray,
    a_gt: np.ndarray,
    trust: np.ndarray,
    cons_ok: np.ndarray,
    gt_info: np.ndarray,
    gt_ok: np.ndarray,
    corroborated: np.ndarray,
) -> np.ndarray:
    """Step 4: the agreement ``a`` ``(M, T)``, so that agreeing humans outweigh a ground
    truth they contradict::

        w_c = u_t,   w_g = (k - 1)/(n - 1) · (1 - u_t · (1 - c²))
        a = (w_c a_c + w_g a_gt) / (w_c + w_g)        (0 when both weights are 0)

    ``w_c`` is 0 without a consensus (``cons_ok``), ``w_g`` 0 without ground truth (``gt_ok``);
    ``trust`` and ``gt_info`` are ``(T,)``."""
    w_c = trust[None] * cons_ok
    w_g = gt_info[None] * gt_ok * (1.0 - w_c * (1.0 - corroborated**2))
    return _safe_div(w_c * a_c + w_g * a_gt, w_c + w_g)


def updated_reliability(agreement: np.ndarray, answers: Answers, q: np.ndarray) -> np.ndarray:
    """Step 5: ``q_m`` = mean of ``max(0, a)`` over the tasks miner ``m`` answered; the
    previous ``q`` is kept when every miner's comes out 0 (nobody to weight by)."""
    q_new = _per_miner_mean(np.maximum(agreement, 0.0), answers.answered, answers.slots, answers.n_miners)
    return q_new if np.any(q_new > 0) else q


def sharpen(agreement: np.ndarray, answered: np.ndarray, sharpness: float) -> np.ndarray:
    """The score ``max(0, a)^γ`` in ``[0, 1]``, 0 for a task the miner did not answer."""
    return np.clip(np.where(answered, np.maximum(agreement, 0.0) ** sharpness, 0.0), 0.0, 1.0)


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

    Each step is a function of its own, named by its number above: :func:`rank_answers`,
    :func:`ground_truth_terms` (1), :func:`consensus_agreement` (2), :func:`task_agreement`
    (3), :func:`corroboration` and :func:`blend` (4), :func:`initial_reliability` and
    :func:`updated_reliability` (5), :func:`sharpen`.
    """
    p = params or ScoringParams()
    answers = rank_answers(submissions, n_completions, higher_is_better, slot_miners, reliability)
    truth = ground_truth_terms(answers, ground_truth)
    q = initial_reliability(reliability, answers.n_miners)
    stats = _rater_stats(answers.ranks, answers.items)
    for _ in range(p.iterations):
        agreement_t, trust = task_agreement(answers, q, stats, p)
        cons = consensus_agreement(answers, q, p)
        corroborated = corroboration(answers, truth, cons)
        agreement = blend(cons.a_c, truth.a_gt, trust, cons.ok, truth.gt_info, truth.gt_ok, corroborated)
        q = updated_reliability(agreement, answers, q)

    n_tasks = answers.items.shape[0]
    logger.debug(
        "scored round: {} miners x {} tasks, {} answers, mean task agreement {:.3f}",
        answers.n_miners,
        n_tasks,
        int(answers.answered.sum()),
        float(agreement_t.mean()) if n_tasks else 0.0,
    )
    return RoundResult(
        scores=sharpen(agreement, answers.answered, p.sharpness),
        answered=answers.answered,
        agreement=agreement,
        kappa=cons.kappa,
        rho_consensus=cons.rho,
        rho_ground_truth=truth.rho,
        tau_ground_truth=truth.tau,
        distance=truth.distance,
        task_agreement=agreement_t,
        consensus_trust=trust,
        has_ground_truth=truth.has_gt,
        reliability=q,
    )
