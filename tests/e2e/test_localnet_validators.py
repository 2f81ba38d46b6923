"""``dojo localnet up --validators 3``: three validators, each with its own wallet, stake,
database and tasks, send to the same miners and set weights on the one local chain.

The command runs as a subprocess, watched only through ``dojo localnet status --json``
(and the chain it names), and stopped with ``dojo localnet down``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from template.chain.local import LocalChain

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# The pace of the other localnet tests (tests/e2e/test_localnet_up.py); two miners, an
# honest team and a random one, keep the machine's load down.
FAST = ["--deadline", "20", "--task-interval", "4", "--block-time", "0.2", "--miners", "2"]


def _dojo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dojo", *args], capture_output=True, text=True, timeout=timeout
    )


def _status(directory: Path) -> dict[str, Any] | None:
    result = _dojo("localnet", "status", "--dir", str(directory), "--json")
    return json.loads(result.stdout) if result.returncode == 0 else None


def _logs(directory: Path) -> dict[str, str]:
    logs = {p.name: p.read_text(errors="replace")[-1500:] for p in (directory / "logs").glob("*.log")}
    for name in ("up.out", "up.err"):
        path = directory.parent / name
        if path.exists():
            logs[name] = path.read_text(errors="replace")[-3000:]
    return logs


def test_three_validators_set_weights_favouring_the_honest_miner_and_status_shows_their_trust(tmp_path):
    directory = tmp_path / "net"
    with (tmp_path / "up.out").open("w") as stdout, (tmp_path / "up.err").open("w") as stderr:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dojo",
                "localnet",
                "up",
                "--dir",
                str(directory),
                *FAST,
                "--validators",
                "3",
                "--validator-stakes",
                "1000,1000,500",
            ],
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:

        def three_rounds_and_weights_each_counted_in_consensus() -> dict[str, Any] | None:
            s = _status(directory)
            validators = (s or {}).get("validators") or []
            done = len(validators) == 3 and all(
                v["rounds_scored"] >= 3 and v["weights_set"] >= 3 and v["weights"] and (v["trust"] or 0) > 0
                for v in validators
            )
            return s if done else None

        deadline = time.monotonic() + 240
        snap = None
        while snap is None:
            assert up.poll() is None, f"dojo localnet up exited with {up.returncode}: {_logs(directory)}"
            assert time.monotonic() < deadline, (
                f"not every validator scored and set weights three times with trust: {_logs(directory)}"
            )
            snap = three_rounds_and_weights_each_counted_in_consensus()
            if snap is None:
                time.sleep(1.0)
        chain = LocalChain(directory / "chain", 1)
        on_chain = {v["name"]: chain.weights_of(v["uid"]) for v in snap["validators"]}
    finally:
        if up.poll() is None:
            _dojo("localnet", "down", "--dir", str(directory))
    assert up.wait(60) == 0, _logs(directory)

    validators = snap["validators"]
    assert [(v["name"], v["stake"]) for v in validators] == [
        ("validator", 1000.0),
        ("validator2", 1000.0),
        ("validator3", 500.0),
    ]
    assert len({v["hotkey"] for v in validators}) == 3
    assert all(p["alive"] for p in snap["processes"]), snap["processes"]
    assert sum(p["role"] == "validator" for p in snap["processes"]) == 3
    honest, random_team = snap["miners"]
    assert (honest["team"], random_team["team"]) == ("3 honest", "3 random")
    for v in validators:
        # Its own tasks, sent to both miners, and its weights are on the chain.
        assert v["tasks_sent"] > 0 and v["rounds_scored"] > 0 and v["database"] == "ready", v
        assert on_chain[v["name"]], (v["name"], on_chain)
        assert abs(sum(v["weights"].values()) - 1) < 1e-9
        assert v["weights"].get(honest["hotkey"], 0.0) > v["weights"].get(random_team["hotkey"], 0.0), v
        assert 0 < v["trust"] <= 1 and v["dividend"] is not None, v
    # The chain's consensus pays the honest team most.
    assert honest["incentive"] > random_team["incentive"], snap["miners"]
    assert snap["epoch_block"] > 0
    # Both miners took the first validator's tasks, and no validator was sent one as a miner.
    assert all(m["received"] > 0 for m in snap["miners"])
    for name in ("validator", "validator2", "validator3"):
        rounds = [
            line
            for line in (directory / "logs" / f"{name}.log").read_text().splitlines()
            if "scored:" in line
        ]
        assert rounds and all(", 2 miners:" in line for line in rounds), rounds
    lines = (tmp_path / "up.out").read_text()
    for name in ("validator", "validator2", "validator3"):
        assert f"{name} set weights at block" in lines, lines
