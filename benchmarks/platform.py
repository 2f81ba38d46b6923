"""Benchmark the worker platform: simulated workers loop next-task and submit.

    .venv/bin/python benchmarks/platform.py [--duration 30] [--workers 200] [--db sqlite|postgres|both]
        [--client raw|aiohttp] [--client-processes 2] [--server-processes 1|1,2] [--warmup 3]
        [--postgres postgresql://user@host:port/db]

For each database the script creates a local chain, a miner with an API key, enough tasks
(``maxResults`` 3) and ``--workers`` workers subscribed to the miner (through the
platform's own service functions, so setup does not count), starts ``dojo platform serve``
in its own process, and runs the workers, split over ``--client-processes`` processes with
one event loop each. Each worker keeps one connection and loops: ``POST
/api/v1/worker/tasks/next``, then ``POST …/result`` with a ranking. The first ``--warmup``
seconds (connections opening, caches filling) are not counted; then ``--duration`` seconds
are. Afterwards the database is checked for tasks holding more results than ``maxResults``.

The client must not be the bottleneck, and on 2 cores whatever CPU it spends the server
lacks. ``raw`` (the default) writes HTTP/1.1 requests itself and parses the answers with
httptools, about 0.06 ms of CPU a request; ``aiohttp`` costs about 0.25 ms (one shared
``httpx.AsyncClient`` would cost far more).

``--server-processes 1,2`` runs each database once per process count, one after the other in
the same run (the results are then keyed ``postgres_1p``, ``postgres_2p``, …), so the gain
from a second process is measured under the same conditions. On PostgreSQL the planner's
statistics are refreshed (``ANALYZE``) once the tasks are made and again near the end of the
warm-up, as autovacuum keeps them for a platform that has been running.

The last line printed is one JSON object: per database, submissions per second, p50 and
p99 latency of the submissions and of all requests (ms), errors (non-2xx other than
"no task", and transport errors) and over-filled tasks; also the CPU one request cost the
server and the client (ms) in the measured window, and on a PostgreSQL server on this
machine the CPU of the server's database connections (their backend processes), and the
machine's 1-minute load average before and after (other work on the machine shows there),
and the share of the machine's CPU that was busy in the measured window with what it comes
to a submission (everything the machine ran, the kernel's work included).

With N closed-loop workers the mean latency is N / (requests per second): p99 < 100 ms
with 200 workers needs some 3000 requests/s. Targets on 2 cores with the database server on
the same machine: ≥ 2 000 submissions/s on SQLite; ≥ 1 000 on PostgreSQL, p99 < 250 ms, more
with two server processes than with one; no errors, no over-filled task.
"""

# ruff: noqa: E402 - the sys.path fix below must precede every other import
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's ``platform``, which aiohttp imports; run as
# a script its directory leads sys.path, so take it out before importing anything else.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httptools
import numpy as np
import uvloop

from benchmarks._platform_server import prepare_platform, serve_platform, worker_token
from dojo.localnet.net import free_port

PG_URL = "postgresql+psycopg://{user}@127.0.0.1:5432/test"
CIDS = ["c0", "c1", "c2", "c3"]
NEXT_PATH = "/api/v1/worker/tasks/next"


def _postgres_base(given: str | None = None) -> str | None:
    """``--postgres`` as given, else the first role that can connect to ``test`` on 127.0.0.1:5432."""
    import psycopg

    if given:
        return given.replace("postgresql://", "postgresql+psycopg://", 1)
    for user in ("postgres", "root"):
        try:
            with psycopg.connect(f"host=127.0.0.1 port=5432 dbname=test user={user}", connect_timeout=3):
                return PG_URL.format(user=user)
        except psycopg.OperationalError:
            continue
    return None


def _prepare(database_url: str, chain_dir: Path, tasks: int, workers: int, max_results: int) -> list[str]:
    """Chain, miner, tasks and workers; returns the workers' session tokens."""
    from commons.dojo_wire import CreateTasksIn
    from dojo.platform.services import auth
    from dojo.platform.services import tasks as task_service

    settings, database, hotkey = prepare_platform(database_url, chain_dir)
    expire = (datetime.now(timezone.utc) + timedelta(hours=4)).isoformat()
    completions = [
        {"cid": cid, "model": f"m-{cid}", "completion": f"def solve():\n    return {i}\n"}
        for i, cid in enumerate(CIDS)
    ]
    task_data = {
        "prompt": "Write solve()",
        "responses": completions,
        "task": "CODE_GENERATION",
        "criteria": [{"type": "ranking"}],
    }
    with database.session() as db:
        miner = auth.get_or_create_miner(db, hotkey)
        for start in range(0, tasks, 10):
            payload = CreateTasksIn.model_validate(
                {
                    "title": "bench",
                    "body": "",
                    "expireAt": expire,
                    "maxResults": max_results,
                    "taskData": [task_data] * min(10, tasks - start),
                }
            )
            task_service.create_tasks(db, miner, payload)
        tokens = [worker_token(db, settings, miner) for _ in range(workers)]
    database.dispose()
    if not database.is_sqlite:
        _analyze(database_url)
    return tokens


def _analyze(database_url: str) -> None:
    """Planner statistics, as autovacuum keeps them for a platform that has been running.

    Run once the tasks are made (without them PostgreSQL would sort every open task per claim
    instead of walking the deadline index) and again at the end of the warm-up: statistics
    of an empty ``assignments`` table make the queue's search read the whole table for every
    task it passes, a plan each connection keeps until the next ``ANALYZE``.
    """
    from dojo.platform.storage.db import Database

    database = Database(database_url, pool_size=1)
    with database.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    database.dispose()


def _overfilled(database_url: str) -> tuple[int, int]:
    from sqlalchemy import text

    from dojo.platform.storage.db import Database

    database = Database(database_url, pool_size=1)
    with database.read_session() as db:
        by_results = db.execute(
            text(
                "SELECT count(*) FROM (SELECT t.id FROM tasks t JOIN results r ON r.task_id = t.id"
                " GROUP BY t.id, t.max_results HAVING count(*) > t.max_results) AS over"
            )
        ).scalar_one()
        stored = db.execute(text("SELECT count(*) FROM results")).scalar_one()
    database.dispose()
    return int(by_results), int(stored)


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, parsed with httptools.

    A simulated worker's whole client: about a fifth of aiohttp's CPU per request, which on
    a 2-core machine shared with the server is CPU the server keeps.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []

    @classmethod
    async def open(cls, host: str, port: int) -> _RawConnection:
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(exc)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body, self.chunks = b"".join(self.chunks), []
        self._finish((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ConnectionResetError("the server closed the connection"))

    def _finish(self, outcome: tuple[int, bytes] | BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _run_workers(
    url: str, tokens: list[str], measure_from: float, deadline: float, client: str
) -> dict:
    """Loop the workers until ``deadline`` (``time.time()``); raw latencies (s) and counts of
    the requests started from ``measure_from`` on (the warm-up before it is not counted)."""
    submit_latencies: list[float] = []
    request_latencies: list[float] = []
    counts = {"submissions": 0, "empty": 0, "errors": 0, "all_requests": 0}
    errors: dict[str, int] = {}
    payload = json.dumps(
        {"resultData": [{"type": "ranking", "value": {cid: i + 1 for i, cid in enumerate(CIDS)}}]}
    )
    # Both clocks: time.time() is shared by the client processes, perf_counter times requests.
    offset = time.perf_counter() - time.time()
    measure_from += offset
    deadline += offset
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80

    def error(kind: str) -> None:
        counts["errors"] += 1
        errors[kind] = errors.get(kind, 0) + 1

    async def loop(post: Callable[[str, str | None], Awaitable[tuple[int, bytes]]]) -> None:
        while time.perf_counter() < deadline:
            try:
                t0 = time.perf_counter()
                status, body = await post(NEXT_PATH, None)
                counts["all_requests"] += 1
                measured = t0 >= measure_from
                if measured:
                    request_latencies.append(time.perf_counter() - t0)
                if status == 204:
                    counts["empty"] += measured
                    await asyncio.sleep(0.05)
                    continue
                if status != 200:
                    error(f"next {status}")
                    continue
                task_id = json.loads(body)["id"]
                t1 = time.perf_counter()
                status, body = await post(f"/api/v1/worker/tasks/{task_id}/result", payload)
                counts["all_requests"] += 1
                elapsed = time.perf_counter() - t1
                if status != 200:
                    error(f"submit {status}")
                elif t1 >= measure_from:
                    request_latencies.append(elapsed)
                    submit_latencies.append(elapsed)
                    counts["submissions"] += 1
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, httptools.HttpParserError) as exc:
                error(type(exc).__name__)
                if client == "raw":
                    raise  # the connection is gone; its worker stops

    async def raw_worker(token: str) -> None:
        connection = await _RawConnection.open(host, port)
        head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"

        async def post(path: str, body: str | None) -> tuple[int, bytes]:
            if body is None:
                return await connection.request(
                    f"POST {path} HTTP/1.1\r\n{head}Content-Length: 0\r\n\r\n".encode()
                )
            data = body.encode()
            return await connection.request(
                f"POST {path} HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )

        try:
            # A server that stops answering must not hang the benchmark: 30 s of grace.
            await asyncio.wait_for(loop(post), timeout=deadline - time.perf_counter() + 30)
        except (OSError, httptools.HttpParserError):
            pass
        except asyncio.TimeoutError:
            error("TimeoutError")
        finally:
            connection.close()

    if client == "raw":
        await asyncio.gather(*(raw_worker(token) for token in tokens))
    else:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as http:

            async def aiohttp_worker(token: str) -> None:
                headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

                async def post(path: str, body: str | None) -> tuple[int, bytes]:
                    async with http.post(path, headers=headers, data=body) as response:
                        return response.status, await response.read()

                await loop(post)

            await asyncio.gather(*(aiohttp_worker(token) for token in tokens))
    return {
        "submit_latencies": submit_latencies,
        "request_latencies": request_latencies,
        "counts": counts,
        "errors": errors,
    }


def _client_process(
    url: str, tokens: list[str], measure_from: float, deadline: float, client: str, out: Any
) -> None:
    """One client process: its share of the workers on uvloop; sends back its figures and CPU time."""
    cpu = time.process_time()
    result = uvloop.run(_run_workers(url, tokens, measure_from, deadline, client))
    result["cpu"] = time.process_time() - cpu
    out.send(result)
    out.close()


def _load(
    url: str,
    tokens: list[str],
    args: argparse.Namespace,
    server_pid: int,
    warmed: Callable[[], None] | None = None,
    backends: Callable[[], list[int]] | None = None,
) -> dict:
    """Run the workers split over ``args.client_processes`` processes (one event loop each:
    a single loop serving 200 workers adds its own queueing to every request's latency)."""
    context = multiprocessing.get_context("fork")
    measure_from = time.time() + 0.5 + args.warmup
    deadline = measure_from + args.duration
    runs = []
    for share in np.array_split(np.array(tokens, dtype=object), args.client_processes):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_client_process,
            args=(url, list(share), measure_from, deadline, args.client, sender),
            daemon=True,
        )
        process.start()
        sender.close()
        runs.append((process, receiver))
    if warmed is not None:  # near the end of the warm-up
        time.sleep(max(0.0, measure_from - min(1.0, args.warmup / 2) - time.time()))
        warmed()
    # The server's CPU time over the measured window only.
    time.sleep(max(0.0, measure_from - time.time()))
    cpu_before = _cpu_seconds(server_pid)
    database_pids = backends() if backends is not None else []
    database_before = sum(process_cpu(pid) or 0.0 for pid in database_pids)
    machine_before = _machine_cpu()
    time.sleep(max(0.0, deadline - time.time()))
    machine_after = _machine_cpu()
    cpu_after = _cpu_seconds(server_pid)
    database_after = sum(process_cpu(pid) or 0.0 for pid in database_pids)
    parts = []
    for process, receiver in runs:
        parts.append(receiver.recv())
        process.join()
    submit = [x for part in parts for x in part["submit_latencies"]]
    requests = [x for part in parts for x in part["request_latencies"]]
    counts = {k: sum(part["counts"][k] for part in parts) for k in ("submissions", "empty", "errors")}
    errors: dict[str, int] = {}
    for part in parts:
        for kind, n in part["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    elapsed = args.duration

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)) * 1000, 1) if values else None

    result = {
        "elapsed_s": round(elapsed, 1),
        "submissions": counts["submissions"],
        "submissions_per_s": round(counts["submissions"] / elapsed, 1),
        "p50_ms": pct(submit, 50),
        "p99_ms": pct(submit, 99),
        "request_p50_ms": pct(requests, 50),
        "request_p99_ms": pct(requests, 99),
        "requests": len(requests),
        "no_task_replies": counts["empty"],
        "errors": counts["errors"],
        "error_kinds": errors,
    }
    if requests:
        # The client shares the machine: what it spends is not there for the server.
        if cpu_before is not None and cpu_after is not None:
            # What one request costs the server, whatever else the machine is running.
            result["server_cpu_ms_per_request"] = round((cpu_after - cpu_before) * 1000 / len(requests), 2)
        if database_pids:
            # The connections the warm-up opened (one opened later is not counted).
            spent = database_after - database_before
            result["database_cpu_ms_per_request"] = round(spent * 1000 / len(requests), 2)
            result["database_connections"] = len(database_pids)
        if machine_before is not None and machine_after is not None and counts["submissions"]:
            # The whole machine over the measured window (kernel, the database server's own
            # processes and anything else running included): how busy its cores were, and
            # what that comes to a submission. Below 1.0 busy, CPU is not what bounds the run.
            busy = machine_after[0] - machine_before[0]
            result["machine_busy_share"] = round(busy / max(1e-9, machine_after[1] - machine_before[1]), 3)
            result["machine_cpu_ms_per_submission"] = round(busy * 1000 / counts["submissions"], 2)
        # Over the whole run, warm-up included, as the client processes cannot split it.
        client_cpu = sum(part["cpu"] for part in parts)
        client_requests = sum(part["counts"]["all_requests"] for part in parts)
        result["client_cpu_ms_per_request"] = round(client_cpu * 1000 / max(1, client_requests), 2)
    return result


def _stat(proc: Path) -> list[str]:
    """The fields of a process's ``stat`` after its name: state, ppid, …; utime and stime
    (fields 14 and 15 of the line) are items 11 and 12."""
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()


def _seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """CPU time of one process (a database backend), from /proc; None when it is gone."""
    try:
        return _seconds(_stat(Path(f"/proc/{pid}")))
    except OSError:
        return None


def _machine_cpu() -> tuple[float, float] | None:
    """The machine's CPU seconds since boot, busy and in all, over every core (``/proc/stat``:
    idle and I/O wait are not busy); None where there is no /proc."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and its children (uvicorn's workers), from /proc; None elsewhere."""
    total = 0.0
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = _stat(entry)
            except OSError:
                continue
            if int(entry.name) == pid or int(fields[1]) == pid:
                total += _seconds(fields)
    except OSError:
        return None
    return total


def _backends(server_pid: int, conninfo: str) -> list[int]:
    """The pids of the PostgreSQL backends serving the platform's connections (matched by the
    server processes' local TCP ports), if the database server runs on this machine."""
    import psycopg

    if urlsplit(conninfo).hostname not in ("127.0.0.1", "localhost"):
        return []
    sockets = set()
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (
                int(proc.name) != server_pid and int(_stat(proc)[1]) != server_pid
            ):
                continue
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    sockets.add(link[8:-1])
        except OSError:
            continue
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in sockets:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s) AND client_addr IS NOT NULL",
            (ports,),
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def bench(kind: str, args: argparse.Namespace, workdir: Path, processes: int) -> dict:
    if kind == "sqlite":
        return _bench(kind, args, workdir, processes, f"sqlite:///{workdir / 'platform.sqlite'}")
    base = _postgres_base(args.postgres)
    if base is None:
        return {"skipped": "no PostgreSQL server on 127.0.0.1:5432"}
    from template.storage import own_schema

    with own_schema(base, f"bench_{os.getpid()}") as database_url:
        return _bench(kind, args, workdir, processes, database_url)


def _bench(kind: str, args: argparse.Namespace, workdir: Path, processes: int, database_url: str) -> dict:
    from dojo.platform.services.pgqueue import libpq_conninfo

    chain_dir = workdir / f"chain-{kind}-{processes}"
    tasks = args.tasks or max(1000, int(args.duration * 4000 / args.max_results))
    print(f"[{kind}] preparing {tasks} tasks and {args.workers} workers…", flush=True)
    tokens = _prepare(database_url, chain_dir, tasks, args.workers, args.max_results)
    port = free_port()
    server = serve_platform(database_url, chain_dir, port, processes)
    try:
        print(f"[{kind}] {args.workers} workers for {args.duration:.0f} s…", flush=True)
        load_before = os.getloadavg()[0]
        warmed = None if kind == "sqlite" else (lambda: _analyze(database_url))
        backends = None if kind == "sqlite" else (lambda: _backends(server.pid, libpq_conninfo(database_url)))
        result = _load(f"http://127.0.0.1:{port}", tokens, args, server.pid, warmed, backends)
        # The machine may be shared: the 1-minute load average before and after the run.
        result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    overfilled, stored = _overfilled(database_url)
    result.update(
        overfilled_tasks=overfilled,
        results_stored=stored,
        tasks=tasks,
        server_processes=processes,
        client_processes=args.client_processes,
        client=args.client,
        warmup_s=args.warmup,
    )
    print(f"[{kind}] {json.dumps(result)}", flush=True)
    return result


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("process counts are 1 or more")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of load per database (default 30)"
    )
    parser.add_argument("--workers", type=int, default=200, help="concurrent simulated workers (default 200)")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--postgres",
        default=None,
        help="PostgreSQL server URL (postgresql://user@host:port/db; default the test database on 127.0.0.1:5432)",
    )
    parser.add_argument("--tasks", type=int, default=0, help="tasks to create (default: enough for the run)")
    parser.add_argument("--max-results", dest="max_results", type=int, default=3)
    parser.add_argument(
        "--server-processes",
        dest="server_processes",
        type=_counts,
        default=[1],
        help="uvicorn worker processes (default 1); a list (1,2) runs each in turn, in the same run",
    )
    parser.add_argument(
        "--client-processes",
        dest="client_processes",
        type=int,
        default=2,
        help="processes the simulated workers are split over (default 2)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="the workers' HTTP client: raw (keep-alive HTTP/1.1 parsed by httptools; default) or aiohttp",
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before the measured window (default 3)"
    )
    args = parser.parse_args()
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    with tempfile.TemporaryDirectory(prefix="dojo-bench-") as tmp:
        results = {
            kind if len(args.server_processes) == 1 else f"{kind}_{n}p": bench(kind, args, Path(tmp), n)
            for kind in kinds
            for n in args.server_processes
        }
    summary = results if len(results) > 1 else {"db": kinds[0], **results[kinds[0]]}
    summary = {"duration_s": args.duration, "workers": args.workers, **summary}
    print(json.dumps(summary))
    failed = any(r.get("errors") or r.get("overfilled_tasks") for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
