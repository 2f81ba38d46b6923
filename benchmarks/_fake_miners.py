"""Fake miners for the validator benchmarks: many signed miner endpoints served by a few processes.

Each process serves its share of the endpoints, one :class:`~template.transport.SignedServer`
per endpoint (its own hotkey ``//miner<i>`` and port) in one uvloop event loop. An endpoint
answers the four miner routes the way a miner whose workers always finish would:

- ``FeedbackRequest``: remembers the completion ids it was sent (ids only, not the content)
  and replies with a made-up ``dojo_task_id``;
- ``TaskResultRequest``: ``--workers`` results, each a whole random ranking of exactly the
  completion ids of that request (404 for a request it never saw);
- ``ScoringResult``: ``Ack``; ``Heartbeat``: ``HeartbeatReply``.

The blacklist is the real one, against the metagraph read once at start (so the validator
must be registered, with its permit, before the processes start).

Used by ``benchmarks/validator_round.py`` through :class:`FakeMinerFleet`; a process is
``python -m benchmarks._fake_miners --chain DIR --netuid N --endpoints i:port,...`` run from
the repository root. It prints ``ready`` once every endpoint listens, and exits when its
parent process goes away or on SIGTERM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run as a file, Python would put benchmarks/ first on the path, where benchmarks/platform.py
# shadows the standard library's `platform`; use the repository root instead.
_REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == _REPO / "benchmarks":
    sys.path[0] = str(_REPO)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import random  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from loguru import logger  # noqa: E402

MINER_URI = "//miner{}"


def miner_uri(index: int) -> str:
    """The dev-key URI of fake miner ``index``: ``Keypair.create_from_uri(miner_uri(i))``."""
    return MINER_URI.format(index)


# --- the endpoints (child process) -------------------------------------------------------------


@dataclass
class _Endpoint:
    """One fake miner: what each request sent it, by request id."""

    hotkey: str
    workers: int
    rng: random.Random
    sent: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _routes(server, endpoint: _Endpoint) -> None:
    from commons import protocol
    from dojo.miner.answers import worker_pseudonym_for_validators
    from template.clock import utcnow
    from template.transport import HandlerRefusal

    def count(route: str) -> None:
        endpoint.counts[route] = endpoint.counts.get(route, 0) + 1

    async def feedback(request: protocol.FeedbackRequest, caller) -> protocol.FeedbackReply:
        count("FeedbackRequest")
        endpoint.sent[request.request_id] = [c.completion_id for c in request.completions]
        return protocol.FeedbackReply(request_id=request.request_id, dojo_task_id=uuid.uuid4().hex)

    async def results(request: protocol.TaskResultRequest, caller) -> protocol.TaskResultReply:
        count("TaskResultRequest")
        ids = endpoint.sent.get(request.request_id)
        if ids is None:
            raise HandlerRefusal(404, f"no request {request.request_id} from this validator")
        now = utcnow()
        answers = []
        for w in range(endpoint.workers):
            order = ids[:]
            endpoint.rng.shuffle(order)
            answers.append(
                protocol.WorkerResult(
                    worker_id=worker_pseudonym_for_validators(endpoint.hotkey.encode(), str(w)),
                    criteria_type="ranking",
                    values={cid: float(rank) for rank, cid in enumerate(order, start=1)},
                    submitted_at=now,
                )
            )
        return protocol.TaskResultReply(request_id=request.request_id, results=answers)

    async def scored(request: protocol.ScoringResult, caller) -> protocol.Ack:
        count("ScoringResult")
        return protocol.Ack()

    async def heartbeat(request: protocol.Heartbeat, caller) -> protocol.HeartbeatReply:
        count("Heartbeat")
        return protocol.HeartbeatReply(hotkey=endpoint.hotkey)

    server.route(protocol.FeedbackRequest, feedback)
    server.route(protocol.TaskResultRequest, results)
    server.route(protocol.ScoringResult, scored)
    server.route(protocol.Heartbeat, heartbeat)


async def _serve(
    chain_dir: str, netuid: int, endpoints: list[tuple[int, int]], workers: int, seed: int
) -> int:
    import uvicorn
    from bittensor.sp_core import Keypair

    from commons.protocol import PROTOCOL_VERSION
    from template.chain.local import LocalChain
    from template.transport import SignedServer

    # uvicorn installs its own SIGINT/SIGTERM handlers per server, which for many servers in
    # one loop chain badly; here SIGTERM keeps its default (end the process) instead.
    uvicorn.Server.capture_signals = lambda self: contextlib.nullcontext()  # type: ignore[method-assign]
    metagraph = LocalChain(chain_dir, netuid).metagraph()
    servers = []
    tasks = []
    for index, port in endpoints:
        keypair = Keypair.create_from_uri(miner_uri(index))
        server = SignedServer(keypair, lambda: metagraph, protocol_version=PROTOCOL_VERSION)
        _routes(server, _Endpoint(keypair.ss58_address, workers, random.Random(f"{seed}:{index}")))
        ready = asyncio.Event()
        servers.append((server, ready))
        tasks.append(asyncio.create_task(server.serve("127.0.0.1", port, ready)))
    # Until every endpoint listens, or one of them fails to start (its serve task ends).
    all_ready = asyncio.ensure_future(asyncio.gather(*(ready.wait() for _, ready in servers)))
    await asyncio.wait([*tasks, all_ready], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in tasks if t.done()]
    if failed or not all(ready.is_set() for _, ready in servers):
        for t in failed:
            if t.exception() is not None:
                logger.error("fake miner endpoint failed to start: {}", t.exception())
        print("failed", flush=True)
        return 1
    print("ready", flush=True)
    parent = os.getppid()
    while os.getppid() == parent and not any(t.done() for t in tasks):  # noqa: ASYNC110 - polling the parent pid
        await asyncio.sleep(0.5)
    for server, _ in servers:
        server.stop()
    await asyncio.wait(tasks, timeout=5)
    return 0


def _child_main(argv: list[str]) -> int:
    import uvloop

    parser = argparse.ArgumentParser(description="serve fake miner endpoints (benchmarks only)")
    parser.add_argument("--chain", required=True, help="local chain directory")
    parser.add_argument("--netuid", type=int, default=1)
    parser.add_argument("--endpoints", required=True, help="comma-separated index:port pairs")
    parser.add_argument("--workers", type=int, default=3, help="worker results per TaskResultRequest")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    endpoints = [(int(i), int(p)) for i, p in (pair.split(":") for pair in args.endpoints.split(","))]
    return uvloop.run(_serve(args.chain, args.netuid, endpoints, args.workers, args.seed))


# --- the fleet (parent process) -----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, from /proc (0.0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FakeMinerFleet:
    """``processes`` child processes serving the fake miners at ``endpoints`` ((index, port) pairs)."""

    def __init__(
        self,
        chain_dir: Path,
        netuid: int,
        endpoints: list[tuple[int, int]],
        *,
        processes: int,
        workers: int = 3,
        log_dir: Path,
        seed: int = 0,
    ):
        self.chain_dir = chain_dir
        self.netuid = netuid
        self.endpoints = endpoints
        self.processes = max(1, min(processes, len(endpoints)))
        self.workers = workers
        self.log_dir = log_dir
        self.seed = seed
        self.children: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def start(self, timeout: float = 120.0) -> None:
        """Start every process and wait until all their endpoints listen."""
        shares = [self.endpoints[i :: self.processes] for i in range(self.processes)]
        for n, share in enumerate(shares):
            log = self.log_dir / f"fake-miners-{n}.log"
            self.logs.append(log)
            with log.open("w") as stderr:
                self.children.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks._fake_miners",
                            "--chain",
                            str(self.chain_dir),
                            "--netuid",
                            str(self.netuid),
                            "--workers",
                            str(self.workers),
                            "--seed",
                            str(self.seed),
                            "--endpoints",
                            ",".join(f"{i}:{p}" for i, p in share),
                        ],
                        cwd=_REPO,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        text=True,
                        # Its own session: a Ctrl-C reaches only the benchmark, which stops the fleet.
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for child in self.children:
                assert child.stdout is not None
                selector.register(child.stdout, selectors.EVENT_READ, child)
            pending = set(self.children)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake miners not ready after {timeout:g}s; see {self.log_dir}")
                for key, _ in selector.select(timeout=left):
                    child = key.data
                    line = child.stdout.readline().strip()
                    if line != "ready":
                        tail = self.logs[self.children.index(child)].read_text()[-2000:]
                        raise RuntimeError(
                            f"a fake miner process did not start ({line or 'exited'}):\n{tail}"
                        )
                    selector.unregister(child.stdout)
                    pending.discard(child)

    def cpu_seconds(self) -> float:
        """CPU time used so far by all the fleet's processes."""
        return sum(_cpu_seconds(c.pid) for c in self.children if c.poll() is None)

    def alive(self) -> bool:
        return all(c.poll() is None for c in self.children)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 5 s)."""
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
