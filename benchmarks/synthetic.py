"""Benchmark: synthetic tasks per second from the procedural backends, per content kind.

    .venv/bin/python benchmarks/synthetic.py [--n 200] [--kind code,text,dialogue,image] [--completions 4]
                                             [--cpus 0,1] [--seed S]

Runs the whole pipeline for each kind (instructor, similarity filter over a growing in-memory
task database, augmenter, output generator, checks, obfuscator, shuffle; for text and dialogue
the checker that reads each response's defects back, for images the drawing, the obfuscating
re-encode and the checker that reads the scene back from the pixels of both files) with the
process pinned to ``--cpus`` (default: the first two). Code's node syntax checker inherits the
pin, so its work counts against the same cores. Reports wall-clock tasks per second, and tasks
per second of CPU time (this process plus node), which is less sensitive to other load on the
machine. Targets on 2 cores: 50 tasks per second for code, text and dialogue, 10 for images
(``--n`` is divided by 5 for images). The last printed line is one JSON object.
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
import os
import resource
import time

from loguru import logger

from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.procedural import ProceduralBackend

TARGETS = {"code": 50.0, "text": 50.0, "dialogue": 50.0, "image": 10.0}


async def run(kind: str, n: int, completions: int, seed: str) -> dict:
    pipeline = SyntheticPipeline(
        ProceduralBackend(), seed=f"{seed}:{kind}", options=PipelineOptions(n_completions=completions)
    )
    await pipeline.generate_task(kind)  # start node, warm caches outside the timing
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = time.process_time()
    started = time.perf_counter()
    for _ in range(n):
        await pipeline.generate_task(kind)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    stats = pipeline.stats[kind]
    await pipeline.aclose()  # node exits here; its CPU time then shows in RUSAGE_CHILDREN
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    node_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    target = TARGETS[kind]
    return {
        "kind": kind,
        "tasks": n,
        "wall_seconds": round(wall, 3),
        "tasks_per_second": round(n / wall, 2),
        "cpu_seconds": round(cpu, 3),
        "node_cpu_seconds": round(node_cpu, 3),
        "tasks_per_cpu_second": round(n / (cpu + node_cpu), 2),
        "discarded": stats.discarded,
        "target_tasks_per_second": target,
        "meets_target": n / wall >= target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="tasks of each kind (a fifth of it for images)")
    parser.add_argument("--kind", default="code,text,dialogue,image", help="kinds, comma-separated")
    parser.add_argument("--completions", type=int, default=4)
    parser.add_argument("--cpus", default="0,1", help="the CPUs to pin to, comma-separated")
    parser.add_argument("--seed", default="bench")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    cpus = {int(c) for c in args.cpus.split(",") if c}
    os.sched_setaffinity(0, cpus)
    results = {}
    for kind in [k for k in args.kind.split(",") if k]:
        n = max(1, args.n // 5) if kind == "image" else args.n
        result = asyncio.run(run(kind, n, args.completions, args.seed))
        print(
            f"{kind:9s} {result['tasks_per_second']:8.1f} tasks/s (target {result['target_tasks_per_second']:g})",
            flush=True,
        )
        results[kind] = result
    print(
        json.dumps(
            {
                "benchmark": "synthetic_throughput",
                "backend": "procedural",
                "completions_per_task": args.completions,
                "pinned_cpus": sorted(cpus),
                "kinds": results,
                "meets_target": all(r["meets_target"] for r in results.values()),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "cpus_on_machine": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
