"""What the reads behind a worker's own pages cost as its answers pile up.

    .venv/bin/python benchmarks/worker_pages.py [--db sqlite|postgres|both] [--answers 1000,20000]
        [--repeat 15] [--postgres postgresql://user@host:port/db]

A worker ranking all day opens a task page per task (with its progress: done today and in
all, the typical time per task), its history (*Your work*, 50 answers a page) and its summary
(agreement and scores over its latest answers). For each count in ``--answers``: a fresh
database with one worker that has given that many answers (and a second worker as many, so
that the worker's answers are half of the table), then each page's read timed ``--repeat``
times (the median, in ms): ``progress`` (:func:`dojo.platform.services.queue.worker_progress`),
``summary`` (:func:`dojo.platform.services.team.worker_summary`) and ``history``
(:func:`dojo.platform.services.subscriptions.history`, the first page). On PostgreSQL the
statistics are refreshed first (``ANALYZE``), as autovacuum does on a running platform.

The last line printed is one JSON object: per database and count the three figures, and per
database how much each page's read grew from the first count to the last (``growth``).
Revision 0011 made these reads walk an index of the worker's latest answers instead of
sorting all of them (figures before and after in its docstring).
"""

# ruff: noqa: E402 - the sys.path fix below must precede every other import
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, text

from benchmarks.platform import _postgres_base
from dojo.platform.services import queue, subscriptions, team
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import Miner, Result, Task, Worker
from template.clock import utcnow
from template.storage import own_schema

PAGES: dict[str, Callable[[Any, Worker], object]] = {
    "progress": queue.worker_progress,
    "summary": team.worker_summary,
    "history": subscriptions.history,
}


def _fill(database: Database, answers: int) -> None:
    """One miner's ``answers`` tasks, each answered by workers 1 and 2, a second apart."""
    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(answers)]
    with database.session() as db:
        db.execute(insert(Miner), [{"id": 1, "hotkey": "5Miner"}])
        db.execute(
            insert(Worker),
            [{"id": w, "public_id": f"w{w}", "address": "0x" + str(w) * 40} for w in (1, 2)],
        )
        db.execute(
            insert(Task),
            [
                {
                    "id": task_id,
                    "miner_id": 1,
                    "title": "task",
                    "body": "",
                    "prompt": "prompt",
                    "task_type": "code",
                    "criteria": [],
                    "completions": [],
                    "max_results": 2,
                    "num_results": 2,
                    "expire_at": now + timedelta(hours=1),
                }
                for task_id in ids
            ],
        )
        for worker_id in (1, 2):
            db.execute(
                insert(Result),
                [
                    {
                        "task_id": task_id,
                        "worker_id": worker_id,
                        "result_data": [],
                        "lead_time": float(10 + k % 97),
                        "created_at": now - timedelta(seconds=answers - k),
                        "updated_at": now - timedelta(seconds=answers - k),
                    }
                    for k, task_id in enumerate(ids)
                ],
            )
        if not database.is_sqlite:
            db.execute(text("ANALYZE"))


def _measure(url: str, answers: int, repeat: int) -> dict[str, float]:
    database = Database(url, pool_size=1)
    try:
        database.migrate()
        _fill(database, answers)
        figures = {}
        with database.read_session() as db:
            worker = db.get(Worker, 1)
            assert worker is not None
            for name, read in PAGES.items():
                spent = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    read(db, worker)
                    spent.append(time.perf_counter() - start)
                figures[name] = round(statistics.median(spent) * 1000, 2)
        return figures
    finally:
        database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--answers", default="1000,20000", help="the worker's answers, a list (default 1000,20000)"
    )
    parser.add_argument("--repeat", type=int, default=15, help="reads of each page (default 15)")
    parser.add_argument(
        "--postgres", default=None, help="server URL (default: 127.0.0.1:5432, database test)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.answers.split(",")]
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    result: dict[str, Any] = {"repeat": args.repeat}
    for kind in kinds:
        by_count: dict[str, Any] = {}
        for answers in counts:
            with ExitStack() as stack:
                if kind == "sqlite":
                    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                    url = f"sqlite:///{workdir / 'platform.sqlite'}"
                else:
                    base = _postgres_base(args.postgres)
                    if base is None:
                        by_count = {"skipped": "no PostgreSQL server on 127.0.0.1:5432"}
                        break
                    url = stack.enter_context(own_schema(base, f"pages_{os.getpid()}"))
                by_count[str(answers)] = _measure(url, answers, args.repeat)
            print(f"[{kind}] {answers} answers: {json.dumps(by_count[str(answers)])}", flush=True)
        if len(counts) > 1 and "skipped" not in by_count:
            first, last = by_count[str(counts[0])], by_count[str(counts[-1])]
            by_count["growth"] = {name: round(last[name] / first[name], 2) for name in PAGES}
        result[kind] = by_count
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
