"""What one ``POST /v1/tasks`` costs the validator in CPU, and where it goes.

    .venv/bin/python benchmarks/organic_cpu.py [--requests 5000] [--clients 50] [--rounds 3]
        [--tree OTHER_CHECKOUT] [--profile OUT_PREFIX]

The organic API alone (``OrganicService`` on a real SQLite validator database, as the validator
serves it: its own thread and loop, the group commit on a thread of its own) runs in a child
process; ``--clients`` callers, each with its own API key and keep-alive connection, send
``--requests`` small text tasks (those of ``benchmarks/organic.py``) from this process. The
figure is the server process's CPU (user + system, from ``/proc``) per 1 000 accepted requests:
unlike latency, it hardly moves with what else the machine runs.

``--tree`` serves the API from another checkout too (``PYTHONPATH``), alternating the two
``--rounds`` times, so an old/new pair is measured in the same run. ``--profile PREFIX`` adds a
round of this checkout, in no figure, that writes cProfile data (CPU time, ``time.thread_time``:
a wait for the GIL or the disk counts nowhere) of the API's thread (``PREFIX.api.prof``) and
of the group commit's thread (``PREFIX.commit.prof``); read them with ``pstats``. The last
line printed is one JSON object.
"""

# ruff: noqa: E402 - the sys.path fix below must precede every other import
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py shadows the standard library's platform, which aiohttp imports.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time

from benchmarks.organic import _body, _cpu_seconds
from dojo.localnet.net import free_port

# The server: run as `python -c SERVER tmp port profile_prefix` with the tree under test first
# on sys.path. It prints its API keys as one JSON line, then serves until stdin closes.
SERVER = r"""
import cProfile, json, sys, time
from pathlib import Path
from template.clock import utcnow
from dojo.localnet.net import free_port
from dojo.validator.organic.service import OrganicService
from dojo.validator.organic.store import OrganicStore
from dojo.validator.store import TaskStore
from dojo.validator.config import ValidatorConfig
from template.config import resolve

tmp, port, clients, prefix = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
flags = {
    "--netuid": "1",
    "--neuron.data_dir": str(tmp),
    "--neuron.task_deadline": "600",
    "--organic.enabled": "true",
    "--organic.port": port,
    "--organic.allow_private_callbacks": "true",
    "--axon.port": str(free_port()),
}
config = resolve(ValidatorConfig, [x for kv in flags.items() for x in kv], environ={}, env_file=None)
store = TaskStore(tmp / "validator.sqlite")
organic = OrganicStore(store.engine)
keys = [organic.create_key(f"bench-{i}", 10**6, 10**6, utcnow()).api_key for i in range(clients)]
profiles = {}
if prefix:
    run, accept = OrganicService._run, OrganicStore.accept

    def profiled_run(self):
        profiles["api"] = profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            run(self)
        finally:
            profile.disable()

    def profiled_accept(self, batch):
        profile = profiles.setdefault("commit", cProfile.Profile(time.thread_time))
        profile.enable()
        try:
            return accept(self, batch)
        finally:
            profile.disable()

    OrganicService._run, OrganicStore.accept = profiled_run, profiled_accept
service = OrganicService(config, store.engine, validator_hotkey="5" + "C" * 47, subnet_size=lambda: 16)
service.start()
print(json.dumps(keys), flush=True)
sys.stdin.read()
service.stop()
for name, profile in profiles.items():
    profile.dump_stats(f"{prefix}.{name}.prof")
store.close()
"""


async def _send(url: str, keys: list[str], requests: int) -> int:
    import aiohttp

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    accepted = 0

    async def client(key: str) -> None:
        nonlocal accepted
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1)) as session:
            while not queue.empty():
                i = queue.get_nowait()
                async with session.post("/v1/tasks", data=_body(i), headers=headers) as response:
                    await response.read()
                    accepted += response.status == 202

    await asyncio.gather(*(client(k) for k in keys))
    return accepted


def _round(tree: Path, requests: int, clients: int, prefix: str) -> dict[str, float]:
    """One server from ``tree``: warm-up, then ``requests`` timed requests; its CPU per 1000."""
    with tempfile.TemporaryDirectory(prefix="dojo-bench-organic-cpu-") as tmp:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(tree), "LOGURU_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, tmp, str(port), str(clients), prefix],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdin is not None
            keys = json.loads(server.stdout.readline())
            url = f"http://127.0.0.1:{port}"
            asyncio.run(_send(url, keys, min(500, requests)))  # warm-up: imports, caches, pages
            cpu, wall = _cpu_seconds(server.pid), time.perf_counter()
            accepted = asyncio.run(_send(url, keys, requests))
            cpu, wall = _cpu_seconds(server.pid) - cpu, time.perf_counter() - wall
            server.stdin.close()
            server.wait(120)
        finally:
            if server.poll() is None:
                server.kill()
    if accepted != requests:
        raise SystemExit(f"only {accepted} of {requests} requests were accepted")
    return {"cpu_s_per_1000": 1000 * cpu / requests, "tasks_per_s": requests / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, help="another checkout to measure in turn with this one")
    parser.add_argument(
        "--profile", default="", help="write cProfile data to PREFIX.api.prof and .commit.prof"
    )
    args = parser.parse_args()
    trees = {"this": ROOT, **({"other": args.tree.resolve()} if args.tree else {})}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            result = _round(tree, args.requests, args.clients, "")
            runs[name].append(result)
            print(name, json.dumps({k: round(v, 3) for k, v in result.items()}), file=sys.stderr)
    if args.profile:  # a round of its own: the profiler's overhead is in no figure
        _round(ROOT, args.requests, args.clients, args.profile)
    summary = {
        name: {
            "cpu_s_per_1000_median": round(statistics.median(r["cpu_s_per_1000"] for r in rs), 3),
            "cpu_s_per_1000": [round(r["cpu_s_per_1000"], 3) for r in rs],
            "tasks_per_s": [round(r["tasks_per_s"], 1) for r in rs],
        }
        for name, rs in runs.items()
    }
    print(json.dumps({"requests": args.requests, "clients": args.clients, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
