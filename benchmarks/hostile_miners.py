"""A running validator against hostile miners beside honest ones: its memory and its loops' cadence.

    .venv/bin/python benchmarks/hostile_miners.py [--honest 4] [--seconds 60]
                                                  [--hostile bomb_results,bomb_heartbeat,...]
                                                  [--heartbeat-interval 5] [--task-interval 10]

Sets up a local chain in a temporary directory with the validator (stake 1000) and one miner
per ``--honest`` and per ``--hostile`` behaviour, each with its own dev hotkey and port. The
miners are ``tests.hostile_miner.HostileMiner`` endpoints (they check the validator's btauth/1
signature as a miner does), all in one child process, so this process's memory is the
validator's own. Their behaviours:

- ``honest``: three workers' whole rankings of every task;
- ``bomb_heartbeat``, ``bomb_results``: a heartbeat or task result reply of about 1 MiB of
  gzip that inflates to ``--bomb-mib`` (1 GiB) of JSON whitespace;
- ``flood_heartbeat``, ``flood_results``: ``--flood-mib`` (200 MiB) of plain padding;
- ``trickle``: the task result reply one byte every half second (the call's timeout ends it);
- ``invented_workers``: 1 000 results from worker ids nobody was given.

The validator is the real ``ValidatorNeuron`` run whole (``run()``: its endpoint and every
loop) for ``--seconds``, generating its tasks in-process (as a localnet without the synthetic
service does; the RSS includes ``dojo.synthetic``), with short intervals so that many rounds
fit. One task is generated before the run (``--no-warmup`` skips it): the first in-process
task imports ``dojo.synthetic`` on the event loop's thread, which stalls every loop for
seconds once, hostile miners or not; the run then measures the loops, not that import. Measured: the process's peak RSS (``VmHWM``) and its RSS sampled every 0.2 s; the start
and length of every heartbeat round and collection pass (so the observed heartbeat interval
against ``--heartbeat-interval``); the event loop's worst lag (a 0.1 s sleep's overshoot);
and, at the end, every assignment's collection outcome by behaviour.

Target: peak RSS < 300 MB, and the heartbeat interval kept (no gap between rounds over the
interval plus the call timeout). Figures are printed, then as the last line one JSON object;
``targets_met`` says whether both held. On a shared machine, times are indicative only.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file, Python would put benchmarks/ first on the path, where benchmarks/platform.py
# shadows the standard library's `platform`; use the repository root instead.
_REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == _REPO / "benchmarks":
    sys.path[0] = str(_REPO)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

NETUID = 1
MiB = 1024 * 1024
TARGET_RSS_MB = 300.0
HOSTILE = "bomb_results,bomb_heartbeat,flood_results,flood_heartbeat,trickle,invented_workers"


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def miner_key(index: int) -> Any:
    from bittensor.sp_core import Keypair

    return Keypair.create_from_uri(f"//hostile{index}")


# --- the miners (child process) --------------------------------------------------------------


def _serve_miners(specs: list[tuple[int, str, int]], bomb_bytes: int, flood_bytes: int, conn: Any) -> None:
    from tests.hostile_miner import HostileMiner

    async def main() -> None:
        miners = []
        for index, behaviour, port in specs:
            miner = HostileMiner(
                SimpleNamespace(hotkey=miner_key(index)),
                behaviour,
                bomb_bytes=bomb_bytes,
                flood_bytes=flood_bytes,
                seed=index,
            )
            miner.port, miner.url = port, f"http://127.0.0.1:{port}"
            await miner.start()
            miners.append(miner)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until the parent says stop
        conn.send(
            {
                m.behaviour + f"#{i}": {"calls": m.calls, "bytes_sent": m.bytes_sent}
                for i, m in enumerate(miners)
            }
        )
        for miner in miners:
            await miner.stop()

    asyncio.run(main())


# --- the validator (this process) -------------------------------------------------------------


class Cadence:
    """When each call of a wrapped coroutine method started and how long it took."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, owner: Any, name: str) -> None:
        inner = getattr(owner, name)
        calls = self.calls.setdefault(name, [])

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await inner(*args, **kwargs)
            finally:
                calls.append((started, time.monotonic() - started))

        setattr(owner, name, timed)

    def summary(self, name: str) -> dict[str, Any]:
        calls = self.calls.get(name, [])
        starts = [s for s, _ in calls]
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        lengths = [d for _, d in calls]
        return {
            "count": len(calls),
            "interval_mean_s": round(statistics.fmean(gaps), 2) if gaps else None,
            "interval_max_s": round(max(gaps), 2) if gaps else None,
            "length_mean_s": round(statistics.fmean(lengths), 3) if lengths else None,
            "length_max_s": round(max(lengths), 3) if lengths else None,
        }


async def _sample(stop: asyncio.Event, figures: dict[str, float]) -> None:
    """RSS every 0.2 s, and the loop's lag: how late a 0.1 s sleep wakes up."""
    while not stop.is_set():
        asked = time.monotonic()
        await asyncio.sleep(0.1)
        figures["loop_lag_max_s"] = max(figures.get("loop_lag_max_s", 0.0), time.monotonic() - asked - 0.1)
        figures["rss_max_sampled_mb"] = max(figures.get("rss_max_sampled_mb", 0.0), _status_mb("VmRSS"))
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from loguru import logger
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from dojo.localnet.net import free_port
    from dojo.validator.config import ValidatorConfig
    from dojo.validator.models import Assignment
    from dojo.validator.neuron import ValidatorNeuron
    from template.chain.local import LocalChain
    from template.config import resolve
    from template.wallets import create_wallet

    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    behaviours = ["honest"] * args.honest + [b for b in args.hostile.split(",") if b]
    chain = LocalChain.init(root / "chain", netuid=NETUID, block_time=1.0, weights_rate_limit=1)
    validator = create_wallet("validator", "default", str(root / "wallets"))
    chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, stake=1000.0)
    specs = []
    behaviour_of: dict[str, str] = {}
    for index, behaviour in enumerate(behaviours):
        key = miner_key(index)
        port = free_port()
        chain.register(key.ss58_address, key.ss58_address)
        chain.serve_axon(key.ss58_address, "127.0.0.1", port)
        specs.append((index, behaviour, port))
        behaviour_of[key.ss58_address] = behaviour

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_serve_miners, args=(specs, args.bomb_mib * MiB, args.flood_mib * MiB, child), daemon=True
    )
    process.start()
    try:
        if not parent.poll(60) or parent.recv() != "ready":
            raise RuntimeError("the miners did not start")
        settings = {
            "--netuid": str(NETUID),
            "--subtensor.network": str(root / "chain"),
            "--wallet.name": "validator",
            "--wallet.path": str(root / "wallets"),
            "--axon.ip": "127.0.0.1",
            "--axon.port": str(free_port()),
            "--neuron.data_dir": str(root / "validator"),
            "--neuron.timeout": str(args.timeout),
            "--neuron.heartbeat_interval": str(args.heartbeat_interval),
            "--neuron.task_interval": str(args.task_interval),
            "--neuron.task_deadline": str(args.deadline),
            "--neuron.collection_grace": str(args.grace),
            "--neuron.sample_size": str(len(behaviours)),
            "--neuron.epoch_length": "5",
            "--wandb.off": "true",
        }
        config = resolve(
            ValidatorConfig, [x for kv in settings.items() for x in kv], environ={}, env_file=None
        )
        neuron = ValidatorNeuron(config, chain=LocalChain(root / "chain", NETUID))
        cadence = Cadence()
        cadence.wrap(neuron, "heartbeat_round")
        cadence.wrap(neuron, "collect_due")
        cadence.wrap(neuron, "task_round")
        if not args.no_warmup:
            # The first in-process task imports dojo.synthetic on the event loop's thread, which
            # stalls every loop for seconds; done before the run, so the run measures collection.
            await neuron.task_source().next_task()
        baseline = _status_mb("VmRSS")
        figures: dict[str, float] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(stop, figures))
        running = asyncio.create_task(neuron.run())
        started = time.monotonic()
        await asyncio.sleep(args.seconds)
        neuron.request_stop()
        await asyncio.wait_for(running, 120)
        stop.set()
        await sampler
        elapsed = time.monotonic() - started
        peak = _status_mb("VmHWM")
        parent.send("stop")
        miners = parent.recv() if parent.poll(30) else {}
        with Session(neuron.store.engine) as db:
            rows = list(db.scalars(select(Assignment)))
        outcomes: dict[str, Counter[str]] = {}
        for row in rows:
            status = str(row.collect_status or "none")
            outcomes.setdefault(behaviour_of.get(row.miner_hotkey, "?"), Counter())[status] += 1
        details = {
            behaviour_of.get(row.miner_hotkey, "?"): (row.collect_detail or "")[:160]
            for row in rows
            if row.collect_detail
        }
    finally:
        if process.is_alive():
            process.terminate()
        process.join(10)
    heartbeat = cadence.summary("heartbeat_round")
    kept = heartbeat["interval_max_s"] is not None and heartbeat["interval_max_s"] <= (
        args.heartbeat_interval + args.timeout + 1.0
    )
    return {
        "seconds": round(elapsed, 1),
        "miners": dict(Counter(behaviours)),
        "rss_baseline_mb": round(baseline, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_max_sampled_mb": round(figures.get("rss_max_sampled_mb", 0.0), 1),
        "loop_lag_max_s": round(figures.get("loop_lag_max_s", 0.0), 3),
        "heartbeat_interval_set_s": args.heartbeat_interval,
        "heartbeat": heartbeat,
        "collection": cadence.summary("collect_due"),
        "task_rounds": cadence.summary("task_round"),
        "outcomes": {b: dict(c) for b, c in sorted(outcomes.items())},
        "details": details,
        "miner_side": miners,
        "targets": {
            "rss_mb": TARGET_RSS_MB,
            "heartbeat_interval_max_s": args.heartbeat_interval + args.timeout + 1.0,
        },
        "targets_met": peak < TARGET_RSS_MB and kept,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--honest", type=int, default=4)
    parser.add_argument("--hostile", default=HOSTILE, help=f"comma-separated behaviours (default {HOSTILE})")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--task-interval", type=float, default=10.0)
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=4.0, help="--neuron.timeout: each call's limit")
    parser.add_argument("--bomb-mib", type=int, default=1024)
    parser.add_argument("--flood-mib", type=int, default=200)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="do not make one synthetic task before the run (see the docstring)",
    )
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="dojo-hostile-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(f"{result['seconds']:.0f} s, miners {result['miners']}")
    print(
        f"validator RSS: baseline {result['rss_baseline_mb']} MB, peak {result['rss_peak_mb']} MB "
        f"(target < {TARGET_RSS_MB:.0f}), sampled max {result['rss_max_sampled_mb']} MB"
    )
    hb = result["heartbeat"]
    print(
        f"heartbeat rounds: {hb['count']}, every {hb['interval_mean_s']} s (max {hb['interval_max_s']} s, "
        f"set {args.heartbeat_interval} s), each {hb['length_mean_s']} s (max {hb['length_max_s']} s)"
    )
    co = result["collection"]
    print(f"collection passes: {co['count']}, each {co['length_mean_s']} s (max {co['length_max_s']} s)")
    print(f"event loop lag max {result['loop_lag_max_s']} s")
    for behaviour, counts in result["outcomes"].items():
        print(f"  {behaviour:18} {counts}  {result['details'].get(behaviour, '')}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
