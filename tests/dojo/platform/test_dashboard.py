"""Kendall's W, checked against scipy's Friedman test (W = χ²_F / (m (n − 1)))."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import friedmanchisquare, rankdata

from dojo.platform.dashboard import kendalls_w


@pytest.mark.parametrize("seed", range(5))
def test_kendalls_w_matches_friedman(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(3, 8), rng.integers(3, 7)
    # Integer scores with ties, ranked per rater (average ranks for ties), as the dashboard does.
    scores = rng.integers(0, 4, size=(m, n))
    ranks = np.array([rankdata(row) for row in scores])
    if np.all(ranks == ranks[0, 0]):
        pytest.skip("all ties")
    chi2 = friedmanchisquare(*ranks.T).statistic
    assert kendalls_w(ranks) == pytest.approx(chi2 / (m * (n - 1)))


def test_kendalls_w_edge_cases():
    assert kendalls_w([[1, 2, 3]]) is None  # one rater
    assert kendalls_w([[1, 1], [1, 1]]) is None  # nothing but ties
    assert kendalls_w([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert kendalls_w([[1, 2, 3], [3, 2, 1]]) == pytest.approx(0.0)
