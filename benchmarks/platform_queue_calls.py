"""The database's CPU for one claim and one submission on PostgreSQL, one call at a time.

    .venv/bin/python benchmarks/platform_queue_calls.py [--calls 4000] [--workers 200] [--warmup 2000]
        [--batch 1] [--postgres postgresql://user@host:port/db]

``benchmarks/platform.py`` measures the whole platform over HTTP, where the server, the
client and the database share the cores and each disturbs the others' figures. This one
calls the queue's two PostgreSQL functions (``dojo_next_task``, ``dojo_submit_result``) as the
platform does, with the same statements and parameters, on one connection, one call after
another, and reads that connection's backend CPU from ``/proc`` around each call: what a
change to the functions, the indexes or the schema costs or saves, with little noise.

Setup as ``benchmarks/platform.py``: a fresh schema, a miner's tasks (``maxResults`` 3) and
``--workers`` workers; each worker holds a task. Then worker after worker submits its
ranking for the task it holds and claims the next. The first ``--warmup`` submissions fill
``assignments`` and ``results``; then the planner's statistics are refreshed (``ANALYZE``)
and a new connection is opened (the functions' plans are kept per connection, and plans made
while ``assignments`` was nearly empty read it whole), and ``--calls`` submissions and claims
are measured.

``--batch N`` puts N submissions, then N claims, in one transaction each instead of one
transaction a call (the platform's way): what grouping calls would save.

The last line printed is one JSON object: CPU of the backend per claim and per submission
(ms), wall time per call as the caller saw it (ms), and the machine's 1-minute load average
before and after (other work shows there).
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
import asyncio
import json
import os
import tempfile
import time
from typing import Any

import psycopg

from benchmarks.platform import CIDS, _analyze, _postgres_base, _prepare, process_cpu
from dojo.platform.services import queue
from dojo.platform.services.pgqueue import PostgresQueue, libpq_conninfo
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.models import Worker
from dojo.platform.storage.rawsql import RawStatement
from template.storage import own_schema

RANKING = [{"type": "ranking", "value": {cid: i + 1 for i, cid in enumerate(CIDS)}}]


def _backend_cpu(pid: int) -> float:
    spent = process_cpu(pid)
    if spent is None:
        raise RuntimeError(f"the database backend {pid} is gone")
    return spent


class _Caller:
    """One connection calling the queue's functions, N calls a transaction."""

    def __init__(self, conninfo: str, batch: int):
        self.conninfo = conninfo
        self.batch = batch
        self.connection: psycopg.AsyncConnection[Any] | None = None
        self.pid = 0

    async def open(self) -> None:
        if self.connection is not None:
            await self.connection.close()
        self.connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=self.batch == 1)
        cursor = await self.connection.execute("SELECT pg_backend_pid()")
        self.pid = (await cursor.fetchall())[0][0]
        await self.end()

    async def rows(self, statement: RawStatement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        assert self.connection is not None
        cursor = await self.connection.execute(statement.pyformat, statement.pg_params(params), prepare=True)
        return await cursor.fetchall()

    async def end(self) -> None:
        if self.batch > 1 and self.connection is not None:
            await self.connection.commit()


async def _run(url: str, tokens: list[str], args: argparse.Namespace) -> dict[str, float]:
    settings = PlatformSettings(database_url=url)
    sessions = PostgresQueue(url, 1)
    workers: list[Worker] = []
    for token in tokens:
        worker = await sessions.lookup_worker(token)
        assert worker is not None
        workers.append(worker)
    await sessions.close()
    needed = queue.known_time_needed(settings) or float(settings.hold_ttl_seconds)
    caller = _Caller(libpq_conninfo(url), args.batch)
    await caller.open()
    held: dict[int, str] = {}
    definitions: dict[str, queue.Definition] = {}

    async def claim(worker: Worker) -> None:
        row = (await caller.rows(queue.PG_NEXT_TASK.raw, queue.next_task_params(settings, worker, needed)))[0]
        held[worker.id] = row[0]
        definitions[row[0]] = queue.Definition(row[6], row[7])

    async def submit(worker: Worker) -> None:
        task_id = held[worker.id]
        params, _ = queue.submit_params(definitions[task_id], worker, task_id, RANKING, None, None)
        outcome = (await caller.rows(queue.PG_SUBMIT_RESULT.raw, params))[0][0]
        if outcome != "stored":
            raise RuntimeError(f"a submission was not stored: {outcome}")

    for worker in workers:
        await claim(worker)
    await caller.end()
    totals = {"claim_cpu": 0.0, "submit_cpu": 0.0, "claim_wall": 0.0, "submit_wall": 0.0}
    done = 0
    measured = False
    while done < args.warmup + args.calls:
        if not measured and done >= args.warmup:
            _analyze(url)
            await caller.open()
            totals = dict.fromkeys(totals, 0.0)
            measured = True
        group = [workers[(done + k) % len(workers)] for k in range(args.batch)]
        for step, call in (("submit", submit), ("claim", claim)):
            cpu, wall = _backend_cpu(caller.pid), time.perf_counter()
            for worker in group:
                await call(worker)
            await caller.end()
            totals[f"{step}_cpu"] += _backend_cpu(caller.pid) - cpu
            totals[f"{step}_wall"] += time.perf_counter() - wall
        done += args.batch
    assert caller.connection is not None
    await caller.connection.close()
    calls = done - args.warmup
    return {
        "claim_backend_cpu_ms": round(totals["claim_cpu"] / calls * 1000, 3),
        "submit_backend_cpu_ms": round(totals["submit_cpu"] / calls * 1000, 3),
        "claim_wall_ms": round(totals["claim_wall"] / calls * 1000, 3),
        "submit_wall_ms": round(totals["submit_wall"] / calls * 1000, 3),
        "calls": calls,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--calls", type=int, default=4000, help="submissions and claims measured (default 4000)"
    )
    parser.add_argument("--workers", type=int, default=200, help="workers, each holding a task (default 200)")
    parser.add_argument(
        "--warmup", type=int, default=2000, help="submissions before measuring (default 2000)"
    )
    parser.add_argument(
        "--batch", type=int, default=1, help="calls a transaction (default 1, as the platform)"
    )
    parser.add_argument(
        "--postgres", default=None, help="server URL (default: 127.0.0.1:5432, database test)"
    )
    args = parser.parse_args()
    base = _postgres_base(args.postgres)
    if base is None:
        print(json.dumps({"skipped": "no PostgreSQL server on 127.0.0.1:5432"}))
        return 0
    with own_schema(base, f"calls_{os.getpid()}") as url:
        load_before = os.getloadavg()[0]
        tasks = (args.warmup + args.calls + 2 * args.workers) // 2 + args.workers
        with tempfile.TemporaryDirectory() as workdir:
            print(f"preparing {tasks} tasks and {args.workers} workers…", flush=True)
            tokens = _prepare(url, Path(workdir) / "chain", tasks, args.workers, 3)
        result: dict[str, Any] = asyncio.run(_run(url, tokens, args))
    result.update(
        workers=args.workers,
        batch=args.batch,
        load_average=[round(load_before, 2), round(os.getloadavg()[0], 2)],
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
