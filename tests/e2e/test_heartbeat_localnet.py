"""A local chain, one validator and two miners as separate processes on loopback."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from dojo.localnet.net import LocalNet

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# The validator's log line for a heartbeat round whose active set changed.
ACTIVE_SET = re.compile(r"active set: (\d+) of (\d+) serving miners: uids \[([0-9, ]*)\]")


def _active_set(net: LocalNet) -> list[int] | None:
    """The validator's latest logged active set, or None before its first round."""
    matches = ACTIVE_SET.findall(net.validator.log())
    if not matches:
        return None
    uids = matches[-1][2]
    return [int(u) for u in uids.split(",") if u.strip()]


def _wait_for_active_set(net: LocalNet, expected: set[int], timeout: float) -> list[int]:
    """The validator's active set once it is ``expected``; fails early if a neuron it needs exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = _active_set(net)
        if current is not None and set(current) == expected:
            return current
        # Only a neuron the expectation depends on is fatal; a test may stop the others.
        needed = [n for n in net.neurons if n.role == "validator" or n.uid in expected]
        dead = [n.name for n in needed if n.process is not None and n.process.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited early; see logs in {net.directory / 'logs'}")
        time.sleep(0.2)
    raise TimeoutError(f"active set is {_active_set(net)} after {timeout:g}s, expected {sorted(expected)}")


def test_validator_sees_both_miners_then_everything_stops(tmp_path):
    net = LocalNet(tmp_path, miners=2, block_time=0.2, epoch_length=5, heartbeat_interval=0.5)
    net.prepare()
    try:
        net.start()
        miners = {n.uid for n in net.neurons if n.role == "miner"}
        assert len(miners) == 2
        assert set(_wait_for_active_set(net, miners, timeout=60)) == miners
    finally:
        codes = net.stop()
    assert codes == {"validator": 0, "miner1": 0, "miner2": 0}, {n.name: n.log()[-2000:] for n in net.neurons}
    for neuron in net.neurons:
        assert not _alive(neuron.process.pid), f"{neuron.name} still running"
        assert f"{neuron.role} uid {neuron.uid} stopped" in neuron.log()


def test_miner_that_goes_down_leaves_the_active_set(tmp_path):
    net = LocalNet(tmp_path, miners=2, block_time=0.2, epoch_length=5, heartbeat_interval=0.5)
    net.prepare()
    try:
        net.start()
        miners = {n.uid for n in net.neurons if n.role == "miner"}
        _wait_for_active_set(net, miners, timeout=60)
        gone = next(n for n in net.neurons if n.role == "miner")
        gone.process.send_signal(signal.SIGINT)  # Ctrl-C stops a neuron as cleanly as SIGTERM
        assert gone.process.wait(20) == 0
        assert f"miner uid {gone.uid} stopped" in gone.log()
        assert set(_wait_for_active_set(net, miners - {gone.uid}, timeout=30)) == miners - {gone.uid}
    finally:
        net.stop()


def test_unregistered_neuron_names_the_register_command(tmp_path):
    import subprocess
    import sys

    from dojo.localnet.net import ROOT
    from template.chain.local import LocalChain
    from template.wallets import create_wallet

    LocalChain.init(tmp_path / "chain", netuid=1, block_time=0.2)
    create_wallet("lonely", "default", str(tmp_path / "wallets"))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main_miner.py"),
            "--netuid",
            "1",
            "--subtensor.network",
            str(tmp_path / "chain"),
            "--wallet.name",
            "lonely",
            "--wallet.path",
            str(tmp_path / "wallets"),
            "--axon.ip",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "is not registered on subnet 1" in result.stderr
    assert "dojo chain register --dir" in result.stderr


def test_miners_started_after_the_validator_join_at_the_next_resync(tmp_path):
    net = LocalNet(tmp_path, miners=2, block_time=0.2, epoch_length=5, heartbeat_interval=0.5)
    net.prepare()
    try:
        net.start(roles=("validator",))
        _wait_for_active_set(net, set(), timeout=60)
        net.start(roles=("miner",))
        miners = {n.uid for n in net.neurons if n.role == "miner"}
        assert set(_wait_for_active_set(net, miners, timeout=60)) == miners
    finally:
        codes = net.stop()
    assert set(codes.values()) == {0}
