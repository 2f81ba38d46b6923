"""Weight rules shared by the validator and the chain adapters.

The chain accepts weights as u16 integers per uid. This module turns float scores into
that form the way the chain expects (max-upscaling, zeros dropped) and checks a weight
vector against a subnet's hyperparameters exactly as the local chain enforces them, so a
validator can know before sending whether the chain would refuse.

Rules (subtensor's ``do_set_weights`` checks, in the order it applies them):

- ``uids`` and ``weights`` have the same length, no uid twice, every uid registered;
- every weight is an integer in ``0..65535``;
- at least ``min_allowed_weights`` non-zero weights, unless the only weight is on the
  caller's own uid (a validator may always weight itself);
- after normalising the weights to sum to ``65535``, none exceeds ``max_weight_limit``;
- the version key is at least the subnet's ``weights_version``;
- at least ``weights_rate_limit`` blocks since the caller's last update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U16_MAX = 65535


class WeightsRejected(ValueError):
    """The chain would refuse (or refused) a ``set_weights`` call; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class WeightRules:
    """The subnet hyperparameters that govern weights."""

    min_allowed_weights: int = 1
    # Fraction of the total a single uid may receive (subtensor stores it as u16 / 65535).
    max_weight_limit: float = 1.0
    weights_rate_limit: int = 100
    weights_version: int = 0


def normalize_max_weight(weights: np.ndarray, limit: float) -> np.ndarray:
    """Normalise ``weights`` to sum to 1 with no entry above ``limit``.

    Entries over the limit are clipped and the excess redistributed over the others in
    proportion, repeated until nothing exceeds it (the fixed point the chain accepts).
    All-zero input gives a uniform vector. ``limit`` below ``1/n`` is raised to ``1/n``,
    the smallest cap any vector summing to 1 can meet.
    """
    w: np.ndarray = np.asarray(weights, dtype=np.float64).copy()
    n = w.size
    if n == 0:
        return w
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise WeightsRejected("invalid_values", "weights must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        return np.full(n, 1.0 / n)
    w = w / total
    limit = max(float(limit), 1.0 / n)
    for _ in range(n):
        over = w > limit + 1e-12
        if not over.any():
            break
        excess = float((w[over] - limit).sum())
        w[over] = limit
        under = ~over & (w < limit)
        pool = w[under].sum()
        if pool <= 0:
            w[under] += excess / max(int(under.sum()), 1)
        else:
            w[under] += excess * w[under] / pool
    return w


def check_weights(
    uids: Sequence[int],
    weights: Sequence[int],
    *,
    n_neurons: int,
    own_uid: int | None,
    rules: WeightRules,
    version_key: int,
) -> None:
    """Raise :class:`WeightsRejected` if the chain would refuse these u16 weights.

    Rate limiting needs the chain's memory of the last update and is checked by the
    chain adapter itself.
    """
    if len(uids) != len(weights):
        raise WeightsRejected("length_mismatch", f"{len(uids)} uids but {len(weights)} weights")
    if len(set(uids)) != len(uids):
        raise WeightsRejected("duplicate_uids", "a uid appears more than once")
    for uid in uids:
        if not isinstance(uid, (int, np.integer)) or not 0 <= uid < n_neurons:
            raise WeightsRejected("uid_not_registered", f"uid {uid} is not registered on the subnet")
    for value in weights:
        if isinstance(value, float) or not isinstance(value, (int, np.integer)):
            raise WeightsRejected("invalid_values", f"weight {value!r} is not an integer (u16 expected)")
        if not 0 <= int(value) <= U16_MAX:
            raise WeightsRejected("invalid_values", f"weight {value} is outside 0..{U16_MAX}")
    if version_key < rules.weights_version:
        raise WeightsRejected(
            "incorrect_version_key",
            f"version key {version_key} is below the subnet's weights_version {rules.weights_version}",
        )
    nonzero = [(u, int(w)) for u, w in zip(uids, weights, strict=True) if int(w) > 0]
    self_only = len(nonzero) == 1 and own_uid is not None and nonzero[0][0] == own_uid
    if not self_only and len(nonzero) < min(rules.min_allowed_weights, n_neurons):
        raise WeightsRejected(
            "too_few_weights",
            f"{len(nonzero)} non-zero weights; the subnet requires at least {rules.min_allowed_weights}",
        )
    total = sum(w for _, w in nonzero)
    if total == 0:
        raise WeightsRejected("too_few_weights", "all weights are zero")
    if not self_only and len(nonzero) > 1:
        limit = rules.max_weight_limit
        top = max(w for _, w in nonzero) / total
        # The chain compares u16-normalised values; allow one u16 step of rounding.
        if top > limit + 1.0 / U16_MAX:
            raise WeightsRejected(
                "max_weight_exceeded",
                f"largest weight is {top:.4f} of the total; the subnet allows at most {limit:.4f}",
            )


def weights_for_chain(
    uids: Sequence[int], scores: Sequence[float] | npt.NDArray[np.float64], rules: WeightRules
) -> tuple[list[int], list[int]]:
    """Scores per uid to the u16 weights the chain accepts: cap by the max weight limit, upscale.

    Values are rounded up: rounding down, or dropping a weight
    that rounds to zero, shrinks the total and can push the largest share past the
    limit by more than the chain tolerates. Only zero scores are dropped.
    """
    w = normalize_max_weight(np.asarray(scores, dtype=np.float64), rules.max_weight_limit)
    u = np.asarray(uids, dtype=np.int64)
    if w.shape != u.shape:
        raise WeightsRejected("length_mismatch", f"{u.size} uids but {w.size} weights")
    top = w.max(initial=0.0)
    if top <= 0:
        return [], []
    # The epsilon keeps float noise on exact values (the top is exactly U16_MAX) from
    # rounding up a whole step.
    scaled = np.minimum(np.ceil(w / top * U16_MAX - 1e-9), U16_MAX).astype(np.int64)
    keep = scaled > 0
    return u[keep].tolist(), scaled[keep].tolist()
