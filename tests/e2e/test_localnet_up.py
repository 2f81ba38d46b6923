"""``dojo localnet up`` as a newcomer runs it, from another terminal's point of view.

The command runs as a subprocess with stdout a file (so it prints one line per event);
the test watches it only through ``dojo localnet status --json`` and stops it with
``dojo localnet down``, then starts it again in the same directory and checks that it
resumed: same chain, wallets, uids and validator database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FAST = ["--deadline", "20", "--task-interval", "4", "--block-time", "0.2"]


def _dojo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dojo", *args], capture_output=True, text=True, timeout=timeout
    )


def _up(directory: Path, run: int) -> tuple[subprocess.Popen, Path]:
    out = directory.parent / f"up{run}.out"
    with out.open("w") as stdout, (directory.parent / f"up{run}.err").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "dojo", "localnet", "up", "--dir", str(directory), *FAST],
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return process, out


def _status(directory: Path) -> dict[str, Any] | None:
    result = _dojo("localnet", "status", "--dir", str(directory), "--json")
    return json.loads(result.stdout) if result.returncode == 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _wait(predicate, timeout: float, what: str, up: subprocess.Popen, directory: Path) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert up.poll() is None, f"dojo localnet up exited with {up.returncode}: {_logs(directory)}"
        last = predicate()
        if last:
            return last
        time.sleep(1.0)
    raise AssertionError(f"{what} not within {timeout:g}s; logs: {_logs(directory)}")


def _logs(directory: Path) -> dict[str, str]:
    logs = {p.name: p.read_text(errors="replace")[-1500:] for p in (directory / "logs").glob("*.log")}
    for name in ("up1.out", "up1.err", "up2.out", "up2.err"):
        path = directory.parent / name
        if path.exists():
            logs[name] = path.read_text(errors="replace")[-3000:]
    return logs


def _down(directory: Path, up: subprocess.Popen, snapshot: dict[str, Any]) -> None:
    result = _dojo("localnet", "down", "--dir", str(directory))
    assert result.returncode == 0, result.stderr
    assert up.wait(60) == 0, _logs(directory)
    pids = [p["pid"] for p in snapshot["processes"]] + [up.pid]
    assert len(pids) == 10  # platform, synthetic API, validator, three miners, three teams; and `up`
    assert [pid for pid in pids if _alive(pid)] == []


def test_up_sets_weights_with_honest_miners_ahead_down_stops_everything_and_up_resumes(tmp_path):
    directory = tmp_path / "net"
    up, out = _up(directory, 1)
    try:

        def scored() -> dict[str, Any] | None:
            s = _status(directory)
            return s if s and s["rounds_scored"] >= 3 and s["weights_set"] >= 2 and s["weights"] else None

        first = _wait(scored, 240, "three scored rounds and weights on chain", up, directory)
        assert first["running"] and all(p["alive"] for p in first["processes"]), first["processes"]

        # A second `up` in the same directory refuses and says how to stop the first.
        again = _dojo("localnet", "up", "--dir", str(directory), *FAST, timeout=60)
        assert again.returncode == 1
        assert f"dojo localnet down --dir {directory}" in again.stderr
    finally:
        if up.poll() is None:
            _dojo("localnet", "down", "--dir", str(directory))
    assert first["results_collected"] > 0
    weights = {m["name"]: m["weight"] for m in first["miners"]}
    assert [m["team"] for m in first["miners"]] == ["3 honest", "3 honest", "3 random"]
    assert min(weights["miner1"], weights["miner2"]) > weights["miner3"], weights
    # The weights on chain, by hotkey, are the miners' shares.
    by_hotkey = {m["hotkey"]: m["weight"] for m in first["miners"]}
    assert set(first["weights"]) <= set(by_hotkey)
    assert all(by_hotkey[hotkey] == weight for hotkey, weight in first["weights"].items())
    assert abs(sum(first["weights"].values()) - 1) < 1e-9
    _down(directory, up, first)
    lines = out.read_text()
    for event in ("task sent to 3 miners", "results collected", "round 1 scored", "weights set at block"):
        assert event in lines, lines

    stopped = _status(directory)
    assert stopped is not None and not stopped["running"]
    assert not any(p["alive"] for p in stopped["processes"])

    # Again in the same directory: the same chain, wallets and uids, the database goes on.
    up, _ = _up(directory, 2)
    try:

        def resumed() -> dict[str, Any] | None:
            s = _status(directory)
            return s if s and s["running"] and s["tasks_sent"] > stopped["tasks_sent"] else None

        second = _wait(resumed, 60, "a task sent after resuming", up, directory)
    finally:
        if up.poll() is None:
            _dojo("localnet", "down", "--dir", str(directory))
    who = [(m["name"], m["uid"], m["hotkey"]) for m in first["miners"]]
    assert [(m["name"], m["uid"], m["hotkey"]) for m in second["miners"]] == who
    assert second["validator"] == first["validator"]
    assert second["results_collected"] >= stopped["results_collected"] >= first["results_collected"]
    assert second["block"] > stopped["block"]  # the chain's own clock went on: the same chain
    _down(directory, up, second)
