"""Benchmark: vectorised ``score_round`` against a per-miner, per-task loop of sklearn/scipy.

    .venv/bin/python benchmarks/scoring.py [--miners 256] [--tasks 1000] [--completions 6]
                                           [--loop-tasks 8 | --full-loop] [--repeats 3]

The loop computes, for every answering miner of a task, the metrics of one scoring
iteration with library calls: the leave-one-out consensus of the other miners (numpy per
task), ``cohen_kappa_score(weights="quadratic", labels=...)`` and ``spearmanr`` against it,
``spearmanr`` and ``kendalltau`` against the ground truth and the two normalised
distances. ``score_round`` does that ``iterations`` (2) times plus the task agreement and
the blend, so the ratio understates its advantage. By default the loop runs on
``--loop-tasks`` tasks (all miners) and its time is scaled linearly to the full round: a
per-item loop costs the same per item whatever the count (``--full-loop`` to run it all).
Before timing, the loop's metrics are checked against ``score_round``'s diagnostics
(single iteration, uniform weights) to 1e-9, so both compute the same thing.

Wall-clock times are the best of ``--repeats`` runs; CPU times (``process_time``) are
reported beside them because on a shared machine the wall clock also measures the other
jobs. The last printed line is one JSON object with both times and their ratio.
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts benchmarks/ first on the path, where a sibling module can
# shadow the standard library (benchmarks/platform.py shadows ``platform``); use the
# repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from loguru import logger  # noqa: E402
from scipy.stats import kendalltau, rankdata, spearmanr  # noqa: E402
from sklearn.metrics import cohen_kappa_score  # noqa: E402

from commons.scoring import ScoringParams, score_round  # noqa: E402


def make_round(rng: np.random.Generator, miners: int, tasks: int, completions: int):
    """Honest-ish miners (mean of 3 noisy workers: ties happen), 5% missing answers."""
    true = np.argsort(np.argsort(rng.random((tasks, completions)), axis=1), axis=1) + 1.0
    noise = rng.normal(0.0, rng.uniform(0.2, 2.0, (miners, 1, 1, 1)), (miners, 3, tasks, completions))
    workers = np.argsort(np.argsort(true[None, None] + noise, axis=-1), axis=-1) + 1.0
    subs = workers.mean(axis=1)
    subs[rng.random((miners, tasks)) < 0.05] = np.nan
    return subs, np.full(tasks, completions), true


def loop_metrics(subs: np.ndarray, gt: np.ndarray, task_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The per-(miner, task) metrics with library calls, one pair at a time."""
    miners, _, completions = subs.shape
    out = {k: np.zeros((miners, task_ids.size)) for k in ("kappa", "rho_c", "rho_gt", "tau_gt", "dist")}
    labels = np.arange(2, 2 * completions + 1)  # doubled average ranks: all categories, explicitly
    max_footrule = np.floor(completions**2 / 2)
    pairs = completions * (completions - 1) / 2
    for j, t in enumerate(task_ids):
        answered = np.all(np.isfinite(subs[:, t]), axis=1)
        ranks = np.zeros((miners, completions))
        ranks[answered] = rankdata(subs[answered, t], axis=1)
        total = ranks[answered].sum(axis=0)
        count = answered.sum()
        g = rankdata(gt[t])
        for m in np.flatnonzero(answered):
            r = ranks[m]
            cons = rankdata((total - r) / (count - 1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant inputs: NaN, mapped to 0 below
                out["kappa"][m, j] = cohen_kappa_score(
                    (2 * r).astype(int), (2 * cons).astype(int), weights="quadratic", labels=labels
                )
                out["rho_c"][m, j] = spearmanr(r, cons).statistic
                out["rho_gt"][m, j] = spearmanr(r, g).statistic
                out["tau_gt"][m, j] = kendalltau(r, g).statistic
            sx = np.sign(r[:, None] - r[None, :])
            sg = np.sign(g[:, None] - g[None, :])
            out["dist"][m, j] = (np.abs(r - g).sum() / max_footrule + np.abs(sx - sg).sum() / 4 / pairs) / 2
    return {k: np.nan_to_num(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--completions", type=int, default=6)
    parser.add_argument("--loop-tasks", type=int, default=8)
    parser.add_argument("--full-loop", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logger.remove()

    rng = np.random.default_rng(args.seed)
    subs, n_comp, gt = make_round(rng, args.miners, args.tasks, args.completions)
    loop_tasks = args.tasks if args.full_loop else min(args.loop_tasks, args.tasks)
    task_ids = np.sort(rng.choice(args.tasks, loop_tasks, replace=False))

    # Same metrics? One iteration with uniform weights is exactly what the loop computes.
    check = score_round(subs[:, task_ids], n_comp[task_ids], gt[task_ids], params=ScoringParams(iterations=1))
    ref = loop_metrics(subs, gt, task_ids)
    ours = {
        "kappa": check.kappa,
        "rho_c": check.rho_consensus,
        "rho_gt": check.rho_ground_truth,
        "tau_gt": check.tau_ground_truth,
        "dist": check.distance,
    }
    worst = max(float(np.max(np.abs(ours[k] - ref[k]))) for k in ref)
    print(f"max |score_round - loop| over the metrics: {worst:.2e}")
    if worst > 1e-9:
        raise SystemExit("score_round and the library loop disagree: the benchmark compares different things")

    score_round(subs[:, :10], n_comp[:10], gt[:10])  # warm-up
    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        score_round(subs, n_comp, gt)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
    vec = min(times)
    print(
        f"score_round {args.miners}x{args.tasks}x{args.completions}: wall "
        + ", ".join(f"{t:.3f}s" for t in times)
        + f" (best {vec:.3f}s); cpu "
        + ", ".join(f"{t:.3f}s" for t in cpu_times)
    )

    start, cpu = time.perf_counter(), time.process_time()
    loop_metrics(subs, gt, task_ids)
    loop_measured = time.perf_counter() - start
    loop_cpu = (time.process_time() - cpu) * args.tasks / loop_tasks
    loop = loop_measured * args.tasks / loop_tasks
    print(
        f"library loop: {loop_measured:.2f}s for {loop_tasks} tasks x {args.miners} miners"
        f" -> {loop:.1f}s for {args.tasks} tasks"
    )
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "shape": [args.miners, args.tasks, args.completions],
                "score_round_s": round(vec, 4),
                "score_round_runs_s": [round(t, 4) for t in times],
                "loop_s": round(loop, 2),
                "loop_measured_s": round(loop_measured, 3),
                "loop_tasks_timed": loop_tasks,
                "ratio": round(loop / vec, 1),
                "score_round_cpu_s": round(min(cpu_times), 4),
                "loop_cpu_s": round(loop_cpu, 2),
                "ratio_cpu": round(loop_cpu / min(cpu_times), 1),
                "under_1s": vec < 1.0,
                "load_average_1m": round(load[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
