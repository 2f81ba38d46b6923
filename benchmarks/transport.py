"""Fan-out of signed calls: 256 concurrent ``Heartbeat`` calls to 8 miner processes.

Starts a local chain and 8 real miners (``main_miner.py``, one process each) on loopback,
then, as the registered validator, sends 256 signed heartbeats at once (32 per miner)
through the transport's ``SignedClient`` (one aiohttp session), several rounds after a
warm-up. For comparison, the same load goes through one shared ``httpx.AsyncClient`` in the
same run. Prints the figures; the last line is one JSON object.

    python benchmarks/transport.py [--calls 256] [--miners 8] [--rounds 5]

Target on 2 cores: all 256 calls in under 0.15 s with no error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run from the repository root's view: the script's own folder would shadow the standard
# library's `platform` module with benchmarks/platform.py.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import bittensor as bt  # noqa: E402
import httpx  # noqa: E402
import uvloop  # noqa: E402

from commons.protocol import Heartbeat, HeartbeatReply  # noqa: E402
from dojo.localnet.net import LocalNet  # noqa: E402
from template.chain.local import LocalChain  # noqa: E402
from template.transport import SignedClient, Status, Target  # noqa: E402
from template.wallets import load_wallet  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def wait_until_serving(client: SignedClient, targets: list[Target], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes = await client.fanout(targets, Heartbeat(), HeartbeatReply, timeout=2)
        if all(o.ok for o in outcomes):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("miners did not all answer within 60 s")


async def aiohttp_round(client: SignedClient, targets: list[Target]) -> tuple[float, list[float], int]:
    started = time.perf_counter()
    outcomes = await client.fanout(targets, Heartbeat(), HeartbeatReply)
    wall = time.perf_counter() - started
    return wall, [o.elapsed for o in outcomes], sum(1 for o in outcomes if o.status is not Status.OK)


async def httpx_round(
    keypair, http: httpx.AsyncClient, targets: list[Target]
) -> tuple[float, list[float], int]:
    body = Heartbeat().model_dump_json().encode()

    async def one(target: Target) -> tuple[float, bool]:
        t0 = time.perf_counter()
        headers = bt.http_auth.sign(
            keypair, method="POST", path="/Heartbeat", body=body, receiver_ss58=target.hotkey
        )
        try:
            response = await http.post(target.url + "/Heartbeat", content=body, headers=headers)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        return time.perf_counter() - t0, ok

    started = time.perf_counter()
    results = await asyncio.gather(*(one(t) for t in targets))
    wall = time.perf_counter() - started
    return wall, [r[0] for r in results], sum(1 for r in results if not r[1])


def summarise(rounds: list[tuple[float, list[float], int]]) -> dict:
    walls = [r[0] for r in rounds]
    latencies = [x for r in rounds for x in r[1]]
    return {
        "wall_s_median": round(statistics.median(walls), 4),
        "wall_s_best": round(min(walls), 4),
        "p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
        "errors": sum(r[2] for r in rounds),
    }


async def measure(net: LocalNet, calls: int, rounds: int) -> dict:
    validator = load_wallet("validator", "default", str(net.wallet_path))
    chain = LocalChain(net.chain_dir, net.netuid)
    expected = sum(1 for n in net.neurons if n.role == "miner")
    deadline = time.monotonic() + 60
    while len(served := chain.metagraph().serving()) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    miners = [
        Target(n.hotkey, n.axon.url, n.uid) for n in served if n.hotkey != validator.hotkey.ss58_address
    ]
    targets = [miners[i % len(miners)] for i in range(calls)]
    async with SignedClient(validator.hotkey, timeout=10, max_concurrency=calls) as client:
        await wait_until_serving(client, miners)
        await aiohttp_round(client, targets)  # warm-up: connections and server code paths
        aio = [await aiohttp_round(client, targets) for _ in range(rounds)]
    limits = httpx.Limits(max_connections=calls, max_keepalive_connections=calls)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        await httpx_round(validator.hotkey, http, targets)
        hx = [await httpx_round(validator.hotkey, http, targets) for _ in range(rounds)]
    return {"miners": len(miners), "aiohttp": summarise(aio), "httpx_shared": summarise(hx)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--miners", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dojo-bench-") as tmp:
        net = LocalNet(Path(tmp), miners=args.miners, block_time=1.0, epoch_length=1000)
        net.prepare()
        net.start(roles=("miner",))
        try:
            figures = uvloop.run(measure(net, args.calls, args.rounds))
        finally:
            net.stop()
    aio, hx = figures["aiohttp"], figures["httpx_shared"]
    print(
        f"{args.calls} signed heartbeats to {figures['miners']} miner processes, {args.rounds} rounds after a warm-up"
    )
    print(
        f"  aiohttp session (used): median {aio['wall_s_median']} s, p50 {aio['p50_ms']} ms, "
        f"p99 {aio['p99_ms']} ms, errors {aio['errors']}"
    )
    print(
        f"  shared httpx client:    median {hx['wall_s_median']} s, p50 {hx['p50_ms']} ms, "
        f"p99 {hx['p99_ms']} ms, errors {hx['errors']}"
    )
    result = {
        "calls": args.calls,
        "servers": figures["miners"],
        "total_wall_s": aio["wall_s_median"],
        "best_wall_s": aio["wall_s_best"],
        "p50_ms": aio["p50_ms"],
        "p99_ms": aio["p99_ms"],
        "errors": aio["errors"],
        "httpx_shared_wall_s": hx["wall_s_median"],
        "target_wall_s": 0.15,
    }
    print(json.dumps(result))
    return 0 if aio["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
