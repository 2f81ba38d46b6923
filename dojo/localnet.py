"""A whole Dojo subnet on one machine: a local chain, miners and a validator as processes.

``dojo localnet up`` creates the chain and the wallets under one directory, registers the
neurons (the validator with stake, so it holds a permit), starts every neuron as its own
process on loopback, and stops them all on Ctrl-C, SIGTERM or after ``--duration``. The
end-to-end tests drive the same class.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from template.chain.local import LocalChain
from template.wallets import create_wallet

ROOT = Path(__file__).resolve().parents[1]
ACTIVE_SET = re.compile(r"active set: (\d+) of (\d+) serving miners: uids \[([0-9, ]*)\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class NeuronProcess:
    name: str
    role: str
    uid: int
    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class LocalNet:
    directory: Path
    miners: int = 2
    netuid: int = 1
    block_time: float = 0.5
    epoch_length: int = 4
    heartbeat_interval: float = 2.0
    validator_stake: float = 1000.0
    debug: bool = False
    neurons: list[NeuronProcess] = field(default_factory=list)

    @property
    def chain_dir(self) -> Path:
        return self.directory / "chain"

    @property
    def wallet_path(self) -> Path:
        return self.directory / "wallets"

    def prepare(self) -> None:
        """Create the chain, the wallets and the registrations (idempotent)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        chain = LocalChain.init(self.chain_dir, netuid=self.netuid, block_time=self.block_time, exist_ok=True)
        plan = [("validator", "validator", self.validator_stake)]
        plan += [(f"miner{i}", "miner", 0.0) for i in range(1, self.miners + 1)]
        self.neurons = []
        for name, role, stake in plan:
            wallet = create_wallet(name, "default", str(self.wallet_path))
            uid = chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake)
            self.neurons.append(NeuronProcess(name, role, uid, free_port(), self.directory / "logs" / f"{name}.log"))

    def command(self, neuron: NeuronProcess) -> list[str]:
        script = "main_validator.py" if neuron.role == "validator" else "main_miner.py"
        cmd = [
            sys.executable, str(ROOT / script),
            "--netuid", str(self.netuid),
            "--subtensor.network", str(self.chain_dir),
            "--wallet.name", neuron.name, "--wallet.hotkey", "default", "--wallet.path", str(self.wallet_path),
            "--axon.ip", "127.0.0.1", "--axon.port", str(neuron.port),
            "--neuron.type", neuron.role,
            "--neuron.epoch_length", str(self.epoch_length),
            "--neuron.data_dir", str(self.directory / "data" / neuron.name),
        ]
        if neuron.role == "validator":
            cmd += ["--neuron.heartbeat_interval", str(self.heartbeat_interval)]
        if self.debug:
            cmd.append("--logging.debug")
        return cmd

    def start(self, roles: tuple[str, ...] = ("miner", "validator")) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for neuron in sorted(self.neurons, key=lambda n: n.role != "miner"):
            if neuron.role not in roles:
                continue
            with neuron.log_path.open("ab") as log:
                neuron.process = subprocess.Popen(
                    self.command(neuron), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, env=env,
                    start_new_session=True,
                )
            logger.info("started {} (uid {}) on port {}, pid {}", neuron.name, neuron.uid, neuron.port,
                        neuron.process.pid)

    @property
    def validator(self) -> NeuronProcess:
        return next(n for n in self.neurons if n.role == "validator")

    def active_set(self) -> list[int] | None:
        """The validator's latest logged active set, or None before its first round."""
        matches = ACTIVE_SET.findall(self.validator.log())
        if not matches:
            return None
        uids = matches[-1][2]
        return [int(u) for u in uids.split(",") if u.strip()]

    def wait_for_active_set(self, expected: set[int], timeout: float = 60.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.active_set()
            if current is not None and set(current) == expected:
                return current
            # Only a neuron the expectation depends on is fatal; a test may stop the others.
            needed = [n for n in self.neurons if n.role == "validator" or n.uid in expected]
            dead = [n.name for n in needed if n.process is not None and n.process.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited early; see logs in {self.directory / 'logs'}")
            time.sleep(0.2)
        raise TimeoutError(f"active set is {self.active_set()} after {timeout:g}s, expected {sorted(expected)}")

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every neuron, then SIGKILL what is still running; returns the exit codes."""
        for neuron in self.neurons:
            if neuron.process is not None and neuron.process.poll() is None:
                neuron.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for neuron in self.neurons:
            if neuron.process is None:
                continue
            try:
                codes[neuron.name] = neuron.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("{} did not stop within {}s; killing it", neuron.name, timeout)
                os.killpg(neuron.process.pid, signal.SIGKILL)
                codes[neuron.name] = neuron.process.wait()
        return codes


def run_localnet(directory: Path, miners: int, duration: float | None, debug: bool) -> int:
    net = LocalNet(directory, miners=miners, debug=debug)
    net.prepare()
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    net.start()
    print(f"localnet in {directory}: chain {net.chain_dir}, logs in {directory / 'logs'}")
    for n in net.neurons:
        print(f"  {n.role:<9} {n.name:<10} uid {n.uid:<3} http://127.0.0.1:{n.port}")
    expected = {n.uid for n in net.neurons if n.role == "miner"}
    started = time.monotonic()
    reported: list[int] | None = None
    try:
        while not stop and (duration is None or time.monotonic() - started < duration):
            current = net.active_set()
            if current != reported and current is not None:
                marker = "all miners answer" if set(current) == expected else "waiting for the others"
                print(f"validator active set: uids {current} ({marker})", flush=True)
                reported = current
            if any(n.process is not None and n.process.poll() is not None for n in net.neurons):
                print("a neuron exited; see the logs", file=sys.stderr)
                break
            time.sleep(0.5)
    finally:
        codes = net.stop()
        print(f"stopped: {codes}")
    ok = reported is not None and set(reported) == expected and all(c == 0 for c in codes.values())
    return 0 if ok else 1
