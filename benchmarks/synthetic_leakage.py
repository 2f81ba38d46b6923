"""Benchmark: can the ground truth be read off a completion's surface without rendering it?

    .venv/bin/python benchmarks/synthetic_leakage.py [--n 500] [--seed S]

Generates ``n`` procedural tasks and, for each surface feature — completion length
(characters over all files), line count, file count, position in the response list, and
completion id (its order when sorted) — computes per task the Spearman correlation
between the feature and the ground-truth rank, then the mean over tasks. A feature that
is constant within a task carries no order, and counts as 0 (how many tasks that happened
to is reported). Target: |mean rho| <= 0.15 for each feature. Also reported: the share of
tasks in which ranking by the feature alone recovers the best completion (chance is
1/completions). The last printed line is one JSON object.
"""

from __future__ import annotations

# ruff: noqa: E402
import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/platform.py would
# shadow the standard library's `platform` module for every import below.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import warnings

import numpy as np
from loguru import logger
from scipy.stats import ConstantInputWarning, spearmanr

from commons.synthetic_api import SyntheticTask
from dojo.synthetic.pipeline import SyntheticPipeline
from dojo.synthetic.procedural import ProceduralBackend

TARGET = 0.15


def features(task: SyntheticTask) -> dict[str, list[float]]:
    cids = [r.cid for r in task.responses]
    order = {cid: n for n, cid in enumerate(sorted(cids))}
    return {
        "length": [float(sum(len(f.content) for f in r.completion.files)) for r in task.responses],
        "line_count": [float(sum(f.content.count("\n") + 1 for f in r.completion.files)) for r in task.responses],
        "file_count": [float(len(r.completion.files)) for r in task.responses],
        "list_position": [float(n) for n in range(len(task.responses))],
        "completion_id": [float(order[cid]) for cid in cids],
    }


def leakage(tasks: list[SyntheticTask]) -> dict[str, dict[str, float]]:
    rhos: dict[str, list[float]] = {}
    constant: dict[str, int] = {}
    best_hits: dict[str, int] = {}
    for task in tasks:
        ranks = [float(task.ground_truth[r.cid]) for r in task.responses]
        for name, values in features(task).items():
            if len(set(values)) == 1:
                rho = 0.0
                constant[name] = constant.get(name, 0) + 1
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConstantInputWarning)
                    rho = float(spearmanr(values, ranks).statistic)
            rhos.setdefault(name, []).append(rho)
            # Would "smallest feature value = best" pick the original? (ties: any of them)
            smallest = min(values)
            candidates = [rank for value, rank in zip(values, ranks, strict=True) if value == smallest]
            best_hits[name] = best_hits.get(name, 0) + (1.0 in candidates and len(candidates) == 1)
    return {
        name: {
            "mean_rho": round(float(np.mean(values)), 4),
            "abs_mean_rho": round(abs(float(np.mean(values))), 4),
            "mean_abs_rho": round(float(np.mean(np.abs(values))), 4),
            "constant_in_tasks": constant.get(name, 0),
            "min_picks_best": round(best_hits[name] / len(tasks), 4),
            "meets_target": abs(float(np.mean(values))) <= TARGET,
        }
        for name, values in rhos.items()
    }


async def generate(n: int, seed: str) -> list[SyntheticTask]:
    pipeline = SyntheticPipeline(ProceduralBackend(), seed=seed)
    try:
        return [await pipeline.generate_task() for _ in range(n)]
    finally:
        await pipeline.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", default="leakage")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    tasks = asyncio.run(generate(args.n, args.seed))
    result = leakage(tasks)
    print(
        json.dumps(
            {
                "benchmark": "synthetic_leakage",
                "tasks": len(tasks),
                "completions_per_task": len(tasks[0].responses),
                "target_abs_rho": TARGET,
                "features": result,
                "meets_target": all(f["meets_target"] for f in result.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
