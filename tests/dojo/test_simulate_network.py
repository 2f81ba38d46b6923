"""Several validators and the chain's Yuma consensus: the acceptance of the multi-validator scenarios."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import commons.scoring
import dojo.simulate_network
import template.chain.yuma
from dojo.cli import main as dojo_main
from dojo.simulate import Scenario, ScenarioError
from dojo.simulate_network import NetworkResult, simulate_network

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
# The file's own seed and another: a claim must not hang on one lucky draw.
SEED_OFFSETS = [0, 101]


@cache
def run(name: str, offset: int = 0, **changes: int) -> NetworkResult:
    scenario = Scenario.load(SCENARIOS / f"{name}.json")
    return simulate_network(replace(scenario, seed=scenario.seed + offset, **changes))


def validator(result: NetworkResult, name: str) -> dict:
    return next(v for v in result.to_dict()["validators"] if v["name"] == name)


def honest(result: NetworkResult) -> list[dict]:
    return [v for v in result.to_dict()["validators"] if v["behaviour"] == "honest"]


def incentive(result: NetworkResult, group: str) -> np.ndarray:
    return np.array([m["incentive_settled"] for m in result.to_dict()["miners"] if m["group"] == group])


def test_the_simulator_runs_the_real_scoring_and_the_chains_epoch() -> None:
    assert dojo.simulate_network.score_mixed_round is commons.scoring.score_mixed_round
    assert dojo.simulate_network.MovingScores is commons.scoring.MovingScores
    assert dojo.simulate_network.yuma_epoch is template.chain.yuma.yuma_epoch


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_honest_validators_with_their_own_samples_agree(offset: int) -> None:
    result = run("validators_honest", offset)
    for v in honest(result):
        assert v["trust_min_settled"] >= 0.9, v
        # Equal stake, equal work: equal pay, within a few percent.
        assert v["dividend_per_stake"] == pytest.approx(1.0, abs=0.05)
    # Consensus orders every honest miner above every random one.
    assert incentive(result, "honest").min() > incentive(result, "random").max()
    assert incentive(result, "heuristic").mean() > incentive(result, "random").mean()


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_a_copier_earns_less_than_honest_validators_under_commit_reveal(offset: int) -> None:
    hidden = run("validators_copier", offset)
    assert hidden.scenario.commit_reveal_period == 1
    copier = validator(hidden, "copier")
    assert copier["dividend_per_stake"] < min(v["dividend_per_stake"] for v in honest(hidden))
    for v in honest(hidden):
        assert v["trust_min_settled"] >= 0.9
    # Without commit-reveal the copier reads this round's weights: it earns at least what
    # the honest validators earn (the figure docs/scoring.md reports).
    shown = run("validators_copier", offset, commit_reveal_period=0)
    copier_shown = validator(shown, "copier")
    assert copier_shown["dividend_per_stake"] > copier["dividend_per_stake"]
    assert copier_shown["dividend_per_stake"] >= min(v["dividend_per_stake"] for v in honest(shown)) - 0.01


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_with_miners_coming_and_going_the_copier_stays_behind_after_it_settles(offset: int) -> None:
    hidden = run("validators_copier_churn", offset)
    copier = validator(hidden, "copier")
    # Not only the late start: once settled it still earns less, its weights trail each change.
    assert (
        copier["dividend_per_stake_settled"]
        < min(v["dividend_per_stake_settled"] for v in honest(hidden)) - 0.05
    )
    shown = run("validators_copier_churn", offset, commit_reveal_period=0)
    assert validator(shown, "copier")["dividend_per_stake_settled"] > copier["dividend_per_stake_settled"]
    # The honest validators follow the miners: the leavers lose their incentive to the joiners.
    assert incentive(hidden, "joining").min() > incentive(hidden, "leaving").max()


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_a_colluding_validator_is_clipped_and_loses_its_trust(offset: int) -> None:
    result = run("validators_colluder", offset)
    data = result.to_dict()
    target = next(m for m in data["miners"] if m["group"] == "random")  # the first random miner
    others = incentive(result, "random")[1:]
    # Unclipped, a quarter of the stake on one miner would give it a quarter of the weight;
    # clipped at consensus it stays with the other random miners, far below every honest one.
    assert target["unclipped_settled"] >= 0.25
    assert target["incentive_settled"] < 2 * others.mean()
    assert target["incentive_settled"] < incentive(result, "honest").min()
    baseline = run("validators_honest", offset)
    assert target["incentive_settled"] < 0.05 + incentive(baseline, "random")[0]
    colluder = validator(result, "colluder")
    assert colluder["trust_settled"] < 0.1
    assert colluder["dividend_per_stake"] < 0.1
    for v in honest(result):
        assert v["trust_min_settled"] >= 0.9


def test_a_lazy_validator_earns_less_trust_and_less_per_stake() -> None:
    result = run("validators_lazy")
    lazy = validator(result, "lazy")
    for v in honest(result):
        assert lazy["trust_settled"] < v["trust_settled"] - 0.1
        assert lazy["dividend_per_stake"] < v["dividend_per_stake"]


def test_runs_are_deterministic_for_a_seed() -> None:
    scenario = replace(Scenario.load(SCENARIOS / "validators_honest.json"), rounds=4)
    a, b = simulate_network(scenario), simulate_network(scenario)
    np.testing.assert_array_equal(a.incentive, b.incentive)
    np.testing.assert_array_equal(a.trust, b.trust)


@pytest.mark.parametrize(
    ("validators", "message"),
    [
        ([{"behaviour": "bribed"}], "behaviour 'bribed'"),
        ([{"behaviour": "colluder"}], "needs 'target'"),
        ([{"behaviour": "colluder", "target": "nobody"}], "needs 'target'"),
        ([{"behaviour": "honest", "stake": 0}], "stake > 0"),
        ([{"behaviour": "honest", "sampel_size": 3}], "unknown keys"),
        ([{"behaviour": "honest"}, {"behaviour": "honest"}], "distinct"),
        ("honest", "must be a list"),
    ],
)
def test_bad_validator_entries_are_refused(validators: object, message: str) -> None:
    data = {"groups": [{"name": "h", "count": 2, "behaviour": "honest"}], "validators": validators}
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict(data)


def test_cli_runs_a_scenario_with_validators(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = json.loads((SCENARIOS / "validators_copier.json").read_text())
    scenario.update(rounds=4, tasks_per_round=10)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    out = tmp_path / "out"
    assert dojo_main(["simulate", str(path), "--out", str(out), "--commit-reveal-period", "0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["commit_reveal_period"] == 0
    assert [v["name"] for v in results["validators"]] == ["honest-1", "honest-2", "honest-3", "copier"]
    assert sum(g["incentive_share"] for g in results["groups"].values()) == pytest.approx(1.0)
    assert (out / "incentive.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| copier | copier |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "window", [{"from_round": -1}, {"from_round": 5, "until_round": 5}, {"until_round": "x"}]
)
def test_bad_group_windows_are_refused(window: dict) -> None:
    data = {"groups": [{"name": "h", "count": 2, "behaviour": "honest", **window}]}
    with pytest.raises(ScenarioError, match="until_round > from_round"):
        Scenario.from_dict(data)
