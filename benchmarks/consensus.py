"""Benchmark: one Yuma epoch (``template.chain.yuma.yuma_epoch``) at the size of a full subnet.

    .venv/bin/python benchmarks/consensus.py [--validators 64] [--miners 256] [--repeats 20]
                                             [--local-chain-neurons 0]

Weights are what validators that agree roughly set: each row is a shared miner quality plus
its own noise, 80% of the entries non-zero; stakes are log-normal; the bonds are those of
a previous epoch. The epoch is timed ``--repeats`` times; the best and median wall-clock
times and the CPU time per epoch are printed (on a shared machine the wall clock also
measures the other jobs). ``--local-chain-neurons N`` also times one epoch of the local
chain (SQLite: read the weights and bonds, run the epoch, write bonds and results) with
``--validators`` permit holders among N neurons. The target for the epoch itself is
< 50 ms on 2 cores. The last line is one JSON object.
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts benchmarks/ first on the path, where a sibling module can
# shadow the standard library (benchmarks/platform.py shadows ``platform``); use the
# repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from loguru import logger  # noqa: E402

from template.chain.yuma import YumaParams, yuma_epoch  # noqa: E402

TARGET_MS = 50.0


def make_epoch(rng: np.random.Generator, validators: int, miners: int) -> tuple[np.ndarray, np.ndarray]:
    quality = rng.gamma(2.0, 1.0, miners)
    weights = np.clip(quality[None, :] + rng.normal(0.0, 0.5, (validators, miners)), 0.0, None)
    weights[rng.random((validators, miners)) < 0.2] = 0.0
    stakes = rng.lognormal(8.0, 1.5, validators)
    return weights, stakes


def time_local_chain(neurons: int, validators: int, rng: np.random.Generator) -> float:
    """Seconds for the local chain to run one due epoch (a write transaction included)."""
    from template.chain.local import LocalChain

    with tempfile.TemporaryDirectory() as directory:
        chain = LocalChain.init(
            directory,
            block_time=3600.0,
            tempo=1,
            weights_rate_limit=0,
            max_validators=validators,
            max_uids=neurons,
        )
        for i in range(neurons):
            hotkey = f"bench-hotkey-{i}"
            chain.register(hotkey, hotkey, stake=float(rng.lognormal(8.0, 1.5)) if i < validators else 0.0)
        miners = list(range(validators, neurons))
        for i in range(validators):
            w = rng.integers(1, 65535, len(miners)).tolist()
            chain.set_weights(f"bench-hotkey-{i}", miners, w, version_key=0)
        # Pretend the next tempo began: move genesis back one block, then time the epoch.
        with chain._write() as db:
            db.execute("UPDATE chain SET genesis_time = genesis_time - block_time")
        chain = LocalChain(directory)
        start = time.perf_counter()
        view = chain.epoch_view()
        elapsed = time.perf_counter() - start
        assert len(view.validators) == validators, view.block
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validators", type=int, default=64)
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--local-chain-neurons", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logger.remove()
    rng = np.random.default_rng(args.seed)
    weights, stakes = make_epoch(rng, args.validators, args.miners)
    params = YumaParams()
    bonds = yuma_epoch(weights, stakes, None, params).bonds  # a previous epoch's bonds
    wall: list[float] = []
    cpu0 = time.process_time()
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = yuma_epoch(weights, stakes, bonds, params)
        wall.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu0) / args.repeats
    best, median = min(wall) * 1e3, statistics.median(wall) * 1e3
    print(f"yuma_epoch, {args.validators} validators x {args.miners} miners, {args.repeats} repeats")
    print(
        f"  best {best:.2f} ms, median {median:.2f} ms, CPU {cpu * 1e3:.2f} ms per epoch (target < {TARGET_MS:g} ms)"
    )
    print(
        f"  min trust {result.validator_trust.min():.3f}, incentive sums to {result.incentive.sum():.6f}, "
        f"dividends to {result.dividends.sum():.6f}"
    )
    out: dict[str, object] = {
        "validators": args.validators,
        "miners": args.miners,
        "repeats": args.repeats,
        "epoch_best_ms": round(best, 3),
        "epoch_median_ms": round(median, 3),
        "epoch_cpu_ms": round(cpu * 1e3, 3),
        "target_ms": TARGET_MS,
        "within_target": median < TARGET_MS,
    }
    if args.local_chain_neurons:
        seconds = time_local_chain(args.local_chain_neurons, args.validators, rng)
        print(
            f"local chain epoch, {args.local_chain_neurons} neurons: {seconds * 1e3:.1f} ms (SQLite included)"
        )
        out["local_chain_neurons"] = args.local_chain_neurons
        out["local_chain_epoch_ms"] = round(seconds * 1e3, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
