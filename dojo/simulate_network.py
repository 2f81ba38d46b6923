"""Several validators on one subnet: what Yuma consensus makes of their weights.

A scenario with ``validators`` (see :mod:`dojo.simulate`) runs here. Every round (one
epoch of the chain):

1. each validator that works draws its own ``tasks_per_round`` tasks and sends each to its
   own random ``sample_size`` miners; the miners answer by their behaviour; the validator
   scores the round with :func:`commons.scoring.score_mixed_round`, folds the scores of the
   miners it sampled into its own :class:`commons.scoring.MovingScores` (as the validator's
   store does: unsampled miners keep their score) and sets the weights those imply;
2. a copier reads the other validators' weights as the chain shows them and sets their
   stake-weighted mean; a colluder puts everything on one miner; a lazy validator weights
   every miner equally;
3. weights set become visible ``commit_reveal_period`` rounds later (0: at once);
4. :func:`template.chain.yuma.yuma_epoch` runs on the visible weights, the stakes and the
   bonds it returned last round.

Nothing of the scoring or of the consensus is re-implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger

from commons.scoring import MovingScores, score_mixed_round
from dojo.simulate import (
    Scenario,
    SimMiner,
    ValidatorSpec,
    _answers,
    _draw_tasks,
    _miners,
    _normalised_weights,
)
from template.chain.weights import WeightRules
from template.chain.yuma import YumaParams, yuma_epoch


@dataclass
class NetworkResult:
    """Outcome of :func:`simulate_network`; ``to_dict`` is ``results.json``.

    Histories are per round (= epoch): ``trust`` and ``dividends`` ``(R, V)``,
    ``incentive``, ``consensus`` and ``unclipped`` ``(R, M)`` (``unclipped``: the
    stake-weighted mean of the visible weights, what miners would get without clipping).
    """

    scenario: Scenario
    miners: list[SimMiner]
    validators: tuple[ValidatorSpec, ...]
    trust: np.ndarray
    dividends: np.ndarray
    incentive: np.ndarray
    consensus: np.ndarray
    unclipped: np.ndarray
    share_history: np.ndarray  # (R, groups) incentive share of each group

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.scenario.groups]

    @property
    def settled(self) -> slice:
        """The second half of the run: scores have settled (the moving average is ~10 rounds)."""
        return slice(self.trust.shape[0] // 2, None)

    @property
    def stake_share(self) -> np.ndarray:
        stakes = np.array([v.stake for v in self.validators])
        share: np.ndarray = stakes / stakes.sum()
        return share

    def dividend_per_stake(self, settled: bool = False) -> np.ndarray:
        """Mean dividend share over the rounds (all, or the settled ones) over the stake share:
        1.0 is what stake alone would earn."""
        rows = self.dividends[self.settled] if settled else self.dividends
        ratio: np.ndarray = rows.mean(axis=0) / self.stake_share
        return ratio

    def group_mask(self, name: str) -> np.ndarray:
        return np.array([m.group == name for m in self.miners])

    def to_dict(self) -> dict[str, Any]:
        s = self.settled
        per_stake, per_stake_settled = self.dividend_per_stake(), self.dividend_per_stake(settled=True)
        validators = [
            {
                "name": v.name,
                "behaviour": v.behaviour,
                "stake": v.stake,
                "sample_size": v.sample_size,
                "tasks_per_round": v.tasks_per_round,
                "alpha": v.alpha,
                "scoring_rounds": v.scoring_rounds,
                "trust_settled": float(self.trust[s, i].mean()),
                "trust_min_settled": float(self.trust[s, i].min()),
                "trust_final": float(self.trust[-1, i]),
                "dividend_per_stake": float(per_stake[i]),
                "dividend_per_stake_settled": float(per_stake_settled[i]),
            }
            for i, v in enumerate(self.validators)
        ]
        miners = [
            {
                "uid": m.uid,
                "group": m.group,
                "behaviour": m.behaviour,
                "incentive_settled": float(self.incentive[s, m.uid].mean()),
                "consensus_settled": float(self.consensus[s, m.uid].mean()),
                "unclipped_settled": float(self.unclipped[s, m.uid].mean()),
            }
            for m in self.miners
        ]
        groups = {}
        for g in self.scenario.groups:
            mask = self.group_mask(g.name)
            share = float(self.incentive[s][:, mask].sum(axis=1).mean())
            groups[g.name] = {
                "behaviour": g.behaviour,
                "count": int(mask.sum()),
                "incentive_share": share,
                "incentive_per_miner": share / int(mask.sum()),
            }
        return {
            "commit_reveal_period": self.scenario.commit_reveal_period,
            "kappa": self.scenario.kappa,
            "bonds_moving_average": self.scenario.bonds_moving_average,
            "rounds": int(self.trust.shape[0]),
            "settled_from_round": int(self.trust.shape[0] // 2) + 1,
            "validators": validators,
            "groups": groups,
            "miners": miners,
        }


def simulate_network(scenario: Scenario) -> NetworkResult:
    """Run a scenario with ``validators`` through each validator's scoring and the chain's epoch."""
    if not scenario.validators:
        raise ValueError("the scenario has no 'validators'; run it with dojo.simulate.simulate")
    rng = np.random.default_rng(scenario.seed)
    miners = _miners(scenario)
    n = len(miners)
    hotkeys = [m.hotkey for m in miners]
    groups = [g.name for g in scenario.groups]
    members = {name: [m.uid for m in miners if m.group == name] for name in groups}
    specs = scenario.validators
    n_val = len(specs)
    stakes = np.array([v.stake for v in specs])
    rules = WeightRules(max_weight_limit=scenario.max_weight_limit)
    yuma = YumaParams(kappa=scenario.kappa, bond_moving_average=scenario.bonds_moving_average)
    period = scenario.commit_reveal_period
    moving = [MovingScores(alpha=v.alpha) for v in specs]
    reliability = [np.full(n, np.nan) for _ in specs]
    pending: list[tuple[int, int, np.ndarray]] = []  # (reveal round, validator, weights)
    visible = np.zeros((n_val, n))
    bonds: np.ndarray | None = None

    rounds = scenario.rounds
    trust = np.zeros((rounds, n_val))
    dividends = np.zeros((rounds, n_val))
    incentive = np.zeros((rounds, n))
    consensus = np.zeros((rounds, n))
    unclipped = np.zeros((rounds, n))
    shares = np.zeros((rounds, len(groups)))

    def reveal(rnd: int) -> None:
        nonlocal pending
        for _, v, row in [p for p in pending if p[0] <= rnd]:
            visible[v] = row
        pending = [p for p in pending if p[0] > rnd]

    for rnd in range(rounds):
        for i, spec in enumerate(specs):
            if spec.behaviour == "copier":
                continue
            if spec.behaviour == "honest":
                row = _honest_round(
                    rng, scenario, spec, miners, members, moving[i], reliability, i, hotkeys, rules, rnd
                )
            elif spec.behaviour == "colluder":
                row = np.zeros(n)
                row[members[str(spec.target)][0]] = 1.0
            else:  # lazy
                row = np.full(n, 1.0 / n)
            pending.append((rnd + period, i, row))
        reveal(rnd)
        for i, spec in enumerate(specs):
            if spec.behaviour != "copier":
                continue
            others = [j for j in range(n_val) if j != i and visible[j].sum() > 0]
            if not others:
                continue  # nothing to copy yet: sets no weights
            rows = visible[others] / visible[others].sum(axis=1, keepdims=True)
            row = stakes[others] @ rows / stakes[others].sum()
            pending.append((rnd + period, i, row))
        reveal(rnd)
        epoch = yuma_epoch(visible, stakes, bonds, yuma)
        bonds = epoch.bonds
        trust[rnd], dividends[rnd] = epoch.validator_trust, epoch.dividends
        incentive[rnd], consensus[rnd] = epoch.incentive, epoch.consensus
        row_sums = visible.sum(axis=1, keepdims=True)
        normalised = np.divide(visible, row_sums, out=np.zeros_like(visible), where=row_sums > 0)
        active = row_sums[:, 0] > 0
        if active.any():
            unclipped[rnd] = stakes[active] @ normalised[active] / stakes[active].sum()
        shares[rnd] = [epoch.incentive[members[name]].sum() for name in groups]
        logger.debug(
            "simulate round {}: trust {} dividends {}", rnd, trust[rnd].round(3), dividends[rnd].round(3)
        )

    return NetworkResult(
        scenario=scenario,
        miners=miners,
        validators=specs,
        trust=trust,
        dividends=dividends,
        incentive=incentive,
        consensus=consensus,
        unclipped=unclipped,
        share_history=shares,
    )


def _honest_round(
    rng: np.random.Generator,
    scenario: Scenario,
    spec: ValidatorSpec,
    miners: list[SimMiner],
    members: dict[str, list[int]],
    moving: MovingScores,
    reliability: list[np.ndarray],
    index: int,
    hotkeys: list[str],
    rules: WeightRules,
    rnd: int,
) -> np.ndarray:
    """One validator's epoch on its own tasks and sample; returns the weights it sets (shares).

    The epoch's ``tasks_per_round`` tasks are scored in ``scoring_rounds`` rounds, each
    folded into the moving scores, as the validator scores what it collected every
    ``--neuron.scoring_interval``.
    """
    n = len(miners)
    k = min(spec.sample_size, n)
    hi = scenario.completions[1]
    higher = scenario.criteria == "score"
    for chunk in np.array_split(np.arange(spec.tasks_per_round), spec.scoring_rounds):
        n_tasks = len(chunk)
        if not n_tasks:
            continue
        n_comp, items, true, held_gt, _ = _draw_tasks(rng, scenario, n_tasks)
        # Each task to its own random sample of the miners, as the validator's task loop does.
        chosen = np.argsort(rng.random((n_tasks, n)), axis=1)[:, :k]
        assigned = np.zeros((n, n_tasks), dtype=bool)
        assigned[chosen.T, np.arange(n_tasks)[None, :]] = True
        subs = np.full((n, n_tasks, hi), np.nan)
        for group in scenario.groups:
            ids = members[group.name]
            subs[ids] = _answers(rng, ids, miners, true, held_gt, items, n_comp)
            if not group.active(rnd):
                subs[ids] = np.nan
        subs[~assigned] = np.nan
        if higher:
            subs = hi + 1.0 - subs
        organic = rng.random(n_tasks) < scenario.organic_share
        held_gt[organic] = np.nan
        mixed = score_mixed_round(
            subs,
            n_comp,
            None if scenario.gt_known_fraction == 0 else held_gt,
            organic,
            reliability=reliability[index],
            higher_is_better=higher,
        )
        reliability[index] = mixed.carried
        round_scores = mixed.result.miner_scores(assigned)
        seen = np.flatnonzero(assigned.any(axis=1))
        moving.update([hotkeys[m] for m in seen], [int(m) for m in seen], round_scores[seen])
    return _normalised_weights(moving, n, rules)


def summary_markdown(result: NetworkResult) -> str:
    s = result.scenario
    data = result.to_dict()
    cr = f"commit-reveal {s.commit_reveal_period} round(s)" if s.commit_reveal_period else "commit-reveal off"
    lines = [
        "# Simulation summary: several validators",
        "",
        f"seed {s.seed}, {s.rounds} rounds (one epoch each), {cr}, kappa {s.kappa:g}, bonds moving average "
        f"{s.bonds_moving_average:g}; settled: rounds {data['settled_from_round']}-{data['rounds']}",
        "",
        "| validator | behaviour | stake | sample | tasks | alpha | trust (settled) | min trust | "
        "dividend per stake | dividend per stake (settled) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in data["validators"]:
        lines.append(
            f"| {v['name']} | {v['behaviour']} | {v['stake']:g} | {v['sample_size']} | {v['tasks_per_round']} | "
            f"{v['alpha']:g} | {v['trust_settled']:.3f} | {v['trust_min_settled']:.3f} | "
            f"{v['dividend_per_stake']:.3f} | {v['dividend_per_stake_settled']:.3f} |"
        )
    lines += [
        "",
        "| group | behaviour | miners | incentive share | incentive per miner |",
        "|---|---|---:|---:|---:|",
    ]
    for name, g in data["groups"].items():
        lines.append(
            f"| {name} | {g['behaviour']} | {g['count']} | {g['incentive_share']:.4f} | "
            f"{g['incentive_per_miner']:.4f} |"
        )
    return "\n".join(lines) + "\n"
