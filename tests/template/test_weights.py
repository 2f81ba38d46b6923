"""Weight conversion and the chain's weight rules, checked against the SDK's own implementation."""

from __future__ import annotations

import numpy as np
import pytest
from bittensor.intents.weights import clip_to_max_weight
from hypothesis import given, settings
from hypothesis import strategies as st

from template.chain.weights import (
    U16_MAX,
    WeightRules,
    WeightsRejected,
    check_weights,
    normalize_max_weight,
    weights_for_chain,
)

# Scores as a validator produces them: zero, or a positive amount in a sane range
# (subnormal floats only exercise float underflow, not the weight rules).
SCORES = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e3))

RULES = WeightRules(min_allowed_weights=2, max_weight_limit=0.5, weights_rate_limit=10, weights_version=4)


def _reason(uids, weights, *, n=10, own=0, rules=RULES, version=4) -> str | None:
    try:
        check_weights(uids, weights, n_neurons=n, own_uid=own, rules=rules, version_key=version)
    except WeightsRejected as exc:
        return exc.reason
    return None


# ----------------------------------------------------------------- normalize_max_weight


def test_normalize_max_weight_caps_and_redistributes():
    w = normalize_max_weight(np.array([10.0, 1.0, 1.0, 1.0]), 0.4)
    assert w.sum() == pytest.approx(1.0)
    assert w.max() == pytest.approx(0.4)
    assert w[1:] == pytest.approx([0.2, 0.2, 0.2])


def test_normalize_max_weight_edge_cases():
    assert normalize_max_weight(np.zeros(4), 0.5) == pytest.approx([0.25] * 4)
    assert normalize_max_weight(np.array([]), 0.5).size == 0
    # A limit below 1/n cannot be met by any vector summing to 1: uniform is the closest.
    assert normalize_max_weight(np.array([5.0, 1.0, 1.0]), 0.1) == pytest.approx([1 / 3] * 3)
    with pytest.raises(WeightsRejected):
        normalize_max_weight(np.array([1.0, float("nan")]), 0.5)


def _water_fill(weights: list[float], limit: float) -> np.ndarray:
    """Reference: the vector ``min(limit, k * w)`` summing to 1, with ``k`` found by bisection."""
    w = np.asarray(weights, dtype=np.float64)
    lo, hi = 0.0, 1.0
    while np.minimum(limit, hi * w).sum() < 1.0:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(limit, mid * w).sum() < 1.0 else (lo, mid)
    return np.minimum(limit, hi * w)


def test_normalize_max_weight_matches_the_sdk_clip_on_a_typical_vector():
    scores = [9.0, 3.0, 2.0, 1.0, 1.0, 0.5]
    assert normalize_max_weight(np.array(scores), 0.3) == pytest.approx(
        clip_to_max_weight(scores, 0.3), abs=1e-6
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(SCORES, min_size=2, max_size=30).filter(lambda w: sum(w) > 1e-3),
    st.floats(min_value=0.05, max_value=1.0),
)
def test_normalize_max_weight_is_the_water_filling_fixed_point(weights, limit):
    ours = normalize_max_weight(np.array(weights), limit)
    assert ours.sum() == pytest.approx(1.0)
    assert ours.max() <= max(limit, 1 / len(weights)) + 1e-9
    if sum(1 for w in weights if w > 0) * limit > 1 + 1e-6:
        # Feasible without raising zero entries: scale proportionally, cap at the limit.
        assert ours == pytest.approx(_water_fill(weights, limit), abs=1e-7)
    else:
        # The non-zero entries sit at the limit and the zeros share the rest evenly.
        positive = np.array(weights) > 0
        assert ours[positive] == pytest.approx(np.full(positive.sum(), max(limit, 1 / len(weights))))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(SCORES, min_size=3, max_size=30).filter(lambda w: sum(1 for x in w if x > 1e-3) >= 3),
    st.floats(min_value=0.34, max_value=1.0),
)
def test_weights_for_chain_always_passes_the_chain_rules(scores, limit):
    rules = WeightRules(min_allowed_weights=1, max_weight_limit=limit)
    uids, weights = weights_for_chain(list(range(len(scores))), scores, rules)
    check_weights(uids, weights, n_neurons=len(scores), own_uid=None, rules=rules, version_key=0)


# ----------------------------------------------------------------- check_weights


def test_a_good_vector_passes():
    assert _reason([1, 2, 3], [65535, 65535, 65535]) is None


@pytest.mark.parametrize(
    ("uids", "weights", "reason"),
    [
        ([1, 2], [5], "length_mismatch"),
        ([1, 1, 2], [5, 5, 5], "duplicate_uids"),
        ([1, 10], [5, 5], "uid_not_registered"),
        ([-1, 2], [5, 5], "uid_not_registered"),
        ([1.0, 2], [5, 5], "uid_not_registered"),
        ([1, 2], [65536, 5], "invalid_values"),
        ([1, 2], [-1, 5], "invalid_values"),
        ([1, 2], [1.0, 5], "invalid_values"),
        ([1, 2], ["5", 5], "invalid_values"),
        ([1, 2, 3], [5, 0, 0], "too_few_weights"),
        ([1, 2], [0, 0], "too_few_weights"),
        ([1, 2], [65535, 10000], "max_weight_exceeded"),
    ],
)
def test_each_rule(uids, weights, reason):
    assert _reason(uids, weights) == reason


def test_version_key_below_the_subnet_version():
    assert _reason([1, 2], [5, 5], version=3) == "incorrect_version_key"
    assert _reason([1, 2], [5, 5], version=9) is None


def test_self_weight_alone_is_exempt_from_count_and_limit():
    assert _reason([0], [65535], own=0) is None
    assert _reason([1], [65535], own=0) == "too_few_weights"
    # Zeros do not count: one non-zero weight on oneself is still "self only".
    assert _reason([0, 3], [65535, 0], own=0) is None


def test_min_allowed_weights_is_capped_by_subnet_size():
    rules = WeightRules(min_allowed_weights=8, max_weight_limit=1.0)
    assert _reason([0, 1], [5, 5], n=2, own=None, rules=rules, version=0) is None


def test_max_weight_limit_allows_one_u16_step_of_rounding():
    # 3 equal weights under a limit of exactly 1/3: equal shares pass.
    rules = WeightRules(min_allowed_weights=1, max_weight_limit=1 / 3)
    assert _reason([1, 2, 3], [U16_MAX] * 3, own=None, rules=rules, version=0) is None
    assert _reason([1, 2, 3], [U16_MAX, U16_MAX, 60000], own=None, rules=rules, version=0) == (
        "max_weight_exceeded"
    )


def test_numpy_integers_are_accepted():
    assert _reason(np.array([1, 2]).tolist(), list(np.array([9, 9], dtype=np.uint16))) is None
    assert _reason(list(np.array([1, 2], dtype=np.int64)), [9, 9]) is None
