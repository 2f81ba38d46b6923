"""Benchmark: can the ground truth be read off a completion's surface, without understanding it?

    .venv/bin/python benchmarks/synthetic_leakage.py [--n 300] [--kind code,text,dialogue,image] [--seed S]

Generates ``n`` procedural tasks of each kind and runs shallow "bots" on them: each turns a
completion into one number from its surface alone (the prompt at most), never by reading what
it says. Per task, the Spearman correlation between a bot's number and the ground-truth rank;
then the mean over tasks. A bot whose number is constant within a task carries no order and
counts as 0 (how many tasks that happened to is reported). Target: |mean rho| <= 0.15 for each
bot of each kind. Also reported: the share of tasks in which "smallest number = best" picks the
best completion alone (chance is 1/completions).

Bots. Every kind: list position, completion id. Code: length, line count, file count. Text and
dialogue (the ranked text: the response, or the assistant's last turn): length, word count,
overlap with the prompt's words (distinct prompt words the response uses), overlap with the
prompt's numbers, words not in the prompt, centrality (mean Jaccard similarity of its words to
the other responses'), readability (Flesch reading ease). Images: file size, pixel entropy,
share of the picture that is not background, distinct colours, colour-histogram centrality
(mean L1 distance of its colour histogram to the others'), colour-histogram distance to the
mean histogram of the task. The last printed line is one JSON object.
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
import re
import warnings
from collections.abc import Callable

import numpy as np
from loguru import logger
from scipy.stats import ConstantInputWarning, spearmanr

from commons.media import decode
from commons.protocol import CodeContent, ImageContent
from commons.synthetic_api import SyntheticTask
from dojo.synthetic.kinds import response_text
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.procedural import ProceduralBackend

TARGET = 0.15
KINDS = ("code", "text", "dialogue", "image")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d[\d,.:%°$]*")
_NUMBER = re.compile(r"\d[\d,.:]*")


def _common(task: SyntheticTask) -> dict[str, list[float]]:
    cids = [r.cid for r in task.responses]
    order = {cid: n for n, cid in enumerate(sorted(cids))}
    return {
        "list_position": [float(n) for n in range(len(cids))],
        "completion_id": [float(order[cid]) for cid in cids],
    }


def code_bots(task: SyntheticTask) -> dict[str, list[float]]:
    files = [r.completion.sent() for r in task.responses]
    assert all(isinstance(f, CodeContent) for f in files)
    return {
        "length": [float(sum(len(f.content) for f in c.files)) for c in files],  # type: ignore[union-attr]
        "line_count": [float(sum(f.content.count("\n") + 1 for f in c.files)) for c in files],  # type: ignore[union-attr]
        "file_count": [float(len(c.files)) for c in files],  # type: ignore[union-attr]
    }


def _syllables(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    return max(1, len(groups) - (word.lower().endswith("e") and len(groups) > 1))


def flesch(text: str) -> float:
    words = re.findall(r"[A-Za-z]+", text)
    sentences = max(1, len(re.findall(r"[.!?]+", text)))
    if not words:
        return 0.0
    return 206.835 - 1.015 * len(words) / sentences - 84.6 * sum(_syllables(w) for w in words) / len(words)


def text_bots(task: SyntheticTask) -> dict[str, list[float]]:
    texts = [response_text(r.completion.sent()) for r in task.responses]
    prompt_words = {w.lower() for w in _WORD.findall(task.prompt)}
    prompt_numbers = set(_NUMBER.findall(task.prompt))
    sets = [{w.lower() for w in _WORD.findall(t)} for t in texts]

    def jaccard(a: set[str], b: set[str]) -> float:
        return len(a & b) / max(1, len(a | b))

    return {
        "length": [float(len(t)) for t in texts],
        "word_count": [float(len(_WORD.findall(t))) for t in texts],
        "prompt_word_overlap": [float(len(s & prompt_words)) for s in sets],
        "prompt_number_overlap": [float(len(set(_NUMBER.findall(t)) & prompt_numbers)) for t in texts],
        "words_not_in_prompt": [float(len(s - prompt_words)) for s in sets],
        "centrality": [
            float(np.mean([jaccard(s, o) for j, o in enumerate(sets) if j != i])) for i, s in enumerate(sets)
        ],
        "readability": [flesch(t) for t in texts],
    }


def image_bots(task: SyntheticTask) -> dict[str, list[float]]:
    contents = [r.completion.sent() for r in task.responses]
    assert all(isinstance(c, ImageContent) for c in contents)
    pixels = []
    for c in contents:
        _, image = decode(c.image_bytes())  # type: ignore[union-attr]
        pixels.append(np.asarray(image.convert("RGB").resize((128, 128)), dtype=np.int16))
    histograms = []
    for p in pixels:
        bins = (p // 32).reshape(-1, 3)
        h = np.bincount(bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2], minlength=512).astype(float)
        histograms.append(h / h.sum())
    mean = np.mean(histograms, axis=0)

    def entropy(p: np.ndarray) -> float:
        grey = (p.mean(axis=2)).astype(int).ravel()
        h = np.bincount(grey, minlength=256) / grey.size
        h = h[h > 0]
        return float(-(h * np.log2(h)).sum())

    def foreground(p: np.ndarray) -> float:
        flat = p.reshape(-1, 3)
        values, counts = np.unique(flat // 16, axis=0, return_counts=True)
        background = values[np.argmax(counts)]
        return float(np.mean(np.any(flat // 16 != background, axis=1)))

    return {
        "file_size": [float(c.byte_size) for c in contents],  # type: ignore[union-attr]
        "pixel_entropy": [entropy(p) for p in pixels],
        "foreground_share": [foreground(p) for p in pixels],
        "distinct_colours": [float(np.count_nonzero(h > 0.001)) for h in histograms],
        "histogram_centrality": [
            float(np.mean([np.abs(h - o).sum() for j, o in enumerate(histograms) if j != i]))
            for i, h in enumerate(histograms)
        ],
        "histogram_distance_to_mean": [float(np.abs(h - mean).sum()) for h in histograms],
    }


BOTS: dict[str, Callable[[SyntheticTask], dict[str, list[float]]]] = {
    "code": code_bots,
    "text": text_bots,
    "dialogue": text_bots,
    "image": image_bots,
}


def leakage(tasks: list[SyntheticTask], kind: str) -> dict[str, dict[str, float]]:
    rhos: dict[str, list[float]] = {}
    constant: dict[str, int] = {}
    best_hits: dict[str, int] = {}
    for task in tasks:
        ranks = [float(task.ground_truth[r.cid]) for r in task.responses]
        for name, values in {**_common(task), **BOTS[kind](task)}.items():
            if len(set(values)) == 1:
                rho = 0.0
                constant[name] = constant.get(name, 0) + 1
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConstantInputWarning)
                    rho = float(spearmanr(values, ranks).statistic)
            rhos.setdefault(name, []).append(rho)
            # Would "smallest value = best" pick the best completion? (ties: not alone)
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


async def generate(n: int, kind: str, seed: str) -> list[SyntheticTask]:
    pipeline = SyntheticPipeline(ProceduralBackend(), seed=f"{seed}:{kind}", options=PipelineOptions())
    try:
        return [await pipeline.generate_task(kind) for _ in range(n)]
    finally:
        await pipeline.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="tasks of each kind")
    parser.add_argument("--kind", default=",".join(KINDS), help="kinds to measure, comma-separated")
    parser.add_argument("--seed", default="leakage")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    kinds = [k for k in args.kind.split(",") if k]
    results = {}
    for kind in kinds:
        tasks = asyncio.run(generate(args.n, kind, args.seed))
        bots = leakage(tasks, kind)
        worst = max(bots.items(), key=lambda kv: kv[1]["abs_mean_rho"])
        print(
            f"{kind:9s} {len(tasks)} tasks; worst bot {worst[0]} |rho| {worst[1]['abs_mean_rho']:.3f}",
            flush=True,
        )
        results[kind] = {
            "tasks": len(tasks),
            "completions_per_task": len(tasks[0].responses),
            "bots": bots,
            "meets_target": all(b["meets_target"] for b in bots.values()),
        }
    print(
        json.dumps(
            {
                "benchmark": "synthetic_leakage",
                "target_abs_rho": TARGET,
                "kinds": results,
                "meets_target": all(r["meets_target"] for r in results.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
