"""One miner, its two worker backends: tasks through the Dojo platform and through Label Studio.

For each backend, one real miner (``MinerNeuron`` on its signed endpoint, in this process)
takes ``--dojo-tasks`` (1000) or ``--ls-tasks`` (200) tasks from a validator's wallet, in
three phases:

- **create**: ``FeedbackRequest`` to the miner, which creates the task on its backend;
- **results**: three people per task answer it through the backend's own HTTP API (Dojo
  workers: next task, then submit; Label Studio annotators: the label stream's next task,
  then the annotation), each answer timed from asking for a task to its answer stored;
- **collect**: ``TaskResultRequest`` to the miner, which reads, judges and returns the
  answers; a reply without three whole rankings counts as an error.

Every part is real: the platform (``dojo platform serve``) and Label Studio (1.23.2 from
``.label-studio/venv``, ``scripts/label_studio.sh``) as processes on loopback with SQLite,
a LocalChain, wallets and signatures. Prints one line per phase, then, last, one JSON object:
``{"dojo": {...}, "label_studio": {...}}`` with per phase ``tasks_per_s``, ``p50_ms``, ``p99_ms``
and ``errors``. Label Studio's own speed bounds its figures (it took under 4 submissions/s under
load on these machines); there is no target.

    python benchmarks/miner_backends.py [--dojo-tasks 1000] [--ls-tasks 200] [--concurrency 8]
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == _REPO / "benchmarks":
    sys.path[0] = str(_REPO)  # benchmarks/platform.py would shadow the standard library's

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from datetime import timedelta  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402
from loguru import logger  # noqa: E402

from commons.dojo_api import DojoAPI  # noqa: E402
from commons.protocol import (  # noqa: E402
    CodeContent,
    CodeFile,
    Completion,
    FeedbackReply,
    FeedbackRequest,
    RankingCriteria,
    TaskResultReply,
    TaskResultRequest,
    new_request_id,
)
from dojo.label_studio_server import DEFAULT_VENV, LabelStudioServer, installed  # noqa: E402
from dojo.localnet.net import free_port  # noqa: E402
from dojo.miner.config import MinerConfig  # noqa: E402
from dojo.miner.neuron import MinerNeuron  # noqa: E402
from dojo.workers import Behaviour, LabelStudioAnnotator  # noqa: E402
from template.chain.local import LocalChain  # noqa: E402
from template.clock import utcnow  # noqa: E402
from template.config import resolve  # noqa: E402
from template.transport import SignedClient, Target  # noqa: E402
from template.wallets import create_wallet  # noqa: E402

NETUID = 7
WORKERS = 3


def _request() -> FeedbackRequest:
    request_id = new_request_id()
    return FeedbackRequest(
        request_id=request_id,
        prompt="Write a bouncing ball in HTML",
        criteria=[RankingCriteria()],
        completions=[
            Completion(
                completion_id=f"{request_id[:8]}-c{i}",
                model=f"model-{i}",
                content=CodeContent(files=[CodeFile(filename="index.html", content=f"<p>{i}</p>" * 50)]),
            )
            for i in range(4)
        ],
        expire_at=utcnow() + timedelta(hours=2),
    )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _phase(name: str, seconds: float, latencies: list[float], errors: int, tasks: int) -> dict[str, Any]:
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    figures = {
        "tasks_per_s": round(tasks / seconds, 2) if seconds > 0 else None,
        "seconds": round(seconds, 2),
        "p50_ms": None if p50 is None else round(1000 * p50, 1),
        "p99_ms": None if p99 is None else round(1000 * p99, 1),
        "errors": errors,
    }
    print(f"  {name}: {json.dumps(figures)}", flush=True)
    return figures


async def _bounded(
    items: list[Any], concurrency: int, fn: Callable[[Any], Awaitable[bool]]
) -> tuple[list[float], int]:
    """Run ``fn`` over ``items`` with ``concurrency`` at once; each call's seconds, and the failures."""
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(items))

    async def worker() -> None:
        nonlocal errors
        while queue:
            item = queue.pop()
            started = time.perf_counter()
            try:
                ok = await fn(item)
            except Exception as exc:  # a benchmark counts failures, it does not stop on them
                logger.debug("failed: {}", exc)
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


class Bench:
    def __init__(self, workdir: Path, concurrency: int):
        self.workdir = workdir
        self.concurrency = concurrency
        self.chain = LocalChain.init(workdir / "chain", netuid=NETUID, block_time=1.0)
        wallets = workdir / "wallets"
        self.validator = create_wallet("validator", "default", str(wallets))
        self.chain.register(
            self.validator.hotkey.ss58_address, self.validator.coldkeypub.ss58_address, stake=1000.0
        )
        self.miner = create_wallet("miner", "default", str(wallets))
        self.chain.register(self.miner.hotkey.ss58_address, self.miner.coldkeypub.ss58_address, stake=0.0)
        self.wallets = wallets

    async def run_miner(
        self, data_dir: Path, extra: list[str]
    ) -> tuple[MinerNeuron, asyncio.Task[None], Target]:
        port = free_port()
        flags = [
            "--netuid", str(NETUID), "--subtensor.network", str(self.chain.directory),
            "--wallet.name", "miner", "--wallet.hotkey", "default", "--wallet.path", str(self.wallets),
            "--axon.ip", "127.0.0.1", "--axon.port", str(port), "--neuron.data_dir", str(data_dir),
            "--task_max_results", str(WORKERS), *extra,
        ]  # fmt: skip
        config = resolve(MinerConfig, flags, environ={}, env_file=None)
        neuron = MinerNeuron(
            config, chain=LocalChain(self.chain.directory, netuid=NETUID), block_poll_interval=0.5
        )
        task = asyncio.create_task(neuron.run())
        target = Target(hotkey=self.miner.hotkey.ss58_address, url=f"http://127.0.0.1:{port}", uid=neuron.uid)
        async with SignedClient(self.validator.hotkey, timeout=5) as client:
            from commons.protocol import Heartbeat, HeartbeatReply

            for _ in range(200):
                if (await client.call(target, Heartbeat(), HeartbeatReply)).ok:
                    break
                await asyncio.sleep(0.1)
        return neuron, task, target

    async def measure(
        self,
        miner: tuple[MinerNeuron, asyncio.Task[None], Target],
        http: httpx.AsyncClient,
        tasks: int,
        answer: Callable[[], Awaitable[int]],
        create_concurrency: int,
    ) -> dict[str, Any]:
        """:meth:`phases` against ``miner`` (as :meth:`run_miner` returns it), which is stopped
        afterwards, as ``http`` (the backend's client) is closed."""
        neuron, task, target = miner
        try:
            return await self.phases(target, tasks, answer, create_concurrency)
        finally:
            neuron.request_stop()
            await asyncio.wait_for(task, 30)
            await http.aclose()

    async def phases(
        self, target: Target, tasks: int, answer: Callable[[], Awaitable[int]], create_concurrency: int
    ) -> dict[str, Any]:
        requests = [_request() for _ in range(tasks)]
        async with SignedClient(self.validator.hotkey, timeout=60, max_concurrency=64) as client:

            async def create(request: FeedbackRequest) -> bool:
                return (await client.call(target, request, FeedbackReply)).ok

            started = time.perf_counter()
            latencies, errors = await _bounded(requests, create_concurrency, create)
            figures = {"create": _phase("create", time.perf_counter() - started, latencies, errors, tasks)}

            started = time.perf_counter()
            answer_latencies: list[float] = []
            answer_errors = await answer_all(answer, tasks * WORKERS, answer_latencies)
            figures["results"] = _phase(
                "results", time.perf_counter() - started, answer_latencies, answer_errors, tasks
            )

            async def collect(request: FeedbackRequest) -> bool:
                outcome = await client.call(
                    target, TaskResultRequest(request_id=request.request_id), TaskResultReply
                )
                return outcome.ok and len({r.worker_id for r in outcome.reply.results}) == WORKERS

            started = time.perf_counter()
            latencies, errors = await _bounded(requests, create_concurrency, collect)
            figures["collect"] = _phase("collect", time.perf_counter() - started, latencies, errors, tasks)
        return figures


async def answer_all(answer: Callable[[], Awaitable[int]], total: int, latencies: list[float]) -> int:
    """Call ``answer`` (one person's next answer: 1 when it answered, 0 when nothing was left for
    it) until ``total`` answers are in or nobody finds anything; the failures."""
    done = errors = 0
    while done < total:
        started = time.perf_counter()
        try:
            got = await answer()
        except Exception as exc:
            logger.debug("answer failed: {}", exc)
            errors += 1
            if errors > total:
                break
            continue
        if got == 0:
            break
        latencies.append(time.perf_counter() - started)
        done += got
    return errors + (total - done)


def _start_platform(bench: Bench) -> tuple[subprocess.Popen[bytes], str, Any]:
    """``dojo platform serve`` on a free port, once it answers ``/health``."""
    port = free_port()
    log = (bench.workdir / "platform.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DOJO_API_KEY")}
    platform = subprocess.Popen(
        [
            sys.executable, "-m", "dojo", "platform", "serve", "--db", str(bench.workdir / "platform.sqlite"),
            "--host", "127.0.0.1", "--port", str(port), "--subtensor.network", str(bench.chain.directory),
            "--netuid", str(NETUID), "--log-level", "warning",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return platform, url, log


async def bench_dojo(bench: Bench, tasks: int) -> dict[str, Any]:
    platform, url, log = await asyncio.to_thread(_start_platform, bench)
    try:
        async with DojoAPI(url) as api:
            await api.login(bench.miner.hotkey)
            api_key = (await api.generate_api_key()).key
            subscription = (await api.generate_subscription_key()).key
        http = httpx.AsyncClient(base_url=url, timeout=60)
        workers: list[dict[str, str]] = []
        for _ in range(WORKERS):
            account = Account.create()
            challenge = (
                await http.post("/api/v1/worker/challenge", json={"address": account.address})
            ).json()
            signed = account.sign_message(encode_defunct(text=challenge["message"]))
            login = await http.post(
                "/api/v1/worker/login",
                json={
                    "address": account.address,
                    "signature": "0x" + bytes(signed.signature).hex(),
                    "nonce": challenge["nonce"],
                },
            )
            headers = {"authorization": f"Bearer {login.json()['token']}"}
            await http.post(
                "/api/v1/worker/subscriptions", json={"name": "bench", "key": subscription}, headers=headers
            )
            workers.append(headers)
        neuron, task, target = await bench.run_miner(
            bench.workdir / "miner-dojo", ["--dojo_api_base_url", url, "--dojo_api_key", api_key]
        )
        turn = 0

        async def answer() -> int:
            nonlocal turn
            # The workers take turns; each answers the next task it is offered.
            for _ in range(WORKERS):
                headers = workers[turn % WORKERS]
                turn += 1
                held = await http.post("/api/v1/worker/tasks/next", headers=headers)
                if held.status_code != 200:
                    continue
                body = held.json()
                order = [c["cid"] for c in body["completions"]]
                submitted = await http.post(
                    f"/api/v1/worker/tasks/{body['id']}/result",
                    json={"resultData": [{"type": "ranking", "value": order}]},
                    headers=headers,
                )
                submitted.raise_for_status()
                return 1
            return 0

        return await bench.measure((neuron, task, target), http, tasks, answer, bench.concurrency)
    finally:
        platform.terminate()
        platform.wait(30)
        log.close()


async def bench_label_studio(bench: Bench, tasks: int) -> dict[str, Any]:
    server = LabelStudioServer(bench.workdir / "label-studio", free_port())
    server.start()
    try:
        await asyncio.to_thread(server.wait_ready)
        neuron, task, target = await bench.run_miner(
            bench.workdir / "miner-ls",
            [
                "--worker_platform", "label-studio", "--label_studio.url", server.url,
                "--label_studio.api_key", server.token, "--label_studio.poll_interval", "600",
            ],
        )  # fmt: skip
        http = httpx.AsyncClient(base_url=server.url, timeout=120)
        people = [
            LabelStudioAnnotator(server.url, Behaviour("random"), name=f"bench{i}") for i in range(WORKERS)
        ]
        for person in people:
            await person.join(http)
        projects: list[int] = []
        turn = 0

        async def answer() -> int:
            nonlocal turn, projects
            if not projects:
                projects = await people[0].projects(http)
            for _ in range(WORKERS):
                person = people[turn % WORKERS]
                turn += 1
                for project in projects:
                    served = await person.next_task(http, project)
                    if served is None:
                        continue
                    order = [item["id"] for item in served["data"]["items"]]
                    reply = await person.submit(http, served, order, 1.0)
                    reply.raise_for_status()
                    return 1
            return 0

        return await bench.measure(
            (neuron, task, target), http, tasks, answer, max(1, bench.concurrency // 2)
        )
    finally:
        server.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="miner-backends-") as tmp:
        workdir = Path(tmp)
        bench = Bench(workdir, args.concurrency)
        summary: dict[str, Any] = {"workers_per_task": WORKERS}
        print(f"dojo platform: {args.dojo_tasks} tasks", flush=True)
        summary["dojo"] = {"tasks": args.dojo_tasks, **await bench_dojo(bench, args.dojo_tasks)}
        if installed(DEFAULT_VENV):
            print(f"label studio: {args.ls_tasks} tasks", flush=True)
            summary["label_studio"] = {
                "tasks": args.ls_tasks,
                **await bench_label_studio(bench, args.ls_tasks),
            }
        else:
            print(
                f"label studio: skipped, not installed in {DEFAULT_VENV} (scripts/label_studio.sh)",
                flush=True,
            )
            summary["label_studio"] = None
        return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dojo-tasks", type=int, default=1000)
    parser.add_argument("--ls-tasks", type=int, default=200)
    parser.add_argument(
        "--concurrency", type=int, default=8, help="calls in flight to the miner (Label Studio: half)"
    )
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    summary = asyncio.run(main_async(args))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
