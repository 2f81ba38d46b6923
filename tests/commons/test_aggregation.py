"""Aggregation: window means, per-hotkey moving scores, their saved state and chain weights."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from commons.scoring import STATE_VERSION, MovingScores, StateVersionError, score_round, window_mean
from template.chain.weights import U16_MAX, WeightRules, check_weights, normalize_max_weight


def test_window_mean_counts_missing_as_zero_and_skips_unassigned() -> None:
    scores = np.array([[1.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2], [0.9, 0.9, 0.0, 0.0]])
    np.testing.assert_allclose(window_mean(scores), [0.5, 0.2, 0.45])
    assigned = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
    np.testing.assert_allclose(window_mean(scores, assigned), [0.5, 0.2, 0.9])
    assert window_mean(scores, np.zeros_like(assigned)).tolist() == [0.0, 0.0, 0.0]
    assert window_mean(np.array([[np.nan, 1.0]])).tolist() == [0.5]


def test_a_lazy_miner_earns_its_participation_share() -> None:
    rng = np.random.default_rng(0)
    true = np.argsort(np.argsort(rng.random((400, 5)), axis=1), axis=1) + 1.0
    subs = true[None] + rng.normal(0, 0.5, (8, 400, 5))
    subs[7, rng.random(400) < 0.5] = np.nan  # answers about half its tasks
    means = score_round(subs, np.full(400, 5), true).miner_scores()
    assert 0.4 < means[7] / np.median(means[:7]) < 0.6


def test_moving_average_math() -> None:
    moving = MovingScores(alpha=0.5)
    moving.update(["a", "b"], [0, 1], [1.0, 0.5])
    assert moving.scores() == {"a": 0.5, "b": 0.25}
    moving.update(["a", "b"], [0, 1], [1.0, 0.0])
    assert moving.scores() == {"a": 0.75, "b": 0.125}
    moving.update(["a"], [0], [np.nan])  # a NaN round score counts as 0
    assert moving.scores()["a"] == 0.375


def test_a_new_hotkey_on_an_old_uid_starts_from_zero() -> None:
    moving = MovingScores(alpha=0.5)
    for _ in range(5):
        moving.update(["old", "other"], [3, 4], [1.0, 1.0])
    assert moving.scores()["old"] > 0.9
    moving.update(["new", "other"], [3, 4], [0.0, 1.0])
    assert "old" not in moving.scores()
    assert moving.scores()["new"] == 0.0
    assert moving.uid_scores(5)[3] == 0.0
    assert moving.scores()["other"] > 0.9  # untouched


def test_a_hotkey_moving_to_another_uid_starts_from_zero() -> None:
    moving = MovingScores(alpha=0.5)
    moving.update(["hk"], [1], [1.0])
    moving.update(["hk"], [2], [1.0])
    assert moving.scores() == {"hk": 0.5}
    assert moving.uid_scores(3).tolist() == [0.0, 0.0, 0.5]


def test_sync_forgets_deregistered_and_replaced_miners() -> None:
    moving = MovingScores()
    moving.update(["a", "b", "c"], [0, 1, 2], [1.0, 1.0, 1.0])
    moving.sync({0: "a", 1: "someone-else"})
    assert set(moving.scores()) == {"a"}


def test_update_rejects_inconsistent_input() -> None:
    moving = MovingScores()
    with pytest.raises(ValueError, match="hotkeys"):
        moving.update(["a"], [0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="twice"):
        moving.update(["a", "a"], [0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="alpha"):
        MovingScores(alpha=0.0)


def test_weights_follow_the_chain_rules() -> None:
    moving = MovingScores(alpha=1.0)
    moving.update(["a", "b", "c", "d"], [0, 1, 2, 4], [0.9, 0.3, 0.0, 0.6])
    uids, weights = moving.weights(6)
    assert uids == [0, 1, 4]  # zeros dropped
    assert max(weights) == U16_MAX
    assert weights == [U16_MAX, round(U16_MAX / 3), round(U16_MAX * 2 / 3)]
    check_weights(uids, weights, n_neurons=6, own_uid=5, rules=WeightRules(), version_key=0)


def test_weights_respect_the_max_weight_limit() -> None:
    moving = MovingScores(alpha=1.0)
    moving.update([f"h{i}" for i in range(5)], list(range(5)), [1.0, 0.1, 0.1, 0.1, 0.1])
    rules = WeightRules(max_weight_limit=0.4, min_allowed_weights=3)
    uids, weights = moving.weights(5, rules)
    check_weights(uids, weights, n_neurons=5, own_uid=None, rules=rules, version_key=0)
    shares = np.asarray(weights) / sum(weights)
    np.testing.assert_allclose(
        shares, normalize_max_weight(np.array([1.0, 0.1, 0.1, 0.1, 0.1]), 0.4), atol=1e-4
    )


def test_no_scores_no_weights() -> None:
    assert MovingScores().weights(4) == ([], [])


def test_state_round_trip_and_atomic_save(tmp_path: Path) -> None:
    moving = MovingScores(alpha=0.3)
    moving.update(["a", "b"], [0, 7], [0.8, 0.1])
    state = moving.to_dict()
    assert state["version"] == STATE_VERSION
    again = MovingScores.from_dict(json.loads(json.dumps(state)))
    assert again.to_dict() == state
    path = tmp_path / "sub" / "scores.json"
    moving.save(path)
    assert MovingScores.load(path).to_dict() == state
    assert [p.name for p in path.parent.iterdir()] == ["scores.json"]  # no temporary left behind
    moving.update(["a"], [0], [1.0])
    moving.save(path)
    assert MovingScores.load(path).scores()["a"] == pytest.approx(0.3 * 1.0 + 0.7 * 0.24)
    fresh = MovingScores.load(tmp_path / "missing.json", alpha=0.2)
    assert fresh.scores() == {} and fresh.alpha == 0.2


def test_state_versions_outside_the_known_range_are_refused() -> None:
    with pytest.raises(StateVersionError, match="no integer 'version'"):
        MovingScores.from_dict({"alpha": 0.1, "miners": {}})
    with pytest.raises(StateVersionError, match="upgrade the validator"):
        MovingScores.from_dict({"version": STATE_VERSION + 1, "alpha": 0.1, "miners": {}})
    with pytest.raises(StateVersionError):
        MovingScores.from_dict({"version": 0, "alpha": 0.1, "miners": {}})


def test_a_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scores.json"
    moving = MovingScores()
    moving.update(["a"], [0], [1.0])
    moving.save(path)
    before = path.read_text()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("commons.scoring._moving.os.replace", broken)
    moving.update(["a"], [0], [1.0])
    with pytest.raises(OSError, match="disk full"):
        moving.save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_concurrent_updates_and_snapshots_are_consistent() -> None:
    moving = MovingScores(alpha=0.01)
    hotkeys = [f"h{i}" for i in range(50)]
    errors: list[BaseException] = []

    def writer() -> None:
        for _ in range(100):
            moving.update(hotkeys, list(range(50)), np.full(50, 0.5))

    def reader() -> None:
        try:
            for _ in range(200):
                state = moving.to_dict()
                rounds = {m["rounds"] for m in state["miners"].values()}
                assert len(rounds) <= 1  # an update is applied to all miners or none
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(3)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {m["rounds"] for m in moving.to_dict()["miners"].values()} == {300}


def test_public_api_is_exactly_all() -> None:
    import commons.scoring

    public = {n for n in vars(commons.scoring) if not n.startswith("_")}
    assert len(set(commons.scoring.__all__)) == len(commons.scoring.__all__)
    assert set(commons.scoring.__all__) == public - {"annotations"}
