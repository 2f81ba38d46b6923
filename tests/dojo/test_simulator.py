"""The incentive simulator: every acceptance scenario in scenarios/ holds, for several seeds."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import commons.scoring
import dojo.simulate
from dojo.cli import main as dojo_main
from dojo.simulate import Scenario, ScenarioError, SimulationResult, simulate

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
# The scenario file's own seed and two more: a claim must not hang on one lucky draw.
SEED_OFFSETS = [0, 101, 202]


@cache
def run(name: str, offset: int) -> SimulationResult:
    scenario = Scenario.load(SCENARIOS / f"{name}.json")
    return simulate(replace(scenario, seed=scenario.seed + offset))


def weights_of(result: SimulationResult, group: str) -> np.ndarray:
    return result.weights[result.group_mask(group)]


def test_the_simulator_runs_the_validators_scoring_not_a_copy() -> None:
    assert dojo.simulate.score_mixed_round is commons.scoring.score_mixed_round
    assert dojo.simulate.MovingScores is commons.scoring.MovingScores
    # and score_mixed_round scores through score_round
    assert commons.scoring._organic.score_round is commons.scoring.score_round


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_noise_gradient_weight_falls_with_noise(offset: int) -> None:
    result = run("noise_gradient", offset)
    noise = [m.params["noise"] for m in result.miners]
    assert len(noise) == 30 and min(noise) == pytest.approx(0.1) and max(noise) == pytest.approx(3.0)
    assert spearmanr(noise, result.weights).statistic <= -0.8


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_mixed_attackers_earn_almost_nothing(offset: int) -> None:
    result = run("mixed_attackers", offset)
    groups = result.to_dict()["groups"]
    total = sum(g["count"] for g in groups.values())
    assert groups["honest"]["count"] == 0.7 * total
    for name in ("random", "constant", "reverse"):
        assert groups[name]["count"] == 0.1 * total
    assert groups["honest"]["weight_share"] >= 0.95
    median_honest = np.median(weights_of(result, "honest"))
    for name in ("random", "constant", "reverse"):
        assert weights_of(result, name).max() <= 0.2 * median_honest, name


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_colluders_stay_under_five_percent(offset: int) -> None:
    result = run("collusion", offset)
    groups = result.to_dict()["groups"]
    assert groups["colluding"]["count"] == pytest.approx(0.3 * sum(g["count"] for g in groups.values()))
    assert groups["colluding"]["weight_share"] <= 0.05


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_lazy_half_participation_earns_about_half(offset: int) -> None:
    result = run("lazy", offset)
    lazy = [m for m in result.miners if m.group == "lazy"]
    full = [m for m in result.miners if m.group == "honest"]
    assert all(m.params["participation"] == 0.5 for m in lazy)
    assert {m.params["noise"] for m in lazy} == {m.params["noise"] for m in full}  # equally noisy
    ratio = weights_of(result, "lazy").mean() / weights_of(result, "honest").mean()
    assert 0.35 <= ratio <= 0.65
    # Each lazy miner, not only the group on average.
    per_miner = weights_of(result, "lazy") / weights_of(result, "honest").mean()
    assert np.all((per_miner >= 0.35) & (per_miner <= 0.65))


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_wrong_ground_truth_honest_beat_the_oracle(offset: int) -> None:
    result = run("wrong_ground_truth", offset)
    assert result.scenario.gt_error_rate == 0.2
    honest = result.wrong_gt_score[result.group_mask("honest")]
    oracle = result.wrong_gt_score[result.group_mask("oracle")]
    assert np.all(np.isfinite(honest)) and np.all(np.isfinite(oracle))
    assert honest.mean() >= oracle.max()
    assert honest.min() >= oracle.max()


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_colluders_stay_under_five_percent_without_ground_truth(offset: int) -> None:
    result = run("no_ground_truth_collusion", offset)
    assert result.scenario.gt_known_fraction == 0.0
    assert result.to_dict()["groups"]["colluding"]["weight_share"] <= 0.05


@pytest.mark.parametrize("offset", SEED_OFFSETS)
def test_all_behaviours_at_once(offset: int) -> None:
    result = run("all_behaviours", offset)
    groups = result.to_dict()["groups"]
    median_honest = np.median(weights_of(result, "honest"))
    assert groups["honest"]["weight_share"] >= 0.8
    for name in ("random", "constant", "reverse", "colluding"):
        assert weights_of(result, name).max() <= 0.2 * median_honest, name
    heuristic = weights_of(result, "heuristic") / median_honest
    assert np.all((heuristic > 0.2) & (heuristic < 0.6))  # partly right, partly paid
    lazy = weights_of(result, "lazy") / weights_of(result, "honest").mean()
    assert np.all((lazy >= 0.35) & (lazy <= 0.65))
    assert groups["honest"]["mean_score_wrong_gt"] > 2 * groups["oracle"]["mean_score_wrong_gt"]


def test_every_scenario_file_is_valid_and_checked() -> None:
    names = {p.stem for p in SCENARIOS.glob("*.json")}
    checked = {
        "noise_gradient",
        "mixed_attackers",
        "collusion",
        "lazy",
        "wrong_ground_truth",
        "no_ground_truth_collusion",
        "all_behaviours",
        "organic_collusion",
        "organic_mixed_attackers",
        "organic_all_behaviours",
        # several validators: tests/dojo/test_simulate_network.py
        "validators_honest",
        "validators_copier",
        "validators_copier_churn",
        "validators_colluder",
        "validators_lazy",
    }
    assert names == checked  # a new scenario file needs its test here
    for path in SCENARIOS.glob("*.json"):
        Scenario.load(path)


def test_other_behaviours_rank_sensibly() -> None:
    scenario = Scenario.from_dict(
        {
            "seed": 3,
            "rounds": 6,
            "tasks_per_round": 40,
            "completions": [3, 6],
            "gt_known_fraction": 0.6,
            "criteria": "score",
            "groups": [
                {"name": "honest", "count": 8, "behaviour": "honest", "noise": 0.3},
                {"name": "strong-heuristic", "count": 2, "behaviour": "heuristic", "rho": 0.8},
                {"name": "weak-heuristic", "count": 2, "behaviour": "heuristic", "rho": 0.2},
                {"name": "oracle", "count": 1, "behaviour": "oracle"},
            ],
        }
    )
    result = simulate(scenario)
    groups = result.to_dict()["groups"]
    per = {k: v["weight_share"] / v["count"] for k, v in groups.items()}
    assert per["honest"] > per["strong-heuristic"] > per["weak-heuristic"]
    assert per["oracle"] > per["weak-heuristic"]
    assert result.weights.sum() == pytest.approx(1.0)


def test_scores_and_ranks_criteria_give_the_same_weights() -> None:
    base = Scenario.load(SCENARIOS / "mixed_attackers.json")
    small = replace(base, rounds=3, tasks_per_round=20)
    np.testing.assert_allclose(simulate(small).weights, simulate(replace(small, criteria="score")).weights)


def test_without_any_ground_truth() -> None:
    scenario = replace(Scenario.load(SCENARIOS / "collusion.json"), gt_known_fraction=0.0, rounds=5)
    groups = simulate(scenario).to_dict()["groups"]
    assert groups["honest"]["weight_share"] > 0.9


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"groups": []}, "non-empty 'groups'"),
        ({"groups": [{"behaviour": "sneaky", "count": 1}]}, "not one of"),
        ({"groups": [{"behaviour": "honest", "count": 0}]}, "positive integer"),
        ({"groups": [{"behaviour": "random", "count": 1, "noise": 1}]}, "not parameters"),
        ({"groups": [{"behaviour": "random", "count": 1}, {"behaviour": "random", "count": 1}]}, "twice"),
        ({"completions": [1, 4], "groups": [{"behaviour": "random", "count": 1}]}, "completions"),
        ({"gt_error_rate": 2, "groups": [{"behaviour": "random", "count": 1}]}, "within"),
        ({"colour": "red", "groups": [{"behaviour": "random", "count": 1}]}, "unknown scenario keys"),
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(data: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict(data)


def test_cli_writes_results_summary_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = json.loads((SCENARIOS / "wrong_ground_truth.json").read_text())
    scenario.update(rounds=4, tasks_per_round=20)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    out = tmp_path / "out"
    assert dojo_main(["simulate", str(path), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"miners", "groups"}
    assert len(results["miners"]) == 20
    for miner in results["miners"]:
        assert {"uid", "group", "behaviour", "mean_score", "weight"} <= set(miner)
    assert sum(m["weight"] for m in results["miners"]) == pytest.approx(1.0)
    assert set(results["groups"]) == {"honest", "oracle"}
    for group in results["groups"].values():
        assert {"weight_share", "mean_score", "count"} <= set(group)
    assert sum(g["weight_share"] for g in results["groups"].values()) == pytest.approx(1.0)
    assert "| honest | honest | 18 |" in (out / "summary.md").read_text()
    assert (out / "weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "weight share" in capsys.readouterr().out


def test_cli_reports_a_bad_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert dojo_main(["simulate", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read scenario" in capsys.readouterr().err


@pytest.mark.parametrize("offset", SEED_OFFSETS)
@pytest.mark.parametrize("name", ["collusion", "mixed_attackers", "all_behaviours"])
def test_organic_tasks_give_attackers_nothing_and_cost_the_honest_nothing(name: str, offset: int) -> None:
    without = run(name, offset).to_dict()["groups"]
    mixed = run(f"organic_{name}", offset)
    assert mixed.scenario.organic_share == 0.3
    with_organic = mixed.to_dict()["groups"]
    for group, entry in with_organic.items():
        if entry["behaviour"] == "honest":
            assert entry["weight_share"] >= without[group]["weight_share"] - 1e-3, group
        else:
            assert entry["weight_share"] <= without[group]["weight_share"] + 1e-3, (
                group,
                entry,
                without[group],
            )
    # The callers get the true order back from the reliability-weighted consensus.
    assert mixed.organic_spearman >= 0.9
