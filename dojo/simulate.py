"""The incentive simulator: how the scoring treats honest and dishonest miners.

A scenario (JSON, see ``scenarios/``) describes rounds of synthetic tasks and groups of
simulated miners, each with a behaviour. Every round the simulator draws the tasks, the
true order of their completions and the ground truth the validator holds, lets every
miner answer, and then runs exactly what the validator runs: :func:`commons.scoring.score_round`,
:meth:`RoundResult.miner_scores`, :class:`commons.scoring.MovingScores` and its u16
chain weights. Nothing of the scoring is re-implemented here.

Scenario keys (defaults in brackets)::

    seed [0], rounds [20], tasks_per_round [50], completions [[4, 6]] (inclusive range,
    or one int), gt_known_fraction [1.0], gt_error_rate [0.0], criteria ["ranking"] or
    "score", alpha [0.1] (moving average), max_weight_limit [1.0], organic_share [0.0],
    groups (required)

- ``gt_known_fraction``: the chance that each completion's true rank is known to the
  validator (partial ground truth); 0 gives rounds without ground truth.
- ``gt_error_rate``: the share of tasks whose ground truth is wrong: a random ranking of
  its completions, the true order reversed if the draw happens to be the true order.
  Workers still see the true order.
- ``criteria: "score"`` makes miners send scores (higher = better) instead of ranks.
- ``organic_share``: the share of each round's tasks that are organic: the validator holds
  no ground truth for them, so they are scored by consensus weighted by the reliability
  carried from round to round (:func:`commons.scoring.score_mixed_round`, as the validator
  scores them). Miners cannot tell them apart, so every behaviour answers them as it answers
  the others. ``results.json`` then also gives ``organic_spearman``: the mean Spearman's rho
  between the caller's consensus ranking and the true order.

Group behaviours and their parameters:

- ``honest`` (``noise`` [0.3], ``workers`` [3]): each worker ranks the completions by
  true rank + N(0, noise²); the miner submits the mean of its workers' ranks. ``noise``
  may be ``[lo, hi]``: spread evenly over the group's miners.
- ``random``: a uniformly random ranking each task.
- ``constant``: ranking 1, 2, … in presentation order, whatever the task.
- ``reverse``: the true order reversed.
- ``colluding``: the whole group submits one shared random ranking per task.
- ``heuristic`` (``rho`` [0.5]): ranks by a feature ``rho·z + sqrt(1 - rho²)·ε``, ``z``
  the standardised true ranks, so its correlation with the true order is about ``rho``.
- ``lazy`` (``participation`` [0.5], ``noise``, ``workers``): honest on a random share
  ``participation`` of its tasks, silent on the rest.
- ``oracle``: submits the ground truth exactly as the validator holds it (a leak): wrong
  where it is wrong; completions with unknown truth tied in the middle.

Any group may also have ``from_round`` [0] and ``until_round`` [none] (rounds from 0): its
miners answer nothing outside ``[from_round, until_round)``, as miners that join late or
go offline.

Several validators (``validators``, a list; :mod:`dojo.simulate_network` runs them): each
round every validator sends its own tasks to its own random sample of the miners, scores
them with the same scoring, sets weights, and the chain's Yuma epoch
(:func:`template.chain.yuma.yuma_epoch`) turns all the weights into consensus, incentive,
validator trust and dividends. Scenario keys for them: ``commit_reveal_period`` [0]
(rounds before set weights become visible), ``kappa`` [0.5], ``bonds_moving_average``
[0.9]. Each entry of ``validators``: ``name``, ``behaviour``, ``count`` [1], ``stake``
[1.0], ``sample_size`` [8] (miners per task), ``tasks_per_round`` and ``alpha`` (the
scenario's by default; tasks per round = per epoch), ``scoring_rounds`` [1] (the epoch's
tasks are scored, and folded into the moving scores, in that many rounds), ``target`` (a
group name, for ``colluder``). Validator behaviours:

- ``honest``: scores its sample and sets the weights of its moving scores.
- ``copier``: does no work; sets the stake-weighted mean of the other validators' weights
  as it can read them on the chain (after this round's weights under commit-reveal off,
  the revealed ones, ``commit_reveal_period`` rounds old, under commit-reveal on).
- ``colluder``: puts all its weight on the first miner of group ``target``.
- ``lazy``: scores nothing and weights every miner equally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from commons.scoring import (
    MovingScores,
    ScoringParams,
    average_ranks,
    score_mixed_round,
    spearman_rho,
    weighted_consensus,
)
from template.chain.weights import WeightRules

BEHAVIOURS: dict[str, dict[str, Any]] = {
    "honest": {"noise": 0.3, "workers": 3},
    "random": {},
    "constant": {},
    "reverse": {},
    "colluding": {},
    "heuristic": {"rho": 0.5},
    "lazy": {"participation": 0.5, "noise": 0.3, "workers": 3},
    "oracle": {},
}


VALIDATOR_BEHAVIOURS = ("honest", "copier", "colluder", "lazy")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says which key and why."""


@dataclass(frozen=True)
class ValidatorSpec:
    """One simulated validator (``count`` copies of an entry of ``validators`` are expanded)."""

    name: str
    behaviour: str
    stake: float = 1.0
    sample_size: int = 8
    tasks_per_round: int = 50
    alpha: float = 0.1
    scoring_rounds: int = 1
    target: str | None = None


@dataclass(frozen=True)
class GroupSpec:
    name: str
    count: int
    behaviour: str
    params: Mapping[str, Any]
    from_round: int = 0
    until_round: int | None = None

    def active(self, rnd: int) -> bool:
        """Whether the group's miners answer in round ``rnd`` (0-based)."""
        return self.from_round <= rnd and (self.until_round is None or rnd < self.until_round)


@dataclass(frozen=True)
class Scenario:
    groups: tuple[GroupSpec, ...]
    seed: int = 0
    rounds: int = 20
    tasks_per_round: int = 50
    completions: tuple[int, int] = (4, 6)
    gt_known_fraction: float = 1.0
    gt_error_rate: float = 0.0
    criteria: str = "ranking"
    alpha: float = 0.1
    max_weight_limit: float = 1.0
    organic_share: float = 0.0
    validators: tuple[ValidatorSpec, ...] = ()
    commit_reveal_period: int = 0
    kappa: float = 0.5
    bonds_moving_average: float = 0.9

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        known = {f for f in cls.__dataclass_fields__} | {"description"}
        unknown = set(data) - known
        if unknown:
            raise ScenarioError(f"unknown scenario keys {sorted(unknown)}; allowed: {sorted(known)}")
        comp = data.get("completions", [4, 6])
        comp = (comp, comp) if isinstance(comp, int) else tuple(comp)
        if len(comp) != 2 or not all(isinstance(c, int) for c in comp) or not 2 <= comp[0] <= comp[1] <= 60:
            raise ScenarioError("completions must be an int or [lo, hi] with 2 <= lo <= hi <= 60")
        raw_groups = data.get("groups")
        if not raw_groups:
            raise ScenarioError("a scenario needs a non-empty 'groups' list")
        groups = []
        names: set[str] = set()
        for i, g in enumerate(raw_groups):
            behaviour = g.get("behaviour")
            if behaviour not in BEHAVIOURS:
                raise ScenarioError(f"group {i}: behaviour {behaviour!r} is not one of {sorted(BEHAVIOURS)}")
            name = str(g.get("name", behaviour))
            if name in names:
                raise ScenarioError(f"group name {name!r} appears twice")
            names.add(name)
            count = g.get("count")
            if not isinstance(count, int) or count < 1:
                raise ScenarioError(f"group {name!r}: count must be a positive integer")
            extra = (
                set(g)
                - {"name", "count", "behaviour", "from_round", "until_round"}
                - set(BEHAVIOURS[behaviour])
            )
            if extra:
                raise ScenarioError(f"group {name!r}: {sorted(extra)} are not parameters of {behaviour!r}")
            params = {**BEHAVIOURS[behaviour], **{k: g[k] for k in BEHAVIOURS[behaviour] if k in g}}
            from_round = g.get("from_round", 0)
            until_round = g.get("until_round")
            if (
                not isinstance(from_round, int)
                or from_round < 0
                or not (until_round is None or (isinstance(until_round, int) and until_round > from_round))
            ):
                raise ScenarioError(
                    f"group {name!r}: from_round >= 0 and until_round > from_round (rounds, from 0)"
                )
            groups.append(GroupSpec(name, count, behaviour, params, from_round, until_round))
        out = cls(
            groups=tuple(groups),
            seed=int(data.get("seed", 0)),
            rounds=int(data.get("rounds", 20)),
            tasks_per_round=int(data.get("tasks_per_round", 50)),
            completions=(int(comp[0]), int(comp[1])),
            gt_known_fraction=float(data.get("gt_known_fraction", 1.0)),
            gt_error_rate=float(data.get("gt_error_rate", 0.0)),
            criteria=str(data.get("criteria", "ranking")),
            alpha=float(data.get("alpha", 0.1)),
            max_weight_limit=float(data.get("max_weight_limit", 1.0)),
            organic_share=float(data.get("organic_share", 0.0)),
            commit_reveal_period=int(data.get("commit_reveal_period", 0)),
            kappa=float(data.get("kappa", 0.5)),
            bonds_moving_average=float(data.get("bonds_moving_average", 0.9)),
        )
        out = replace(out, validators=_validator_specs(data.get("validators", []), out, names))
        if out.commit_reveal_period < 0 or not 0 < out.kappa <= 1 or not 0 <= out.bonds_moving_average < 1:
            raise ScenarioError(
                "commit_reveal_period >= 0, kappa in (0, 1] and bonds_moving_average in [0, 1)"
            )
        if out.rounds < 1 or out.tasks_per_round < 1:
            raise ScenarioError("rounds and tasks_per_round must be >= 1")
        if not (
            0 <= out.gt_known_fraction <= 1 and 0 <= out.gt_error_rate <= 1 and 0 <= out.organic_share <= 1
        ):
            raise ScenarioError("gt_known_fraction, gt_error_rate and organic_share must be within [0, 1]")
        if out.criteria not in ("ranking", "score"):
            raise ScenarioError("criteria must be 'ranking' or 'score'")
        return out

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ScenarioError(f"scenario {path} must hold a JSON object")
        return cls.from_dict(data)


def _validator_specs(raw: Any, scenario: Scenario, groups: set[str]) -> tuple[ValidatorSpec, ...]:
    if not isinstance(raw, list):
        raise ScenarioError("'validators' must be a list")
    allowed = {
        "name",
        "behaviour",
        "count",
        "stake",
        "sample_size",
        "tasks_per_round",
        "alpha",
        "scoring_rounds",
        "target",
    }
    specs: list[ValidatorSpec] = []
    for i, v in enumerate(raw):
        if not isinstance(v, dict):
            raise ScenarioError(f"validator {i} must be an object")
        extra = set(v) - allowed
        if extra:
            raise ScenarioError(f"validator {i}: unknown keys {sorted(extra)}; allowed: {sorted(allowed)}")
        behaviour = v.get("behaviour")
        if behaviour not in VALIDATOR_BEHAVIOURS:
            raise ScenarioError(
                f"validator {i}: behaviour {behaviour!r} is not one of {list(VALIDATOR_BEHAVIOURS)}"
            )
        count = v.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ScenarioError(f"validator {i}: count must be a positive integer")
        name = str(v.get("name", behaviour))
        target = v.get("target")
        if behaviour == "colluder" and target not in groups:
            raise ScenarioError(
                f"validator {name!r}: a colluder needs 'target', one of the groups {sorted(groups)}"
            )
        try:
            base = ValidatorSpec(
                name=name,
                behaviour=behaviour,
                stake=float(v.get("stake", 1.0)),
                sample_size=int(v.get("sample_size", 8)),
                tasks_per_round=int(v.get("tasks_per_round", scenario.tasks_per_round)),
                alpha=float(v.get("alpha", scenario.alpha)),
                scoring_rounds=int(v.get("scoring_rounds", 1)),
                target=None if target is None else str(target),
            )
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"validator {name!r}: {exc}") from exc
        if not (
            base.stake > 0 and base.sample_size >= 1 and base.tasks_per_round >= 1 and 0 < base.alpha <= 1
        ):
            raise ScenarioError(
                f"validator {name!r}: stake > 0, sample_size >= 1, tasks_per_round >= 1, alpha in (0, 1]"
            )
        for k in range(count):
            specs.append(replace(base, name=name if count == 1 else f"{name}-{k + 1}"))
    if len({s.name for s in specs}) != len(specs):
        raise ScenarioError("validator names must be distinct")
    return tuple(specs)


@dataclass(frozen=True)
class SimMiner:
    uid: int
    hotkey: str
    group: str
    behaviour: str
    params: Mapping[str, Any]


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate`; ``to_dict`` is ``results.json``."""

    scenario: Scenario
    miners: list[SimMiner]
    mean_score: np.ndarray  # (M,) mean of round scores
    weights: np.ndarray  # (M,) final chain weights, normalised to sum 1
    share_history: np.ndarray  # (rounds, groups) weight share of each group after each round
    wrong_gt_score: np.ndarray  # (M,) mean score on tasks with wrong ground truth (NaN if none)
    # Mean Spearman's rho of the caller's consensus ranking with the true order (NaN: no organic tasks).
    organic_spearman: float = float("nan")

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.scenario.groups]

    def group_mask(self, name: str) -> np.ndarray:
        return np.array([m.group == name for m in self.miners])

    def to_dict(self) -> dict[str, Any]:
        miners = [
            {
                "uid": m.uid,
                "group": m.group,
                "behaviour": m.behaviour,
                "params": dict(m.params),
                "mean_score": float(self.mean_score[i]),
                "weight": float(self.weights[i]),
            }
            for i, m in enumerate(self.miners)
        ]
        groups: dict[str, Any] = {}
        for g in self.scenario.groups:
            mask = self.group_mask(g.name)
            entry: dict[str, Any] = {
                "weight_share": float(self.weights[mask].sum()),
                "mean_score": float(self.mean_score[mask].mean()),
                "count": int(mask.sum()),
                "behaviour": g.behaviour,
            }
            wrong = self.wrong_gt_score[mask]
            if np.isfinite(wrong).any():
                entry["mean_score_wrong_gt"] = float(np.nanmean(wrong))
            groups[g.name] = entry
        out: dict[str, Any] = {"miners": miners, "groups": groups}
        if np.isfinite(self.organic_spearman):
            out["organic_spearman"] = float(self.organic_spearman)
        return out


def _miners(scenario: Scenario) -> list[SimMiner]:
    miners: list[SimMiner] = []
    for g in scenario.groups:
        noise = g.params.get("noise")
        spread = np.linspace(noise[0], noise[1], g.count) if isinstance(noise, (list, tuple)) else None
        for i in range(g.count):
            params = dict(g.params)
            if spread is not None:
                params["noise"] = float(spread[i])
            uid = len(miners)
            miners.append(SimMiner(uid, f"sim-hotkey-{uid}", g.name, g.behaviour, params))
    return miners


def _random_ranks(rng: np.random.Generator, shape: tuple[int, ...], items: np.ndarray) -> np.ndarray:
    return average_ranks(rng.random(shape), mask=np.broadcast_to(items, shape))


def _tiled(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` repeated to ``shape`` (numpy broadcasting), as an array of its own."""
    out: np.ndarray = np.broadcast_to(a, shape).copy()
    return out


def _answers(
    rng: np.random.Generator,
    miner_ids: list[int],
    miners: list[SimMiner],
    true: np.ndarray,
    held_gt: np.ndarray,
    items: np.ndarray,
    n_comp: np.ndarray,
) -> np.ndarray:
    """Submissions ``(len(miner_ids), T, C)`` of one group (ranks, 1 = best, NaN padding)."""
    g = len(miner_ids)
    n_tasks, width = true.shape
    behaviour = miners[miner_ids[0]].behaviour
    params = [miners[i].params for i in miner_ids]
    if behaviour in ("honest", "lazy"):
        workers = int(params[0]["workers"])  # a group parameter; noise may vary per miner
        noise = np.array([float(p["noise"]) for p in params])[:, None, None, None]
        noisy = true[None, None] + noise * rng.normal(size=(g, workers, n_tasks, width))
        out: np.ndarray = np.mean(average_ranks(noisy, mask=np.broadcast_to(items, noisy.shape)), axis=1)
        if behaviour == "lazy":
            participation = np.array([float(p["participation"]) for p in params])[:, None]
            out[rng.random((g, n_tasks)) >= participation] = np.nan
        return out
    if behaviour == "random":
        return _random_ranks(rng, (g, n_tasks, width), items)
    if behaviour == "constant":
        ranks = np.where(items, np.arange(1.0, width + 1.0)[None, :], np.nan)
        return _tiled(ranks, (g, n_tasks, width))
    if behaviour == "reverse":
        return _tiled(n_comp[:, None] + 1.0 - true, (g, n_tasks, width))
    if behaviour == "colluding":
        shared = _random_ranks(rng, (n_tasks, width), items)
        return _tiled(shared, (g, n_tasks, width))
    if behaviour == "heuristic":
        z = true - (n_comp[:, None] + 1.0) / 2.0
        z = z / np.sqrt(np.nanmean(z * z, axis=-1, keepdims=True))
        rho = np.array([float(p["rho"]) for p in params])[:, None, None]
        feature = rho * z[None] + np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0)) * rng.normal(
            size=(g, n_tasks, width)
        )
        return average_ranks(feature, mask=np.broadcast_to(items, feature.shape))
    if behaviour == "oracle":
        known = np.isfinite(held_gt)
        leak = np.where(known, held_gt, (n_comp[:, None] + 1.0) / 2.0)
        return _tiled(np.where(items, leak, np.nan), (g, n_tasks, width))
    raise ScenarioError(f"unknown behaviour {behaviour!r}")


def simulate(scenario: Scenario, params: ScoringParams | None = None) -> SimulationResult:
    """Run a scenario through the validator's scoring, aggregation and weights."""
    rng = np.random.default_rng(scenario.seed)
    miners = _miners(scenario)
    n = len(miners)
    hotkeys = [m.hotkey for m in miners]
    uids = [m.uid for m in miners]
    groups = [g.name for g in scenario.groups]
    members = {name: [m.uid for m in miners if m.group == name] for name in groups}
    spec_of = {g.name: g for g in scenario.groups}
    rules = WeightRules(max_weight_limit=scenario.max_weight_limit)
    moving = MovingScores(alpha=scenario.alpha)
    hi = scenario.completions[1]
    n_tasks = scenario.tasks_per_round

    score_sum = np.zeros(n)
    wrong_sum = np.zeros(n)
    wrong_count = 0
    reliability = np.full(n, np.nan)  # carried from round to round, as the validator keeps it
    organic_rho: list[float] = []
    history = np.zeros((scenario.rounds, len(groups)))
    weights = np.zeros(n)
    for rnd in range(scenario.rounds):
        n_comp, items, true, held_gt, wrong = _draw_tasks(rng, scenario, n_tasks)

        subs = np.full((n, n_tasks, hi), np.nan)
        for name in groups:
            ids = members[name]
            subs[ids] = _answers(rng, ids, miners, true, held_gt, items, n_comp)
            if not spec_of[name].active(rnd):
                subs[ids] = np.nan
        higher = scenario.criteria == "score"
        if higher:
            subs = hi + 1.0 - subs  # scores: higher is better
        organic = rng.random(n_tasks) < scenario.organic_share
        held_gt[organic] = np.nan  # the validator knows nothing of an organic task's order
        mixed = score_mixed_round(
            subs,
            n_comp,
            None if scenario.gt_known_fraction == 0 else held_gt,
            organic,
            reliability=reliability,
            higher_is_better=higher,
            params=params,
        )
        result, reliability = mixed.result, mixed.carried
        for t in np.flatnonzero(organic):
            answered = result.answered[:, t]
            if answered.any():
                k = int(n_comp[t])
                _, ranks = weighted_consensus(
                    subs[answered, t, :k], np.nan_to_num(reliability[answered]), higher_is_better=higher
                )
                organic_rho.append(float(spearman_rho(ranks, true[t, :k])))
        round_scores = result.miner_scores()
        moving.update(hotkeys, uids, round_scores)
        score_sum += round_scores
        wrong_tasks = wrong & result.has_ground_truth
        if wrong_tasks.any():
            wrong_sum += result.scores[:, wrong_tasks].sum(axis=1)
            wrong_count += int(wrong_tasks.sum())
        weights = _normalised_weights(moving, n, rules)
        history[rnd] = [weights[members[name]].sum() for name in groups]
        logger.debug(
            "simulate round {}: shares {}", rnd, dict(zip(groups, history[rnd].round(3), strict=True))
        )

    return SimulationResult(
        scenario=scenario,
        miners=miners,
        mean_score=score_sum / scenario.rounds,
        weights=weights,
        share_history=history,
        wrong_gt_score=wrong_sum / wrong_count if wrong_count else np.full(n, np.nan),
        organic_spearman=float(np.mean(organic_rho)) if organic_rho else float("nan"),
    )


def _draw_tasks(
    rng: np.random.Generator, scenario: Scenario, n_tasks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One round's tasks: completions per task, item mask, true ranks, held ground truth, wrong-truth mask."""
    lo, hi = scenario.completions
    n_comp = rng.integers(lo, hi + 1, size=n_tasks)
    items = np.arange(hi)[None, :] < n_comp[:, None]
    true = _random_ranks(rng, (n_tasks, hi), items)
    gt_full = true.copy()
    wrong = rng.random(n_tasks) < scenario.gt_error_rate
    if wrong.any():
        fake = _random_ranks(rng, (n_tasks, hi), items)
        same = np.all((fake == true) | ~items, axis=-1)
        fake[same] = (n_comp[:, None] + 1.0 - true)[same]
        gt_full[wrong] = fake[wrong]
    known = items & (rng.random((n_tasks, hi)) < scenario.gt_known_fraction)
    held_gt = np.where(known, gt_full, np.nan)
    return n_comp, items, true, held_gt, wrong


def _normalised_weights(moving: MovingScores, n: int, rules: WeightRules) -> np.ndarray:
    """The u16 weights the validator would set, as shares summing to 1."""
    uids, u16 = moving.weights(n, rules)
    out = np.zeros(n)
    if u16:
        out[np.asarray(uids)] = np.asarray(u16, dtype=np.float64)
        out /= out.sum()
    return out


def summary_markdown(result: SimulationResult) -> str:
    s = result.scenario
    lines = [
        "# Simulation summary",
        "",
        f"seed {s.seed}, {s.rounds} rounds x {s.tasks_per_round} tasks, completions {s.completions[0]}-"
        f"{s.completions[1]}, ground truth known {s.gt_known_fraction:.0%}, wrong {s.gt_error_rate:.0%}, "
        f"criteria {s.criteria}, organic {s.organic_share:.0%}",
        "",
        "| group | behaviour | miners | weight share | weight per miner | mean score |",
        "|---|---|---:|---:|---:|---:|",
    ]
    data = result.to_dict()["groups"]
    for name, g in data.items():
        per = g["weight_share"] / g["count"]
        lines.append(
            f"| {name} | {g['behaviour']} | {g['count']} | {g['weight_share']:.4f} | {per:.4f} | {g['mean_score']:.4f} |"
        )
    wrong = {k: v["mean_score_wrong_gt"] for k, v in data.items() if "mean_score_wrong_gt" in v}
    if wrong:
        lines += ["", "Mean task score on tasks whose ground truth was wrong:", ""]
        lines += [f"- {k}: {v:.4f}" for k, v in wrong.items()]
    return "\n".join(lines) + "\n"


def plot_shares(result: Any, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    rounds = np.arange(1, result.share_history.shape[0] + 1)
    ax.stackplot(rounds, result.share_history.T, labels=result.group_names)
    ax.set_xlabel("round")
    ax.set_ylabel(title.split(" by ")[0].lower())
    ax.set_ylim(0, 1)
    ax.set_xlim(1, max(int(rounds[-1]), 2))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(
    result: Any,
    summary: str,
    out_dir: str | Path,
    plot: str = "weights.png",
    title: str = "Weight share by group",
) -> dict[str, Path]:
    """Write ``results.json`` (``result.to_dict()``), ``summary.md`` (``summary``) and the
    :func:`plot_shares` of ``result`` (``plot``, titled ``title``) into ``out_dir``; ``result``
    is a :class:`SimulationResult` or a :class:`~dojo.simulate_network.NetworkResult`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "summary": out / "summary.md", "plot": out / plot}
    paths["results"].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    paths["summary"].write_text(summary)
    plot_shares(result, paths["plot"], title=title)
    return paths
