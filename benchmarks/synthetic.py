"""Benchmark: synthetic tasks per second from the procedural backend, on one core.

    .venv/bin/python benchmarks/synthetic.py [--n 200] [--completions 4] [--cpu 0] [--seed S]

Runs the whole pipeline (instructor, similarity filter over a growing in-memory task
database, augmenter, output generator, checks with node, obfuscator, shuffle) with the
process pinned to one CPU; the node syntax checker it starts inherits the pin, so its work
counts against the same core. Reports wall-clock tasks per second, and tasks per second
of CPU time (this process plus node), which is less sensitive to other load on the
machine. The target is 50 tasks per second. The last printed line is one JSON object.
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

TARGET = 50.0


async def run(n: int, completions: int, seed: str) -> dict:
    pipeline = SyntheticPipeline(ProceduralBackend(), seed=seed, options=PipelineOptions(n_completions=completions))
    await pipeline.generate_task()  # start node and warm caches outside the timing
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = time.process_time()
    started = time.perf_counter()
    for _ in range(n):
        await pipeline.generate_task()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    await pipeline.aclose()  # node exits here; its CPU time then shows in RUSAGE_CHILDREN
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    node_cpu = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    per_cpu = n / (cpu + node_cpu)
    return {
        "benchmark": "synthetic_throughput",
        "backend": "procedural",
        "tasks": n,
        "completions_per_task": completions,
        "wall_seconds": round(wall, 3),
        "tasks_per_second": round(n / wall, 2),
        "cpu_seconds": round(cpu, 3),
        "node_cpu_seconds": round(node_cpu, 3),
        "tasks_per_cpu_second": round(per_cpu, 2),
        "target_tasks_per_second": TARGET,
        "meets_target": n / wall >= TARGET,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus_on_machine": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--completions", type=int, default=4)
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to pin to")
    parser.add_argument("--seed", default="bench")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(run(args.n, args.completions, args.seed))
    result["pinned_cpu"] = args.cpu
    print(json.dumps(result))


if __name__ == "__main__":
    main()
