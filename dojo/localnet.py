"""A whole Dojo subnet on one machine: a local chain, miners and a validator as processes.

``dojo localnet up`` creates the chain and the wallets under one directory, registers the
neurons (the validator with stake, so it holds a permit), starts every neuron as its own
process on loopback, and stops them all on Ctrl-C, SIGTERM or after ``--duration``. The
end-to-end tests drive the same class; with ``platform=True`` it also runs a worker
platform, gives each miner its keys through the real log-in flow, and a team of simulated
workers per miner (``python -m dojo.workers``), so that tasks live their whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from loguru import logger

from template.chain.local import LocalChain
from template.wallets import create_wallet, load_wallet

ROOT = Path(__file__).resolve().parents[1]
ACTIVE_SET = re.compile(r"active set: (\d+) of (\d+) serving miners: uids \[([0-9, ]*)\]")


# Ports are taken below Linux's ephemeral range (32768-60999): a port the kernel picked
# for us would be free now, yet might be handed to some outgoing connection before the
# neuron that is to listen on it has started.
_PORT_RANGE = (20000, 32767)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port that is free now and outside the ephemeral range."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


@dataclass
class NeuronProcess:
    """One process of the local network: a neuron, the worker platform, or a team of workers."""

    name: str
    role: str  # "validator", "miner", "platform" or "workers"
    uid: int
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalNet:
    """A local chain with a validator and miners; with ``platform=True`` also one worker
    platform (each miner with its own API key and subscription key, made through the real
    log-in flow) and a team of simulated workers per miner, so tasks go their whole way.

    ``worker_mix`` gives each miner's team (``["honest:3", "honest:3", "random:3"]``, one
    entry per miner, the last repeated); the honest workers learn the true order from the
    validator's database, never from what the miner or the platform sends.
    """

    directory: Path
    miners: int = 2
    netuid: int = 1
    block_time: float = 0.5
    epoch_length: int = 4
    heartbeat_interval: float = 2.0
    validator_stake: float = 1000.0
    debug: bool = False
    platform: bool = False
    worker_mix: list[str] = field(default_factory=lambda: ["honest:3"])
    task_deadline: float = 60.0
    task_interval: float = 10.0
    scoring_interval: float = 5.0
    collection_grace: float = 60.0
    sample_size: int = 8
    task_max_results: int = 3
    worker_think: tuple[float, float] = (0.05, 0.3)
    weights_rate_limit: int = 2
    neurons: list[NeuronProcess] = field(default_factory=list)

    @property
    def chain_dir(self) -> Path:
        return self.directory / "chain"

    @property
    def wallet_path(self) -> Path:
        return self.directory / "wallets"

    def data_dir(self, name: str) -> Path:
        return self.directory / "data" / name

    @property
    def validator_db(self) -> Path:
        return self.data_dir("validator") / "validator.sqlite"

    @property
    def platform_url(self) -> str:
        return f"http://127.0.0.1:{self.process('platform').port}"

    def prepare(self) -> None:
        """Create the chain, the wallets and the registrations (idempotent)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        chain = LocalChain.init(
            self.chain_dir, netuid=self.netuid, block_time=self.block_time, exist_ok=True,
            weights_rate_limit=self.weights_rate_limit,
        )
        plan = [("validator", "validator", self.validator_stake)]
        plan += [(f"miner{i}", "miner", 0.0) for i in range(1, self.miners + 1)]
        self.neurons = []
        for name, role, stake in plan:
            wallet = create_wallet(name, "default", str(self.wallet_path))
            uid = chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake)
            self.neurons.append(NeuronProcess(name, role, uid, free_port(), self._log(name)))
        if self.platform:
            self.neurons.append(NeuronProcess("platform", "platform", -1, free_port(), self._log("platform")))
            for i in range(1, self.miners + 1):
                self.neurons.append(NeuronProcess(f"workers{i}", "workers", -1, 0, self._log(f"workers{i}")))

    def _log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def process(self, name: str) -> NeuronProcess:
        return next(n for n in self.neurons if n.name == name)

    def command(self, neuron: NeuronProcess) -> list[str]:
        if neuron.role == "platform":
            return [
                sys.executable, "-m", "dojo", "platform", "serve",
                "--db", str(self.directory / "data" / "platform" / "platform.sqlite"),
                "--host", "127.0.0.1", "--port", str(neuron.port),
                "--subtensor.network", str(self.chain_dir), "--netuid", str(self.netuid), "--log-level", "warning",
            ]
        if neuron.role == "workers":
            index = int(neuron.name.removeprefix("workers"))
            keys = self.keys()[f"miner{index}"]
            mix = self.worker_mix[min(index - 1, len(self.worker_mix) - 1)]
            return [
                sys.executable, "-m", "dojo.workers", "--platform", self.platform_url,
                "--subscription-key", keys["subscription_key"], "--mix", mix,
                "--oracle-db", str(self.validator_db), "--think", f"{self.worker_think[0]},{self.worker_think[1]}",
                "--poll", "0.5", "--seed", str(index),
            ]
        script = "main_validator.py" if neuron.role == "validator" else "main_miner.py"
        cmd = [
            sys.executable, str(ROOT / script),
            "--netuid", str(self.netuid),
            "--subtensor.network", str(self.chain_dir),
            "--wallet.name", neuron.name, "--wallet.hotkey", "default", "--wallet.path", str(self.wallet_path),
            "--axon.ip", "127.0.0.1", "--axon.port", str(neuron.port),
            "--neuron.type", neuron.role,
            "--neuron.epoch_length", str(self.epoch_length),
            "--neuron.data_dir", str(self.data_dir(neuron.name)),
        ]
        if neuron.role == "validator":
            cmd += [
                "--neuron.heartbeat_interval", str(self.heartbeat_interval),
                "--neuron.task_interval", str(self.task_interval),
                "--neuron.task_deadline", str(self.task_deadline),
                "--neuron.collection_grace", str(self.collection_grace),
                "--neuron.scoring_interval", str(self.scoring_interval),
                "--neuron.sample_size", str(self.sample_size),
                "--wandb.off",
            ]
        if self.debug:
            cmd.append("--logging.debug")
        return cmd

    def _environment(self, neuron: NeuronProcess) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # A process of the local network takes its settings from its flags, not from an
        # operator's shell or .env (DATABASE_URL, a failpoint, a real API key).
        for name in ("DATABASE_URL", "MINER_DATABASE_URL", "DOJO_FAILPOINT", "DOJO_API_KEY", "DOJO_API_BASE_URL", "SYNTHETIC_API_URL"):
            env.pop(name, None)
        if neuron.role == "miner" and self.platform:
            keys = self.keys()[neuron.name]
            env.update(DOJO_API_BASE_URL=self.platform_url, DOJO_API_KEY=keys["api_key"],
                       TASK_MAX_RESULTS=str(self.task_max_results))
        env.update(neuron.env)
        return env

    def start(self, roles: tuple[str, ...] = ("platform", "miner", "validator", "workers")) -> None:
        order = ("platform", "miner", "validator", "workers")
        for role in order:
            if role not in roles:
                continue
            for neuron in [n for n in self.neurons if n.role == role]:
                self.start_process(neuron)
            if role == "platform" and any(n.role == "platform" for n in self.neurons):
                self.wait_for_platform()
                self.provision_keys()

    def start_process(self, neuron: NeuronProcess, env: dict[str, str] | None = None) -> None:
        """Start (or start again) one process; ``env`` adds to its environment for this run."""
        neuron.env = dict(env or {})
        with neuron.log_path.open("ab") as log:
            neuron.process = subprocess.Popen(
                self.command(neuron), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                env=self._environment(neuron), start_new_session=True,
            )
        logger.info("started {} (uid {}) on port {}, pid {}", neuron.name, neuron.uid, neuron.port,
                    neuron.process.pid)

    def kill(self, name: str) -> int:
        """SIGKILL one process, as a power cut would; returns its exit code."""
        neuron = self.process(name)
        assert neuron.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(neuron.process.pid, signal.SIGKILL)
        return neuron.process.wait(30)

    def wait_for_platform(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        platform = self.process("platform")
        while time.monotonic() < deadline:
            if not platform.alive:
                raise RuntimeError(f"the platform exited early; see {platform.log_path}")
            try:
                if httpx.get(f"{self.platform_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the platform did not answer on {self.platform_url} within {timeout:g}s")

    @property
    def keys_path(self) -> Path:
        return self.directory / "keys.json"

    def keys(self) -> dict[str, dict[str, str]]:
        return json.loads(self.keys_path.read_text()) if self.keys_path.exists() else {}

    def provision_keys(self) -> None:
        """Each miner logs in to the platform with its hotkey and makes an API key and a
        subscription key, as an operator does with the `dojo` CLI; kept for later runs."""
        keys = self.keys()
        missing = [n for n in self.neurons if n.role == "miner" and n.name not in keys]
        if not missing:
            return

        async def make() -> None:
            from commons.dojo_api import DojoAPI

            for neuron in missing:
                wallet = load_wallet(neuron.name, "default", str(self.wallet_path))
                async with DojoAPI(self.platform_url) as api:
                    await api.login(wallet.hotkey)
                    api_key = await api.generate_api_key()
                    subscription_key = await api.generate_subscription_key()
                keys[neuron.name] = {"api_key": api_key.key, "subscription_key": subscription_key.key}

        asyncio.run(make())
        fd = os.open(self.keys_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(keys, fh, indent=1)

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
        """SIGTERM every process (workers, validator, miners, platform in that order), then
        SIGKILL what is still running; returns the exit codes."""
        order = {"workers": 0, "validator": 1, "miner": 2, "platform": 3}
        codes: dict[str, int | None] = {}
        for neuron in sorted(self.neurons, key=lambda n: order.get(n.role, 9)):
            if neuron.process is None:
                continue
            if neuron.process.poll() is None:
                neuron.process.send_signal(signal.SIGTERM)
            try:
                codes[neuron.name] = neuron.process.wait(timeout)
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
