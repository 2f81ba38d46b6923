"""``dojo export`` of a validator database of 100 000 scored tasks: wall time and peak RSS.

    .venv/bin/python benchmarks/export.py [--tasks 100000] [--completions 4] [--completion-kb 2]
                                          [--miners 32] [--per-task 3] [--workers 3]
                                          [--formats parquet,jsonl] [--workdir DIR] [--keep]

1. **Fill** (untimed, in a child process): a validator database made by ``TaskStore`` (so at
   the head revision) is filled by bulk inserts with ``--tasks`` scored tasks, as months of
   a validator's work leave them: each task one of 256 real procedural tasks (prompt,
   ``--completions`` completions with their original and obfuscated files, from the synthetic
   pipeline, each completion cut to about ``--completion-kb`` KB) with its numbers drawn anew
   (a digit permutation per task), sent to ``--per-task`` of ``--miners``
   miners, each answering with ``--workers`` workers' noisy rankings of the ground truth
   (each miner its own noise), every assignment's completions as the miner saw them, and
   the task scores, task agreement and consensus trust that the validator's own scoring
   (``score_inputs``, rounds of 1 000 tasks) gives those answers.
2. **Export** (timed), once per format: ``dojo export --db DB --out DIR --format F --json`` in a child process of its own, whose wall time and peak RSS (``ru_maxrss`` from
   ``wait4``: that process alone) are reported. The database was just written, so it is in
   the page cache, as a validator's live database is. Each export's files are checked: as
   many task rows as tasks, as many preference pairs as the untied ordered pairs of every
   task whose agreement reaches the default ``--min-agreement`` (computed here from the
   answers the fill wrote).

Target on 2 cores: each export < 60 s and < 500 MB peak RSS. Figures are printed, then as the
last line one JSON object (``seconds`` and ``peak_rss_mb``: the worst of the formats;
``targets_met``). Exit code 0 when the run completed, whether or not the targets are met.
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts benchmarks/ first on the path, where benchmarks/platform.py
# shadows the standard library's ``platform``; use the repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.validator_round import in_child_process, noisy_ranking  # noqa: E402

TARGETS = {"seconds": 60.0, "peak_rss_mb": 500.0}
ROUND_TASKS = 1000


# --- the fill (in a child process) -------------------------------------------------------------


def _when(value: datetime) -> str:
    """A timestamp as SQLAlchemy stores ``UTCDateTime`` in SQLite: naive UTC, microseconds."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _trim(files: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The files cut, in proportion, to about ``size`` characters in all."""
    total = sum(len(f["content"]) for f in files) or 1
    return [{**f, "content": f["content"][: max(1, len(f["content"]) * size // total)]} for f in files]


def _pool(count: int, completions: int, size: int, seed: int) -> list[dict[str, Any]]:
    """``count`` real synthetic tasks (prompt; per completion original and obfuscated files)."""
    from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
    from dojo.synthetic.procedural import ProceduralBackend

    async def make() -> list[Any]:
        pipeline = SyntheticPipeline(
            ProceduralBackend(), seed=seed, options=PipelineOptions(n_completions=completions)
        )
        try:
            return [await pipeline.generate_task() for _ in range(count)]
        finally:
            await pipeline.aclose()

    pool = []
    for task in asyncio.run(make()):
        pool.append(
            {
                "prompt": task.prompt,
                "completions": [
                    {
                        "model": r.model,
                        "sent": json.dumps(
                            {
                                "kind": "code",
                                "files": _trim([f.model_dump() for f in r.completion.files], size),
                            }
                        ),
                        "original": json.dumps(
                            {
                                "kind": "code",
                                "files": _trim(
                                    [f.model_dump() for f in (r.completion.original or r.completion.files)],
                                    size,
                                ),
                            }
                        ),
                        "truth": task.ground_truth[r.cid],
                    }
                    for r in task.responses
                ],
            }
        )
    return pool


def fill(
    db_path: str,
    tasks: int,
    completions: int,
    size: int,
    n_miners: int,
    per_task: int,
    n_workers: int,
    seed: int,
) -> dict[str, Any]:
    """Write ``tasks`` scored tasks by bulk inserts; returns what was written and the pairs expected."""
    from loguru import logger

    logger.remove()
    from dojo.export import DEFAULT_MIN_AGREEMENT, consensus_batch, preference_pairs
    from dojo.export._records import MinerAnswer
    from dojo.validator.rounds import score_inputs
    from dojo.validator.store import AcceptedResult, RoundAssignment, RoundInputs, RoundTask, TaskStore
    from template.clock import utcnow

    started = time.perf_counter()
    TaskStore(db_path).close()  # the schema, at the head revision
    rng = random.Random(seed)
    pool = _pool(256, completions, size, seed)
    miners = [(uid, f"5Bench{uid:03d}" + "x" * 40) for uid in range(1, n_miners + 1)]
    noise = {uid: rng.choice((0.3, 0.6, 1.0, 1.5, 3.0)) for uid, _ in miners}
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous=OFF")
    start = utcnow() - timedelta(days=120)
    expected_pairs = 0
    content_bytes = 0
    next_assignment = 1
    for round_id, first in enumerate(range(0, tasks, ROUND_TASKS), start=1):
        last = min(tasks, first + ROUND_TASKS)
        rows: dict[str, list[tuple[Any, ...]]] = {
            k: [] for k in ("tasks", "tc", "assign", "ac", "results", "scores")
        }
        round_tasks, round_assignments, planned = [], [], []
        for k in range(first, last):
            source = pool[k % len(pool)]
            task_id = f"{k:08d}" + os.urandom(12).hex()
            created = start + timedelta(seconds=100 * k)
            cids = [os.urandom(16).hex() for _ in range(completions)]
            truth = [c["truth"] for c in source["completions"]]
            planned.append((task_id, created, source, cids, truth))
            round_tasks.append(RoundTask(task_id, cids, list(truth), [{"type": "ranking"}]))
            for uid, hotkey in sorted(rng.sample(miners, per_task)):
                results = [
                    AcceptedResult(
                        f"w{uid}-{w}",
                        "ranking",
                        dict(zip(cids, noisy_ranking(truth, noise[uid], rng), strict=True)),
                        created,
                    )
                    for w in range(rng.randint(1, n_workers))
                ]
                round_assignments.append(RoundAssignment(next_assignment, task_id, hotkey, uid, results))
                next_assignment += 1
        scores = score_inputs(RoundInputs(round_id, round_tasks, round_assignments))
        by_assignment = {s.assignment_id: s for s in scores.task_scores}
        scored_at = start + timedelta(seconds=100 * last + 3600 * 5)
        db.execute(
            "INSERT INTO rounds (round_id, created_at, status, scored_at, n_tasks, n_miners, "
            "mean_task_agreement) VALUES (?, ?, 'scored', ?, ?, ?, ?)",
            (round_id, _when(scored_at), _when(scored_at), last - first, len(miners), None),
        )
        for task_id, created, source, cids, _ in planned:
            kappa, trust = scores.task_agreement[task_id]
            rows["tasks"].append(
                (
                    task_id,
                    _when(created),
                    "code_generation",
                    source["prompt"],
                    '[{"type": "ranking"}]',
                    _when(created + timedelta(hours=4)),
                    "scored",
                    "benchmark",
                    round_id,
                    kappa,
                    trust,
                )
            )
            # Each task's numbers (sizes, colours, speeds) drawn anew, the same in both forms, so
            # that no two tasks' files are the same text.
            digits = list("0123456789")
            rng.shuffle(digits)
            table = str.maketrans("0123456789", "".join(digits))
            for position, (cid, c) in enumerate(zip(cids, source["completions"], strict=True)):
                original = c["original"].translate(table)
                rows["tc"].append(
                    (task_id, cid, position, c["model"], c["sent"].translate(table), c["truth"], original)
                )
                content_bytes += len(original)
        answers_by_task: dict[str, list[MinerAnswer]] = {}
        cids_of = {p[0]: p[3] for p in planned}
        for a in round_assignments:
            s = by_assignment[a.assignment_id]
            rows["assign"].append(
                (
                    a.assignment_id,
                    a.task_id,
                    a.miner_hotkey,
                    a.miner_uid,
                    os.urandom(16).hex(),
                    "accepted",
                    None,
                    200,
                    os.urandom(16).hex(),
                    None,
                    "collected",
                    None,
                    1,
                    None,
                    None,
                    s.score,
                    None,
                )
            )
            order = cids_of[a.task_id][:]
            rng.shuffle(order)
            rows["ac"] += [(a.assignment_id, p, os.urandom(8).hex(), cid) for p, cid in enumerate(order)]
            rows["results"] += [
                (a.assignment_id, r.worker_id, "ranking", json.dumps(r.values), _when(r.submitted_at))
                for r in a.results
            ]
            rows["scores"].append(
                (
                    round_id,
                    a.task_id,
                    a.miner_hotkey,
                    a.miner_uid,
                    s.answered,
                    s.score,
                    s.agreement,
                    s.kappa,
                    s.rho_consensus,
                    s.rho_ground_truth,
                    s.distance,
                    json.dumps(s.answer),
                    s.n_workers,
                )
            )
            if s.answered and s.answer:
                answers_by_task.setdefault(a.task_id, []).append(
                    MinerAnswer(a.miner_hotkey, s.answer, s.n_workers, 0.0, s.score)
                )
        # The pairs the export must write, from the reliabilities this round gives each miner.
        q: dict[str, list[float]] = {}
        for s in scores.task_scores:
            if s.answered:
                q.setdefault(s.miner_hotkey, []).append(max(0.0, s.agreement))
        passing = [p[0] for p in planned if scores.task_agreement[p[0]][0] >= DEFAULT_MIN_AGREEMENT]
        batch = [answers_by_task.get(t, []) for t in passing]
        for answers in batch:
            for a in answers:
                a.reliability = sum(q[a.hotkey]) / len(q[a.hotkey])
        for cons in consensus_batch(batch, [completions] * len(batch), [False] * len(batch)):
            if cons.mean_ranks is not None:
                expected_pairs += len(preference_pairs(cons.mean_ranks))
        db.executemany(
            "INSERT INTO tasks (task_id, created_at, task_type, prompt, criteria, expire_at, status, source,"
            " round_id, task_agreement, consensus_trust) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows["tasks"],
        )
        db.executemany(
            "INSERT INTO task_completions (task_id, completion_id, position, model, content,"
            " ground_truth_rank, original_content) VALUES (?,?,?,?,?,?,?)",
            rows["tc"],
        )
        db.executemany(
            "INSERT INTO assignments (assignment_id, task_id, miner_hotkey, miner_uid, request_id,"
            " send_status, send_detail, http_status, dojo_task_id, sent_at, collect_status, collect_detail,"
            " collect_attempts, next_collect_at, collected_at, score, score_sent_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows["assign"],
        )
        db.executemany(
            "INSERT INTO assignment_completions (assignment_id, position, miner_completion_id,"
            " completion_id) VALUES (?,?,?,?)",
            rows["ac"],
        )
        db.executemany(
            'INSERT INTO miner_results (assignment_id, worker_id, criteria_type, "values", submitted_at)'
            " VALUES (?,?,?,?,?)",
            rows["results"],
        )
        db.executemany(
            "INSERT INTO task_scores (round_id, task_id, miner_hotkey, miner_uid, answered, score,"
            " agreement, kappa, rho_consensus, rho_ground_truth, distance, answer, n_workers)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows["scores"],
        )
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {
        t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("tasks", "task_completions", "assignments", "miner_results", "task_scores")
    }
    db.close()
    os.sync()  # the fill's writes are not flushed during a timed export
    return {
        "seconds": time.perf_counter() - started,
        "expected_pairs": expected_pairs,
        "counts": counts,
        "original_mb": content_bytes / 2**20,
    }


# --- the timed export ------------------------------------------------------------------------


def timed_export(db: Path, out: Path, fmt: str) -> dict[str, Any]:
    """``dojo export`` in a process of its own: its wall time, peak RSS and summary."""
    # What the `dojo` console script runs.
    command = [
        sys.executable,
        "-c",
        "import sys; from dojo.cli import main; sys.exit(main())",
        "export",
        "--db",
        str(db),
        "--out",
        str(out),
        "--format",
        fmt,
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": os.path.dirname(_HERE)}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=os.path.dirname(_HERE)
    )
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in the fill's).
    out_bytes = process.stdout.read() if process.stdout else b""
    err_bytes = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(
            f"dojo export --format {fmt} exited {process.returncode}: {err_bytes.decode()[-2000:]}"
        )
    summary = json.loads(out_bytes.decode().strip().splitlines()[-1])
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "summary": summary,
    }


def check(out: Path, fmt: str, tasks: int, expected_pairs: int) -> dict[str, Any]:
    """Rows in the written files, and their sizes."""
    files = {name: out / f"{name}.{fmt}" for name in ("tasks", "preferences")}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows = {name: pq.ParquetFile(path).metadata.num_rows for name, path in files.items()}
        row_groups = {name: pq.ParquetFile(path).metadata.num_row_groups for name, path in files.items()}
    else:
        rows = {}
        for name, path in files.items():
            with open(path, "rb") as f:
                rows[name] = sum(1 for _ in f)
        row_groups = {}
    return {
        "rows": rows,
        "row_groups": row_groups,
        "mb": {name: round(path.stat().st_size / 2**20, 1) for name, path in files.items()},
        "tasks_ok": rows["tasks"] == tasks,
        "pairs_ok": rows["preferences"] == expected_pairs,
        "card": (out / "README.md").is_file(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--completions", type=int, default=4)
    parser.add_argument(
        "--completion-kb", type=float, default=2.0, help="size of each completion's code, in KB"
    )
    parser.add_argument("--miners", type=int, default=32, help="miners on the subnet")
    parser.add_argument("--per-task", type=int, default=3, help="miners each task went to")
    parser.add_argument("--workers", type=int, default=3, help="most workers per miner and task (1 to this)")
    parser.add_argument("--formats", default="parquet,jsonl")
    parser.add_argument("--workdir", default=None, help="parent directory of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the database and the exports")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    root = Path(tempfile.mkdtemp(prefix="dojo-export-bench-", dir=args.workdir))
    db = root / "validator.sqlite"
    try:
        print(f"filling {db} with {args.tasks} scored tasks (untimed)", flush=True)
        filled = asyncio.run(
            in_child_process(
                fill,
                str(db),
                args.tasks,
                args.completions,
                int(args.completion_kb * 1000),
                args.miners,
                args.per_task,
                args.workers,
                args.seed,
            )
        )
        db_mb = sum(p.stat().st_size for p in root.glob("validator.sqlite*")) / 2**20
        print(
            f"fill: {filled['seconds']:.1f} s, database {db_mb:.0f} MB, {filled['counts']}, "
            f"{filled['original_mb']:.0f} MB of original content; {filled['expected_pairs']} pairs expected",
            flush=True,
        )
        runs: dict[str, Any] = {}
        for fmt in formats:
            out = root / f"export-{fmt}"
            run = timed_export(db, out, fmt)
            run["check"] = check(out, fmt, args.tasks, filled["expected_pairs"])
            runs[fmt] = run
            c = run["check"]
            print(
                f"{fmt}: {run['seconds']:.1f} s wall, {run['cpu_s']:.1f} s CPU, peak RSS {run['peak_rss_mb']:.0f} MB; "
                f"rows {c['rows']} (tasks ok {c['tasks_ok']}, pairs ok {c['pairs_ok']}), "
                f"MB {c['mb']}, row groups {c['row_groups']}",
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        worst_s = max(r["seconds"] for r in runs.values())
        worst_mb = max(r["peak_rss_mb"] for r in runs.values())
        checks = all(
            r["check"]["tasks_ok"] and r["check"]["pairs_ok"] and r["check"]["card"] for r in runs.values()
        )
        result = {
            "tasks": args.tasks,
            "completions": args.completions,
            "completion_kb": args.completion_kb,
            "db_mb": round(db_mb, 1),
            "fill_s": round(filled["seconds"], 1),
            "preference_pairs": filled["expected_pairs"],
            "cores": os.cpu_count(),
            **{
                fmt: {
                    "seconds": r["seconds"],
                    "peak_rss_mb": r["peak_rss_mb"],
                    "cpu_s": r["cpu_s"],
                    "mb": r["check"]["mb"],
                }
                for fmt, r in runs.items()
            },
            "seconds": worst_s,
            "peak_rss_mb": worst_mb,
            "checks_passed": checks,
            "targets": TARGETS,
            "targets_met": checks and worst_s < TARGETS["seconds"] and worst_mb < TARGETS["peak_rss_mb"],
        }
        print(json.dumps(result))
        return 0
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
