"""Benchmark the organic API: tasks submitted by many concurrent callers to a running validator.

    .venv/bin/python benchmarks/organic.py [--tasks 10000] [--clients 50] [--warmup 200] [--synthetic-api]

A local network (a local chain, two miners and a validator with ``--organic.enabled``, its
loops running: heartbeats, task rounds, collection, scoring, weights) is started as
processes; ``--clients`` callers, each with its own API key (made before the validator
starts), share ``--tasks`` submissions of a small text task (three completions, a callback
URL) and send them as fast as they are answered, each over one keep-alive connection
(aiohttp, in this process: on 2 cores its CPU is taken from the validator's). The first
``--warmup`` submissions are not timed. With ``--synthetic-api`` the validator takes its
synthetic tasks from the synthetic API run as its own process (the production setup), not
from the in-process generator.

Every 202 is a task on the validator's disk: afterwards the database must hold exactly the
tasks accepted. The last line printed is one JSON object: accepted tasks per second, p50 and
p99 latency (ms), errors (anything but 202, and transport errors), tasks stored, the
validator's CPU per task (ms; what the machine's load does not change), its share of a core
over the run and over 5 s without callers before it (its own loops), its resident memory when the API first answered, at the end and at its peak (MB),
and the machine's 1-minute load average before and after. Targets on 2 cores: >= 500 tasks/s, p99 < 100 ms, 0 errors, RSS
< 300 MB.
"""

# ruff: noqa: E402 - the sys.path fix below must precede every other import
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py shadows the standard library's platform, which aiohttp imports: take
# this folder out of sys.path before importing anything else.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time

import aiohttp

from dojo.localnet.net import LocalNet
from dojo.validator.organic.store import OrganicStore
from dojo.validator.store import TaskStore
from template.clock import utcnow


def _body(i: int) -> bytes:
    return json.dumps(
        {
            "prompt": f"Which reply answers question {i} best?",
            "completions": [
                {"id": f"r{k}", "model": "m", "content": {"kind": "text", "text": f"reply {k} to {i}"}}
                for k in range(3)
            ],
            "callback_url": "http://127.0.0.1:9/hook",
            "external_id": f"bench-{i}",
        }
    ).encode()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (it shows what a request costs whatever the load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def _run(url: str, keys: list[str], tasks: int, warmup: int) -> dict[str, object]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(tasks):
        queue.put_nowait(i)
    bodies = {i: _body(i) for i in range(tasks)}
    latencies: list[float] = []
    errors: list[str] = []
    done = 0
    started_at: float | None = None

    async def client(key: str) -> None:
        nonlocal done, started_at
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(url, connector=connector) as session:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sent = time.perf_counter()
                try:
                    async with session.post("/v1/tasks", data=bodies[i], headers=headers) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - sent
                done += 1
                if done == warmup:
                    started_at = time.perf_counter()
                if status != 202:
                    errors.append(f"HTTP {status}")
                elif done > warmup:
                    latencies.append(took)

    await asyncio.gather(*(client(k) for k in keys))
    ended = time.perf_counter()
    latencies.sort()
    timed = len(latencies)
    return {
        "accepted_per_s": round(timed / (ended - (started_at or ended)), 1) if timed else 0.0,
        "p50_ms": round(1000 * latencies[timed // 2], 2) if timed else None,
        "p99_ms": round(1000 * latencies[min(timed - 1, int(timed * 0.99))], 2) if timed else None,
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--synthetic-api", action="store_true", help="synthetic tasks from the synthetic API")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dojo-bench-organic-") as tmp:
        net = LocalNet(
            Path(tmp),
            miners=2,
            organic=True,
            organic_caller=False,
            task_interval=10.0,
            task_deadline=30.0,
            scoring_interval=2.0,
            heartbeat_interval=1.0,
            synthetic=args.synthetic_api,
        )
        net.prepare()
        store = TaskStore(net.validator_db)
        organic = OrganicStore(store.engine)
        keys = [
            organic.create_key(f"bench-{i}", 1_000_000, 1_000_000, utcnow()).api_key
            for i in range(args.clients)
        ]
        store.close()
        try:
            net.start(roles=("synthetic", "miner") if args.synthetic_api else ("miner",))
            net.wait_for_axons()
            net.start_process(net.validator)
            from dojo.localnet.net import NeuronProcess

            net.wait_for_health(
                NeuronProcess(
                    "organic API",
                    "validator",
                    -1,
                    net.organic_api_port,
                    net.validator.log_path,
                    net.validator.process,
                ),
                timeout=120,
            )
            rss_start, _ = _rss_mb(net.validator.process.pid)
            # What the validator's own loops cost with no caller: subtracted from nothing, shown beside.
            idle_before = _cpu_seconds(net.validator.process.pid)
            time.sleep(5.0)
            idle_share = (_cpu_seconds(net.validator.process.pid) - idle_before) / 5.0
            load_before = os.getloadavg()[0]
            cpu_before, wall_before = _cpu_seconds(net.validator.process.pid), time.perf_counter()
            result = asyncio.run(_run(net.organic_url, keys, args.tasks, args.warmup))
            cpu = _cpu_seconds(net.validator.process.pid) - cpu_before
            wall = time.perf_counter() - wall_before
            load_after = os.getloadavg()[0]
            rss, peak = _rss_mb(net.validator.process.pid)
            alive = net.validator.alive
        finally:
            net.stop()
        db = sqlite3.connect(net.validator_db)
        stored = db.execute("SELECT count(*) FROM organic_tasks").fetchone()[0]
        db.close()
    summary = {
        "tasks": args.tasks,
        "clients": args.clients,
        "synthetic_api": args.synthetic_api,
        **result,
        "stored": stored,
        "validator_cpu_ms_per_task": round(1000 * cpu / args.tasks, 3),
        "validator_cpu_share": round(cpu / wall, 2),
        "validator_idle_cpu_share": round(idle_share, 2),
        "validator_rss_start_mb": round(rss_start, 1),
        "validator_rss_mb": round(rss, 1),
        "validator_peak_rss_mb": round(peak, 1),
        "validator_alive": alive,
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
    }
    print(json.dumps(summary))
    return 0 if not result["errors"] and stored == args.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
