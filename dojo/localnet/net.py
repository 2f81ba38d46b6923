"""A whole Dojo subnet on one machine: a local chain, miners and a validator as processes.

``dojo localnet up`` creates the chain and the wallets under one directory, registers the
neurons (the validator with stake, so it holds a permit; with ``--validators N`` several,
each with its own stake, wallet, database and tasks), starts one worker platform
(each miner's API key and subscription key made through the real log-in flow), the
synthetic API, the validator, the miners and one team of simulated workers per miner,
each its own process on loopback; it shows what they do (:mod:`dojo.localnet.view`),
starts again whatever exits (:class:`Supervisor`, as pm2 would), and stops them all, in
order, on Ctrl-C, SIGTERM, ``dojo localnet down`` or after ``--duration``. A second
``up`` in the same directory resumes: same chain, wallets, keys and databases, and the
same simulated workers. What ``status`` and ``down`` need from another terminal (pids
with their start times, written as each process starts, ports, URLs) is in
``DIR/localnet.json`` (:mod:`dojo.localnet.state`); every process also carries
:data:`~dojo.localnet.state.MARKER_ENV`, so that one a
killed supervisor never wrote down is found all the same.

Each task keeps one place for a person with the printed invite link: ``--person-window``
to take it, the deadline to rank it (see :data:`DEADLINE`).

The end-to-end tests drive :class:`LocalNet` itself; by default it generates tasks in
the validator's process and runs no platform, and ``platform=True`` / ``synthetic=True``
add the platform with its workers and the synthetic API as processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

import httpx
from loguru import logger

from dojo.localnet.state import (
    KIND,
    LOCK_FILE,
    MARKER_ENV,
    ORGANIC_KEY_ENV,
    ORGANIC_SECRET_ENV,
    START_ORDER,
    STATE_FILE,
    STOP_ORDER,
    clean_exit,
    is_running,
    process_start,
    read_state,
    running_processes,
    strays,
    write_state,
)
from dojo.localnet.view import show
from dojo.platform import serve_command
from template.chain.local import LocalChain
from template.private import write_private
from template.restart import RestartPolicy
from template.wallets import create_wallet, load_wallet

ROOT = Path(__file__).resolve().parents[2]
# `dojo localnet up --validators N` runs at most this many (each is a process of its own).
MAX_VALIDATORS = 8


# Environment a process of the local network must not inherit: it takes its settings from
# its flags, not from an operator's shell or .env (a database URL, a failpoint, a real API
# key, another synthetic service or public URL).
_FOREIGN_ENV = (
    "DATABASE_URL",
    "MINER_DATABASE_URL",
    "DOJO_FAILPOINT",
    "DOJO_API_KEY",
    "DOJO_API_BASE_URL",
    "SYNTHETIC_API_URL",
    "SYNTHETIC_API_TOKEN",
    "PUBLIC_URL",
    "DOJO_SUBSCRIPTION_KEY",
    "WORKER_PLATFORM",
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
    "LABEL_STUDIO_WEBHOOK_SECRET",
    "LABEL_STUDIO_PROJECT_PREFIX",
    "LABEL_STUDIO_POLL_INTERVAL",
)


# Ports are taken below Linux's ephemeral range (32768-60999): a port the kernel picked
# for us would be free now, yet might be handed to some outgoing connection before the
# neuron that is to listen on it has started.
_PORT_RANGE = (20000, 32767)
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    """A loopback port that is free now and outside the ephemeral range; ``preferred``
    (the port of the last run, say) when it is free."""
    if preferred and preferred not in _handed_out and _bindable(preferred):
        _handed_out.add(preferred)
        return preferred
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(*_PORT_RANGE)
        if port in _handed_out or not _bindable(port):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


# --- signals --------------------------------------------------------------------------------


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block is done (in the main thread, where
    they are handled): what it starts is written down before a stop can begin.

    By a handler that notes the signal, not by blocking it: a process started meanwhile
    would inherit a blocked signal and never stop on SIGTERM, while a handler is reset to
    the default in it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = {
        sig: signal.signal(sig, lambda number, _frame: caught.append(number))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def validator_name(index: int) -> str:
    """The name (process, wallet, data directory) of validator ``index`` (1-based): the
    first is ``validator``, as on a network of one, the next ``validator2`` …"""
    return "validator" if index == 1 else f"validator{index}"


def parse_stakes(spec: str, validators: int) -> list[float]:
    """``1000,500,500`` as one stake per validator (empty: 1000 each); ValueError says what
    is wrong."""
    if not 1 <= validators <= MAX_VALIDATORS:
        raise ValueError(f"--validators must be between 1 and {MAX_VALIDATORS}, not {validators}")
    if not spec.strip():
        return [DEFAULT_VALIDATOR_STAKE] * validators
    stakes: list[float] = []
    for part in spec.split(","):
        try:
            stake = float(part)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a number") from None
        if not (math.isfinite(stake) and stake > 0):
            raise ValueError(
                f"{part.strip()!r}: a validator's stake must be more than 0 (it holds a permit by it)"
            )
        stakes.append(stake)
    if len(stakes) != validators:
        raise ValueError(f"{len(stakes)} stakes for {validators} validators; give one per validator")
    return stakes


# --- the worker mix -------------------------------------------------------------------------


def team_mixes(mix: str, miners: int, workers_per_miner: int) -> list[str]:
    """Each miner's team, in miner order, from a mix of behaviours shared out over the miners.

    ``mix`` (the :mod:`dojo.workers` syntax) says how many miners of each kind there are for
    every so many miners: ``honest:2,random:1`` gives two of every three miners a team of
    honest workers and the last a random team; with another number of miners the shares
    are kept as nearly as whole miners allow (largest remainder; ``--miners 2`` gives one
    honest and one random team). Each team has ``workers_per_miner`` workers of its kind.
    """
    from dojo.workers import parse_mix

    if miners < 1:
        raise ValueError("--miners must be at least 1")
    if workers_per_miner < 1:
        raise ValueError("--workers-per-miner must be at least 1")
    entries: list[tuple[Any, int]] = []
    for behaviour in parse_mix(mix):
        if entries and entries[-1][0] == behaviour:
            entries[-1] = (behaviour, entries[-1][1] + 1)
        else:
            entries.append((behaviour, 1))
    total = sum(count for _, count in entries)
    quotas = [count * miners / total for _, count in entries]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(entries)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: miners - sum(counts)]:
        counts[i] += 1
    teams: list[str] = []
    for (behaviour, _), count in zip(entries, counts, strict=True):
        teams += [f"{_spelled(behaviour)}:{workers_per_miner}"] * count
    return teams


def _spelled(behaviour: Any) -> str:
    """A behaviour as the mix syntax writes it, without the parameters left at their defaults."""
    from dojo.workers import BEHAVIOURS

    return behaviour.name if dict(behaviour.params) == BEHAVIOURS[behaviour.name] else str(behaviour)


def describe_team(spec: str) -> str:
    """``honest(noise=1):3`` as a person reads it: ``3 honest``."""
    from dojo.workers import parse_mix

    workers = parse_mix(spec)
    kinds: list[Any] = []  # Behaviour holds a dict, so it cannot key a dict itself
    for behaviour in workers:
        if behaviour not in kinds:
            kinds.append(behaviour)
    return ", ".join(f"{workers.count(behaviour)} {_spelled(behaviour)}" for behaviour in kinds)


# --- the processes --------------------------------------------------------------------------


@dataclass
class NeuronProcess:
    """One process of the local network: a neuron, the worker platform, the synthetic API,
    or a team of workers."""

    name: str
    role: str  # one of KINDS: "validator", "miner", "platform", "synthetic", "workers", "organic", "labelstudio" or "annotators"
    uid: int
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    hotkey: str = ""
    start_time: str | None = None
    # What the supervisor (:class:`Supervisor`) knows: how often it started the process
    # again, how the last run ended, and when it started this one (monotonic seconds).
    restarts: int = 0
    last_exit: int | None = None
    started: float = 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalNet:
    """A local chain with a validator and miners; with ``platform=True`` also one worker
    platform (each miner with its own API key and subscription key, made through the real
    log-in flow) and a team of simulated workers per miner, so tasks go their whole way;
    with ``synthetic=True`` the validator takes its tasks from the synthetic API run as its
    own process instead of generating them itself.

    ``worker_mix`` gives each miner's team (``["honest:3", "honest:3", "random:3"]``, one
    entry per miner, the last repeated); the honest workers learn the true order from the
    validator's database, never from what the miner or the platform sends. Each team keeps
    its workers' keys and sessions in its data directory, so a team started again is the
    same workers. With ``person_window`` each team has a stand-in too, who takes the place
    a task keeps for a person (``task_max_results`` is one more than the team) once the
    task has waited that long for one; with ``collect_at_results`` the validator collects
    a task as soon as every miner's places are filled.
    ``preferred_ports`` (name to port, the last run's) are used again where free;
    ``on_start`` is called with each process just started (before anything else happens).
    """

    directory: Path
    miners: int = 2
    netuid: int = 1
    block_time: float = 0.5
    epoch_length: int = 4
    heartbeat_interval: float = 2.0
    validator_stake: float = 1000.0
    # Several validators, each its own process, wallet, database, sample and tasks, all
    # sending to the same miners: ``validator_stakes`` has one stake each (the first named
    # "validator", then "validator2" …); empty: one validator of ``validator_stake``.
    validator_stakes: list[float] = field(default_factory=list)
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
    synthetic: bool = False
    synthetic_queue_size: int = 4
    # Content kinds of the tasks and their shares (code:1,text:1,dialogue:1,image:1); None:
    # code alone. The validator draws each task's kind from it, and the synthetic API makes them.
    synthetic_mix: str | None = None
    preferred_ports: dict[str, int] = field(default_factory=dict)
    # The organic API on the validator, and a caller submitting `organic_rate` tasks a second
    # whose order the honest workers' oracle knows (dojo.localnet.organic).
    organic: bool = False
    organic_rate: float = 0.2
    organic_min_miner_score: float = 0.15
    organic_api_port: int = 0
    organic_caller: bool = True  # run dojo.localnet.organic (a test may call the API itself)
    person_window: float | None = None
    collect_at_results: int = 0
    login_rate_limit: int | None = None
    on_start: Callable[[NeuronProcess], None] | None = None
    # Each miner's worker backend, in miner order ("dojo" or "label-studio"; missing: "dojo").
    miner_backends: list[str] = field(default_factory=list)
    label_studio_poll: float = 2.0
    # A Label Studio server that runs already (its URL and API token), used instead of
    # starting one: the team's own, or the test suite's.
    label_studio_external: tuple[str, str] | None = None

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
        """The first validator's database (the one the organic API is on)."""
        return self.database_of("validator")

    def database_of(self, validator: str) -> Path:
        return self.data_dir(validator) / "validator.sqlite"

    @property
    def validator_plan(self) -> list[tuple[str, float]]:
        """Each validator's name and stake, in order: ``validator``, ``validator2`` …"""
        stakes = self.validator_stakes or [self.validator_stake]
        return [(validator_name(i), stake) for i, stake in enumerate(stakes, start=1)]

    @property
    def validator_dbs(self) -> list[Path]:
        return [self.database_of(name) for name, _ in self.validator_plan]

    @property
    def platform_db(self) -> Path:
        return self.data_dir("platform") / "platform.sqlite"

    @property
    def platform_url(self) -> str:
        return f"http://127.0.0.1:{self.process('platform').port}"

    @property
    def synthetic_url(self) -> str:
        return f"http://127.0.0.1:{self.process('synthetic').port}"

    @property
    def organic_url(self) -> str:
        return f"http://127.0.0.1:{self.organic_api_port}"

    @property
    def organic_dir(self) -> Path:
        return self.directory / "organic"

    def backend(self, index: int) -> str:
        """The worker backend of miner ``index`` (1-based)."""
        return self.miner_backends[index - 1] if index <= len(self.miner_backends) else "dojo"

    @property
    def label_studio_url(self) -> str:
        if self.label_studio_external is not None:
            return self.label_studio_external[0].rstrip("/")
        return f"http://127.0.0.1:{self.process('labelstudio').port}"

    def label_studio_prefix(self, miner: str) -> str:
        """The title prefix of ``miner``'s Label Studio projects, which its annotators work."""
        return f"Dojo {miner}:"

    def label_studio_server(self) -> Any:
        """The Label Studio server of this network (its data, port and first user's token)."""
        from dojo.label_studio_server import LabelStudioServer

        account = self.keys().get("label-studio") or {}
        return LabelStudioServer(
            self.data_dir("labelstudio"), self.process("labelstudio").port,
            password=account.get("password"), token=account.get("token"), log_path=self._log("labelstudio"),
        )  # fmt: skip

    def prepare(self) -> None:
        """Create the chain, the wallets and the registrations (idempotent: a second call,
        or a later run in the same directory, keeps every key and uid)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        # The chain's Yuma epoch as often as the validators set weights (a chain made by an
        # earlier run keeps its own tempo).
        chain = LocalChain.init(
            self.chain_dir,
            netuid=self.netuid,
            block_time=self.block_time,
            exist_ok=True,
            weights_rate_limit=self.weights_rate_limit,
            tempo=self.epoch_length,
        )
        plan = [(name, "validator", stake) for name, stake in self.validator_plan]
        plan += [(f"miner{i}", "miner", 0.0) for i in range(1, self.miners + 1)]
        self.neurons = []
        for name, role, stake in plan:
            wallet = create_wallet(name, "default", str(self.wallet_path))
            hotkey = wallet.hotkey.ss58_address
            uid = chain.register(hotkey, wallet.coldkeypub.ss58_address, stake)
            self.neurons.append(
                NeuronProcess(name, role, uid, self._port(name), self._log(name), hotkey=hotkey)
            )
        self._unstake_absent_validators(chain)
        if self.platform:
            self.neurons.append(
                NeuronProcess("platform", "platform", -1, self._port("platform"), self._log("platform"))
            )
        if self.synthetic:
            self.neurons.append(
                NeuronProcess("synthetic", "synthetic", -1, self._port("synthetic"), self._log("synthetic"))
            )
        on_label_studio = [i for i in range(1, self.miners + 1) if self.backend(i) == "label-studio"]
        if on_label_studio and self.label_studio_external is None:
            self.neurons.append(
                NeuronProcess(
                    "labelstudio", "labelstudio", -1, self._port("labelstudio"), self._log("labelstudio")
                )
            )
        if on_label_studio:
            self._label_studio_account()
        for i in range(1, self.miners + 1):
            if i in on_label_studio:
                self.neurons.append(
                    NeuronProcess(f"annotators{i}", "annotators", -1, 0, self._log(f"annotators{i}"))
                )
            elif self.platform:
                self.neurons.append(NeuronProcess(f"workers{i}", "workers", -1, 0, self._log(f"workers{i}")))
        if self.organic:
            self.organic_api_port = self._port("organic_api")
            self.organic_dir.mkdir(exist_ok=True)
            if self.organic_caller:
                self.neurons.append(
                    NeuronProcess("organic", "organic", -1, self._port("organic"), self._log("organic"))
                )

    def _unstake_absent_validators(self, chain: LocalChain) -> None:
        """A validator of an earlier run in this directory that this run does not start
        (``--validators 3`` then ``--validators 1``) keeps its uid and wallet but loses its
        stake, and with it its permit: its last weights would otherwise count in the
        consensus for ever."""
        running = {name for name, _ in self.validator_plan}
        for index in range(2, MAX_VALIDATORS + 1):
            name = validator_name(index)
            if name in running or not (self.wallet_path / name).is_dir():
                continue
            wallet = load_wallet(name, "default", str(self.wallet_path))
            if chain.uid_of(wallet.hotkey.ss58_address) is not None:
                chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, 0.0)

    @property
    def stand_in_within(self) -> float | None:
        """The stand-ins take a task when at most this many seconds are left before its
        deadline: once it has waited ``person_window`` for a person. None: no stand-ins (a
        window as long as the deadline leaves the place open until then)."""
        if self.person_window is None or self.person_window >= self.task_deadline:
            return None
        return self.task_deadline - self.person_window

    def _label_studio_account(self) -> None:
        """The Label Studio owner's password and API token, made once and kept for later runs
        (Label Studio keeps its first user in its own database)."""
        import secrets

        keys = self.keys()
        account = keys.get("label-studio") or {}
        if self.label_studio_external is not None:
            wanted = {"token": self.label_studio_external[1], "url": self.label_studio_url}
        elif "password" not in account:  # made here once; a server given before does not count
            wanted = {"token": secrets.token_hex(20), "password": secrets.token_urlsafe(12)}
        else:
            return
        keys["label-studio"] = wanted
        write_private(self.keys_path, json.dumps(keys, indent=1))

    def _port(self, name: str) -> int:
        return free_port(self.preferred_ports.get(name))

    def _log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def process(self, name: str) -> NeuronProcess:
        return next(n for n in self.neurons if n.name == name)

    def team(self, index: int) -> str:
        """The worker mix of miner ``index`` (1-based)."""
        return self.worker_mix[min(index - 1, len(self.worker_mix) - 1)]

    def _oracle_args(self) -> list[str]:
        """The honest workers learn a task's true order from the database of the validator
        that sent it; a miner's workers cannot tell which, so they read them all."""
        return [arg for db in self.validator_dbs for arg in ("--oracle-db", str(db))]

    def _worker_args(self, index: int) -> list[str]:
        """What the workers of miner ``index`` do, on either worker platform: their mix, their
        oracle, how long they think and poll, and their seed."""
        return [
            "--mix",
            self.team(index),
            *self._oracle_args(),
            "--think",
            f"{self.worker_think[0]},{self.worker_think[1]}",
            "--poll",
            "0.5",
            "--seed",
            str(index),
        ]

    def command(self, neuron: NeuronProcess) -> list[str]:
        if neuron.role == "labelstudio":
            return list(self.label_studio_server().command())
        if neuron.role == "annotators":
            index = int(neuron.name.removeprefix("annotators"))
            return [
                sys.executable,
                "-m",
                "dojo.workers",
                "--label-studio",
                self.label_studio_url,
                "--project-prefix",
                self.label_studio_prefix(f"miner{index}"),
                *self._worker_args(index),
            ]
        if neuron.role == "platform":
            return serve_command(
                self.platform_db,
                neuron.port,
                self.chain_dir,
                self.netuid,
                # Tasks are handed out while a quarter of the deadline is left (a minute at most).
                "--min-time-left",
                f"{min(60.0, self.task_deadline / 4):g}",
                *(["--login-rate-limit", str(self.login_rate_limit)] if self.login_rate_limit else []),
            )
        if neuron.role == "synthetic":
            return [
                sys.executable,
                "-m",
                "dojo",
                "synthetic",
                "serve",
                "--backend",
                "procedural",
                # On loopback, for this machine's own validator: no token, said explicitly.
                "--host",
                "127.0.0.1",
                "--port",
                str(neuron.port),
                "--no-token",
                "--db",
                str(self.data_dir("synthetic") / "synthetic.sqlite"),
                # Each validator takes its own tasks from the one queue.
                "--queue-size",
                str(self.synthetic_queue_size * len(self.validator_plan)),
                *(["--mix", self.synthetic_mix] if self.synthetic_mix else []),
            ]
        if neuron.role == "workers":
            index = int(neuron.name.removeprefix("workers"))
            cmd = [
                sys.executable,
                "-m",
                "dojo.workers",
                "--platform",
                self.platform_url,
                # The subscription key comes in the environment (DOJO_SUBSCRIPTION_KEY, see
                # _environment): a command line is readable by every local user through ps.
                *self._worker_args(index),
                "--identities",
                str(self.data_dir(neuron.name) / "identities.json"),
                *(["--stand-in", f"{self.stand_in_within:g}"] if self.stand_in_within else []),
            ]
            if self.organic:
                cmd += ["--oracle-intended", str(self.organic_dir / "intended.jsonl")]
            return cmd
        if neuron.role == "organic":
            # The key and its webhook secret come in the environment (see _environment).
            return [
                sys.executable,
                "-m",
                "dojo.localnet.organic",
                "--validator",
                self.organic_url,
                "--rate",
                str(self.organic_rate),
                "--port",
                str(neuron.port),
                "--dir",
                str(self.organic_dir),
            ]
        script = "main_validator.py" if neuron.role == "validator" else "main_miner.py"
        cmd = [
            sys.executable,
            str(ROOT / script),
            "--netuid",
            str(self.netuid),
            "--subtensor.network",
            str(self.chain_dir),
            "--wallet.name",
            neuron.name,
            "--wallet.hotkey",
            "default",
            "--wallet.path",
            str(self.wallet_path),
            "--axon.ip",
            "127.0.0.1",
            "--axon.port",
            str(neuron.port),
            "--neuron.type",
            neuron.role,
            "--neuron.epoch_length",
            str(self.epoch_length),
            "--neuron.data_dir",
            str(self.data_dir(neuron.name)),
        ]
        if neuron.role == "validator":
            cmd += [
                "--neuron.heartbeat_interval",
                str(self.heartbeat_interval),
                "--neuron.task_interval",
                str(self.task_interval),
                "--neuron.task_deadline",
                str(self.task_deadline),
                "--neuron.collection_grace",
                str(self.collection_grace),
                "--neuron.scoring_interval",
                str(self.scoring_interval),
                "--neuron.sample_size",
                str(self.sample_size),
                "--neuron.collect_at_results",
                str(self.collect_at_results),
                # Every staked neuron here is a validator: none is sent tasks as a miner.
                "--neuron.vpermit_tao_limit",
                "0",
                "--wandb.off",
            ]
            if self.synthetic:
                cmd += ["--synthetic_api_url", self.synthetic_url]
            if self.organic and neuron.name == self.validator.name:
                cmd += [
                    "--organic.enabled",
                    "--organic.port",
                    str(self.organic_api_port),
                    # Its caller and webhook receiver are on this machine's loopback.
                    "--organic.allow_private_callbacks",
                    "--organic.min_miner_score",
                    str(self.organic_min_miner_score),
                    "--organic.tasks_per_round",
                    "2",
                    "--organic.webhook_retry_base",
                    "2",
                ]
            if self.synthetic_mix:
                cmd += ["--synthetic.mix", self.synthetic_mix]
        if self.debug:
            cmd.append("--logging.debug")
        return cmd

    def _environment(self, neuron: NeuronProcess) -> dict[str, str]:
        if neuron.role == "labelstudio":
            # A clean environment: Label Studio reads bare names (HOST, PORT, USERNAME) and
            # phones home unless told not to (dojo.label_studio_server).
            from dojo.label_studio_server import server_environment

            ls = self.label_studio_server()
            ls.data_dir.mkdir(parents=True, exist_ok=True)
            return {
                **server_environment(ls.data_dir, ls.venv, ls.username, ls.password, ls.token),
                MARKER_ENV: str(self.directory.resolve()),
            }
        env = {**os.environ, "PYTHONUNBUFFERED": "1", MARKER_ENV: str(self.directory.resolve())}
        for name in _FOREIGN_ENV:
            env.pop(name, None)
        if neuron.role == "synthetic":
            # Its settings come from its flags; a SYNTHETIC_BACKEND=llm in the shell must not
            # turn the local network into a paid one.
            for name in [n for n in env if n.startswith("SYNTHETIC_")]:
                env.pop(name)
        if neuron.role == "miner" and self.platform:
            keys = self.keys()[neuron.name]
            env.update(
                DOJO_API_BASE_URL=self.platform_url,
                DOJO_API_KEY=keys["api_key"],
                TASK_MAX_RESULTS=str(self.task_max_results),
            )
        if neuron.role == "workers":
            miner = "miner" + neuron.name.removeprefix("workers")
            env["DOJO_SUBSCRIPTION_KEY"] = self.keys()[miner]["subscription_key"]
        if neuron.role == "organic":
            key = self.keys()["organic"]
            env.update({ORGANIC_KEY_ENV: key["api_key"], ORGANIC_SECRET_ENV: key["webhook_secret"]})
        if neuron.role == "miner" and self.backend(self._miner_index(neuron)) == "label-studio":
            env.update(
                WORKER_PLATFORM="label-studio", LABEL_STUDIO_URL=self.label_studio_url,
                LABEL_STUDIO_API_KEY=self.keys()["label-studio"]["token"],
                LABEL_STUDIO_PROJECT_PREFIX=self.label_studio_prefix(neuron.name),
                LABEL_STUDIO_POLL_INTERVAL=str(self.label_studio_poll), TASK_MAX_RESULTS=str(self.task_max_results),
            )  # fmt: skip
        env.update(neuron.env)
        return env

    def _miner_index(self, neuron: NeuronProcess) -> int:
        return [n.name for n in self.neurons if n.role == "miner"].index(neuron.name) + 1

    def start(self, roles: tuple[str, ...] = START_ORDER) -> None:
        """Start the processes of ``roles``, in :data:`START_ORDER`; the platform and the
        synthetic API answer before anything that needs them starts."""
        for role in START_ORDER:
            if role not in roles:
                continue
            for neuron in [n for n in self.neurons if n.role == role]:
                self.start_process(neuron)
            if role == "platform" and any(n.role == "platform" for n in self.neurons):
                self.wait_for_platform()
                self.provision_keys()
            if role == "synthetic" and any(n.role == "synthetic" for n in self.neurons):
                self.wait_for_health(self.process("synthetic"))
            if role == "validator" and self.organic:
                self.provision_organic_key()
                self.wait_for_health(
                    NeuronProcess(
                        "organic API",
                        "validator",
                        -1,
                        self.organic_api_port,
                        self.validator.log_path,
                        self.validator.process,
                    )
                )
            if role == "labelstudio" and any(n.role == "labelstudio" for n in self.neurons):
                # Tens of seconds; minutes on its first start, which migrates its database.
                self.wait_for_health(self.process("labelstudio"), timeout=600.0)

    def start_process(self, neuron: NeuronProcess, env: dict[str, str] | None = None) -> None:
        """Start (or start again) one process; ``env`` adds to its environment for this run.

        Ctrl-C and SIGTERM wait until the process is started and :attr:`on_start` has
        written it down, so that no stop leaves a process nobody knows of."""
        neuron.env = dict(env or {})
        if neuron.role == "labelstudio":
            from dojo.label_studio_server import DEFAULT_VENV, INSTALL_SCRIPT, installed

            if not installed(DEFAULT_VENV):
                raise RuntimeError(
                    f"Label Studio is not installed in {DEFAULT_VENV}: run {INSTALL_SCRIPT} once"
                )
            if not _bindable(neuron.port):  # it would silently move to another port
                raise RuntimeError(f"port {neuron.port} for Label Studio is taken")
        command, environment = self.command(neuron), self._environment(neuron)
        with _signals_deferred(), neuron.log_path.open("ab") as log:
            neuron.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=environment,
                start_new_session=True,
            )
            neuron.start_time = process_start(neuron.process.pid)
            neuron.started = time.monotonic()
            if self.on_start is not None:
                self.on_start(neuron)
        logger.info(
            "started {} (uid {}) on port {}, pid {}", neuron.name, neuron.uid, neuron.port, neuron.process.pid
        )

    def kill(self, name: str) -> int:
        """SIGKILL one process, as a power cut would; returns its exit code."""
        neuron = self.process(name)
        assert neuron.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(neuron.process.pid, signal.SIGKILL)
        return neuron.process.wait(30)

    def wait_for_health(self, neuron: NeuronProcess, timeout: float = 60.0) -> None:
        """Until ``GET /health`` on the process's port answers 200."""
        url = f"http://127.0.0.1:{neuron.port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not neuron.alive:
                raise RuntimeError(f"the {neuron.name} process exited early; see {neuron.log_path}")
            try:
                with httpx.stream("GET", url, timeout=2) as response:  # the status only; the body unread
                    if response.status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(
            f"{neuron.name} did not answer on {url} within {timeout:g}s; see {neuron.log_path}"
        )

    def wait_for_platform(self, timeout: float = 60.0) -> None:
        self.wait_for_health(self.process("platform"), timeout)

    def wait_for_axons(self, timeout: float = 60.0) -> None:
        """Until every started miner listens on its port and the chain shows it there, so the
        validator's first metagraph has them all."""
        chain = LocalChain(self.chain_dir, self.netuid)
        waiting = [n for n in self.neurons if n.role == "miner" and n.process is not None]
        deadline = time.monotonic() + timeout
        while waiting:
            dead = [n for n in waiting if not n.alive]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited early; see {dead[0].log_path}")
            metagraph = chain.metagraph()
            waiting = [n for n in waiting if not _serves(metagraph.get(n.hotkey), n.port)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(n.name for n in waiting)
                raise TimeoutError(
                    f"{names} did not serve within {timeout:g}s; see {self.directory / 'logs'}"
                )
            time.sleep(0.2)

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
        write_private(self.keys_path, json.dumps(keys, indent=1))

    def provision_organic_key(self) -> None:
        """An organic API key for the localnet's caller, as an operator makes one with
        ``dojo validator organic-key create``; kept for later runs."""
        from dojo.validator.organic.store import OrganicStore
        from dojo.validator.store import TaskStore
        from template.clock import utcnow

        keys = self.keys()
        if "organic" in keys:
            return
        store = TaskStore(self.validator_db)
        try:
            made = OrganicStore(store.engine).create_key("localnet caller", 600, 100_000, utcnow())
        finally:
            store.close()
        keys["organic"] = {
            "key_id": made.key_id,
            "api_key": made.api_key,
            "webhook_secret": made.webhook_secret,
        }
        write_private(self.keys_path, json.dumps(keys, indent=1))

    def invite(self, miner: str) -> str:
        """A one-time link with which a person joins ``miner``'s team: asked of the running
        platform, logged in with the miner's hotkey, as ``dojo platform invite`` does (the
        platform checks the hotkey on its own chain, the local one)."""

        async def ask() -> str:
            from commons.dojo_api import DojoAPI

            wallet = load_wallet(miner, "default", str(self.wallet_path))
            async with DojoAPI(self.platform_url) as api:
                await api.login(wallet.hotkey)
                return (await api.create_invite()).url

        try:
            return asyncio.run(ask())
        except Exception as exc:  # DojoAPIError, or a wallet that cannot be read
            raise RuntimeError(f"the platform gave no invite for {miner}: {exc}") from exc

    def own_log_ins(self) -> int:
        """The log-in calls (a challenge and a signature each) the network itself makes on
        its platform within a minute of starting: the miners making their keys, the
        invite's miner, and every simulated worker with its stand-in."""
        from dojo.workers import parse_mix

        stand_in = 1 if self.stand_in_within else 0
        workers = sum(len(parse_mix(self.team(i))) + stand_in for i in range(1, self.miners + 1))
        return 2 * (self.miners + 1 + workers)

    @property
    def validator(self) -> NeuronProcess:
        """The first validator (the only one unless ``validator_stakes`` names several)."""
        return next(n for n in self.neurons if n.role == "validator")

    @property
    def validators(self) -> list[NeuronProcess]:
        return [n for n in self.neurons if n.role == "validator"]

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every process, one at a time in :data:`STOP_ORDER` (workers, validator,
        miners, synthetic API, platform), each waited for before the next; SIGKILL what does
        not stop within ``timeout``; returns the exit codes."""
        order = {role: i for i, role in enumerate(STOP_ORDER)}
        codes: dict[str, int | None] = {}
        for neuron in sorted(self.neurons, key=lambda n: order.get(n.role, len(order))):
            if neuron.process is None:
                continue
            if neuron.process.poll() is None:
                neuron.process.send_signal(signal.SIGTERM)
            try:
                codes[neuron.name] = neuron.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("{} did not stop within {}s; killing it", neuron.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(neuron.process.pid, signal.SIGKILL)
                codes[neuron.name] = neuron.process.wait()
        return codes


# --- the supervisor -------------------------------------------------------------------------


class Supervisor:
    """Starts again each process of ``net`` that exits, by :class:`RestartPolicy`.

    :meth:`tick` does the work; the caller runs it every fraction of a second, and stops
    calling it before stopping the network. ``on_change`` is called after each exit seen
    and each start (the new pid is written down by the network's ``on_start`` already)."""

    def __init__(
        self, net: LocalNet, policy: RestartPolicy | None = None, on_change: Callable[[], None] | None = None
    ):
        self.net = net
        self.policy = policy or RestartPolicy()
        self.on_change = on_change or (lambda: None)
        self._due: dict[str, float] = {}  # name -> monotonic time of its next start
        self._quick: dict[str, int] = {}  # name -> quick exits in a row
        self.gave_up: set[str] = set()

    def halt(self) -> None:
        """Start nothing more (the network is being stopped)."""
        self._due.clear()

    def restart_in(self, name: str, now: float | None = None) -> float | None:
        """Seconds until the process named ``name`` is started again; None if not waiting."""
        due = self._due.get(name)
        return None if due is None else max(0.0, due - (time.monotonic() if now is None else now))

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for neuron in self.net.neurons:
            if neuron.process is None or neuron.name in self.gave_up:
                continue
            if neuron.name in self._due:
                if now >= self._due[neuron.name]:
                    del self._due[neuron.name]
                    neuron.restarts += 1
                    self.net.start_process(neuron, neuron.env)
                    logger.info(
                        "{} started again (restart {}), pid {}",
                        neuron.name,
                        neuron.restarts,
                        neuron.process.pid,
                    )
                    self.on_change()
                continue
            code = neuron.process.poll()
            if code is None:
                continue
            neuron.last_exit = code
            quick = self.policy.quick_exits(now - neuron.started, self._quick.get(neuron.name, 0))
            self._quick[neuron.name] = quick
            delay = self.policy.delay(quick)
            if delay is None:
                self.gave_up.add(neuron.name)
                logger.error(
                    "{} exited with code {} {} times in a row soon after starting; not starting it "
                    "again (see {})",
                    neuron.name,
                    code,
                    quick,
                    neuron.log_path,
                )
            else:
                self._due[neuron.name] = now + delay
                logger.warning(
                    "{} (pid {}) exited with code {}; starting it again in {:g}s",
                    neuron.name,
                    neuron.process.pid,
                    code,
                    delay,
                )
            self.on_change()


def _serves(neuron: Any, port: int) -> bool:
    if neuron is None or neuron.axon is None or neuron.axon.port != port:
        return False
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- times in DIR/localnet.json ------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_in(seconds: float) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- up -------------------------------------------------------------------------------------

# The demo's pace, with the defaults of `dojo localnet up` (block time 1 s): weights every
# 20 blocks, never faster than 10; a heartbeat every 2 s; a round every 5 s.
EPOCH_BLOCKS = 20
WEIGHTS_RATE_LIMIT = 10
HEARTBEAT_INTERVAL = 2.0
SCORING_INTERVAL = 5.0
# Long enough that tasks whose deadline passed while the network was down are still
# collected when it is up again.
COLLECTION_GRACE = 3600.0
WORKER_THINK = (0.5, 3.0)
# A task keeps one place for a person (the invite link's): open for DEADLINE seconds to a
# person who takes it, and for PERSON_WINDOW to one who has not yet; then a simulated
# stand-in takes it, every place is filled, and the validator collects the task at once.
# So a person has minutes for a task, and the first weights still come about
# PERSON_WINDOW + a round + an epoch after the first task.
DEADLINE = 600.0
PERSON_WINDOW = 60.0
# The platform's log-in limit counts per client address, and on a local network every
# client is 127.0.0.1: the limit is the network's own log-ins at start on top of a
# stranger's allowance, which a person's browser keeps whole.
PERSON_LOG_INS = 30
DEFAULT_VALIDATOR_STAKE = 1000.0


@dataclass(frozen=True)
class UpSettings:
    """What ``dojo localnet up`` was asked for."""

    directory: Path
    miners: int = 3
    workers_per_miner: int = 3
    worker_mix: str = "honest:2,random:1"
    deadline: float = DEADLINE
    person_window: float = PERSON_WINDOW
    task_interval: float = 10.0
    block_time: float = 1.0
    duration: float | None = None
    debug: bool = False
    organic: bool = False
    organic_rate: float = 0.2
    # Each miner's worker backend, comma-separated in miner order ("dojo,dojo,label-studio");
    # empty: every miner on the Dojo platform.
    miner_backends: str = ""
    # A Label Studio server that runs already, for the Label Studio miners (its token comes
    # from LABEL_STUDIO_API_KEY); empty: the localnet starts its own.
    label_studio_url: str = ""
    # That server's API token (LABEL_STUDIO_API_KEY, read by the command with its settings).
    label_studio_api_key: str = ""
    synthetic_mix: str | None = None
    validators: int = 1
    # One stake per validator, comma-separated ("1000,500,500"); empty: 1000 each.
    validator_stakes: str = ""


def parse_backends(spec: str, miners: int) -> list[str]:
    """``dojo,dojo,label-studio`` as one backend per miner; ValueError says what is wrong."""
    from dojo.miner.backends import BACKENDS

    if not spec.strip():
        return ["dojo"] * miners
    backends = [b.strip() for b in spec.split(",")]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; use {' or '.join(BACKENDS)}")
    if len(backends) != miners:
        raise ValueError(f"{len(backends)} backends for {miners} miners; give one per miner")
    return backends


class LocalNetRunning(RuntimeError):
    """An ``up`` in a directory whose local network still runs."""


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold ``DIR/localnet.lock`` for the whole run: a second ``up`` in the same directory
    finds it taken. The descriptor is not inherited by the processes started."""
    fh = (directory / LOCK_FILE).open("a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LocalNetRunning(_running_message(directory)) from None
        yield
    finally:
        fh.close()


def _running_message(directory: Path, state: dict[str, Any] | None = None) -> str:
    supervisor = (state or {}).get("supervisor") or {}
    if state is not None and not is_running(supervisor.get("pid"), supervisor.get("start_time")):
        alive = [r["name"] for r in running_processes(state)] + [
            f"pid {pid}" for pid in strays(directory, state)
        ]
        return (
            f"processes of a localnet still run in {directory} without their supervisor ({', '.join(alive)}); "
            f"stop them with `dojo localnet down --dir {directory}`"
        )
    return (
        f"a localnet is already running in {directory}; stop it with `dojo localnet down --dir {directory}`"
    )


def build_net(settings: UpSettings, previous: dict[str, Any] | None) -> LocalNet:
    ports = {p["name"]: p["port"] for p in (previous or {}).get("processes", []) if p.get("port")}
    net = LocalNet(
        settings.directory,
        miners=settings.miners,
        block_time=settings.block_time,
        epoch_length=EPOCH_BLOCKS,
        weights_rate_limit=WEIGHTS_RATE_LIMIT,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        debug=settings.debug,
        platform=True,
        synthetic=True,
        worker_mix=team_mixes(settings.worker_mix, settings.miners, settings.workers_per_miner),
        task_deadline=settings.deadline,
        task_interval=settings.task_interval,
        scoring_interval=SCORING_INTERVAL,
        collection_grace=COLLECTION_GRACE,
        # One place more than the simulated team: room for a person with the invite link.
        task_max_results=settings.workers_per_miner + 1,
        person_window=settings.person_window,
        worker_think=WORKER_THINK,
        preferred_ports=ports,
        organic=settings.organic,
        organic_rate=settings.organic_rate,
        miner_backends=parse_backends(settings.miner_backends, settings.miners),
        label_studio_external=(settings.label_studio_url, settings.label_studio_api_key)
        if settings.label_studio_url
        else None,
        synthetic_mix=settings.synthetic_mix,
        validator_stakes=parse_stakes(settings.validator_stakes, settings.validators),
    )
    # With stand-ins every place fills, and the validator takes a task as soon as it has;
    # without (a window as long as the deadline) only a person fills a task's last place,
    # and looking at every task before its deadline for that costs more than it gains.
    net.collect_at_results = settings.workers_per_miner + 1 if net.stand_in_within else 0
    net.login_rate_limit = PERSON_LOG_INS + net.own_log_ins()
    return net


def state_of(
    net: LocalNet, settings: UpSettings, started_at: str, supervisor: Supervisor | None = None, **extra: Any
) -> dict[str, Any]:
    """What ``status`` and ``down`` need from another terminal."""
    names = [n.name for n in net.neurons]
    now = time.monotonic()

    def restart_at(name: str) -> str | None:
        left = supervisor.restart_in(name, now) if supervisor else None
        return None if left is None else _iso_in(left)

    return {
        "version": 1,
        "directory": str(net.directory),
        "netuid": net.netuid,
        "supervisor": {"pid": os.getpid(), "start_time": process_start(os.getpid())},
        "started_at": started_at,
        "stopped_at": None,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
        "platform_url": net.platform_url if "platform" in names else None,
        "synthetic_url": net.synthetic_url if "synthetic" in names else None,
        "organic_url": net.organic_url if net.organic else None,
        "label_studio_url": net.label_studio_url
        if "labelstudio" in names or net.label_studio_external is not None
        else None,
        "invite_url": None,
        "invite_for": None,
        "validator": {"name": net.validator.name, "uid": net.validator.uid, "hotkey": net.validator.hotkey},
        "validators": [
            {"name": n.name, "uid": n.uid, "hotkey": n.hotkey, "stake": stake}
            for n, (_, stake) in zip(net.validators, net.validator_plan, strict=True)
        ],
        "miners": [
            {
                "name": n.name,
                "uid": n.uid,
                "hotkey": n.hotkey,
                "team": describe_team(net.team(i)),
                "backend": net.backend(i),
            }
            for i, n in enumerate((n for n in net.neurons if n.role == "miner"), start=1)
        ],
        "processes": [
            {
                "name": n.name,
                "role": n.role,
                "uid": n.uid,
                "port": n.port or None,
                "pid": n.process.pid if n.process else None,
                "pgid": n.process.pid if n.process else None,  # each is its own session's leader
                "start_time": n.start_time,
                "exit_code": n.process.poll() if n.process else None,
                "restarts": n.restarts,
                "last_exit_code": n.last_exit,
                "restart_at": restart_at(n.name),
                "gave_up": bool(supervisor and n.name in supervisor.gave_up),
                "log": str(n.log_path),
            }
            for n in sorted(net.neurons, key=lambda n: START_ORDER.index(n.role))
        ],
        **extra,
    }


def run_localnet(settings: UpSettings, out: TextIO | None = None) -> int:
    """``dojo localnet up``: prepare, start everything, show it and start again what exits
    until asked to stop, stop everything in order. Returns the exit status: 0 when every
    process ran (or was started again) until stopped and then stopped cleanly."""
    out = out or sys.stdout
    directory = settings.directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    try:
        with _exclusive(directory):
            previous = read_state(directory)
            if running_processes(previous) or strays(directory, previous):
                raise LocalNetRunning(_running_message(directory, previous))
            return _run(settings, previous, out)
    except (LocalNetRunning, RuntimeError) as exc:  # RuntimeError: an unreadable localnet.json
        print(f"dojo localnet up: {exc}", file=sys.stderr)
        return 1


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run(settings: UpSettings, previous: dict[str, Any] | None, out: TextIO) -> int:
    directory = settings.directory
    net = build_net(settings, previous)
    net.prepare()
    chain = LocalChain(net.chain_dir, net.netuid)
    if not math.isclose(chain.block_time, settings.block_time):
        print(
            f"note: the chain in {directory} keeps the block time it was made with, {chain.block_time:g}s",
            file=out,
            flush=True,
        )
    resumed = previous is not None
    started_at = _now()
    extra: dict[str, Any] = {}
    supervisor = Supervisor(net)

    def state() -> dict[str, Any]:
        return state_of(net, settings, started_at, supervisor, **extra)

    def record(**changes: Any) -> None:
        extra.update(changes)
        write_state(directory, state())

    # Every start is written down at once, and every exit the supervisor sees.
    net.on_start = lambda _neuron: record()
    supervisor.on_change = record

    def step() -> bool:
        supervisor.tick()
        return len(supervisor.gave_up) < len(net.neurons)

    previous_handlers = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed: str | None = None
    try:
        record()
        print(
            f"{'resuming' if resumed else 'starting'} the localnet in {directory} "
            f"({_validators_said(net)}{settings.miners} miners, logs in {directory / 'logs'})",
            file=out,
            flush=True,
        )
        for role in ("platform", "labelstudio", "synthetic", "miner"):
            net.start(roles=(role,))
        net.wait_for_axons()
        for role in ("validator", "workers", "annotators", "organic"):
            net.start(roles=(role,))
        first_miner = next(n.name for n in net.neurons if n.role == "miner")
        try:
            invite = net.invite(first_miner)
        except RuntimeError as exc:
            logger.warning("no invite link: {}", exc)
            invite = None
        record(invite_url=invite, invite_for=first_miner)
        _introduce(net, settings, invite, first_miner, out)
        show(directory, net.netuid, settings.duration, state, out, step)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:
        failed = str(exc)
        print(f"dojo localnet up: {exc}", file=sys.stderr, flush=True)
    finally:
        # Nothing interrupts the stopping itself: a second Ctrl-C would leave processes behind.
        for sig in previous_handlers:
            signal.signal(sig, signal.SIG_IGN)
        present = {n.role for n in net.neurons if n.process is not None}
        labels = ", ".join(KIND[role].label for role in STOP_ORDER if role in present)
        print(f"stopping: {labels} …", file=out, flush=True)
        supervisor.halt()
        down = {n.name for n in net.neurons if n.process is not None and not n.alive}
        codes = net.stop()
        record(stopped_at=_now())
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    roles = {n.name: n.role for n in net.neurons}
    print(
        f"{stop_summary(codes, roles, down)}; everything is kept in {directory}: "
        f"`dojo localnet up --dir {directory}` resumes",
        file=out,
        flush=True,
    )
    if supervisor.gave_up:
        failed = f"{', '.join(sorted(supervisor.gave_up))} kept exiting; see {directory / 'logs'}"
        print(f"dojo localnet up: {failed}", file=sys.stderr, flush=True)
    clean = not down and all(
        code is not None and clean_exit(roles[name], code) for name, code in codes.items()
    )
    return 0 if failed is None and clean else 1


def _validators_said(net: LocalNet) -> str:
    """``3 validators (stakes 1000, 1000, 500), `` when there are several; nothing for one."""
    plan = net.validator_plan
    if len(plan) == 1:
        return ""
    return f"{len(plan)} validators (stakes {', '.join(f'{stake:g}' for _, stake in plan)}), "


def stop_summary(codes: dict[str, int | None], roles: dict[str, str], down: Collection[str] = ()) -> str:
    """The line ``up`` ends with: every process stopped cleanly, or which did not and how.
    ``down``: the processes that were not running when the stop began (they had exited)."""
    trouble = []
    for name, code in codes.items():
        if name in down:
            trouble.append(f"{name} had exited ({_exit(code)})")
        elif code is None or not clean_exit(roles[name], code):
            trouble.append(f"{name} {_exit(code)}")
    if not trouble:
        return f"stopped: all {len(codes)} processes stopped cleanly"
    return f"stopped: {len(codes) - len(trouble)} of {len(codes)} processes cleanly; " + ", ".join(trouble)


def _exit(code: int | None) -> str:
    if code is None:
        return "did not stop"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _introduce(net: LocalNet, settings: UpSettings, invite: str | None, miner: str, out: TextIO) -> None:
    d = settings.directory
    window = net.stand_in_within and settings.person_window
    lines = [
        f"worker platform: {net.platform_url}",
        f"invite link:     {invite}  (join {miner}'s team and rank tasks beside the simulated workers)"
        if invite
        else f"invite link:     none; see {d / 'logs' / 'localnet.log'}",
        f"synthetic API:   {net.synthetic_url}",
        *(
            [
                f"organic API:     {net.organic_url}  (key in {d / 'keys.json'}; a caller submits "
                f"{settings.organic_rate:g} tasks/s, its files in {net.organic_dir})"
            ]
            if net.organic
            else []
        ),
        *(
            [
                f"Label Studio:    {net.label_studio_url}  (log in as {net.label_studio_server().username}; "
                f"password in {net.keys_path})"
            ]
            if any(n.role == "labelstudio" for n in net.neurons)
            else []
        ),
        *([f"Label Studio:    {net.label_studio_url}  (yours)"] if net.label_studio_external else []),
        (
            f"each task keeps a place for a person: {window:g}s to take it, then {settings.deadline:g}s from "
            f"the task's start to rank it; the first weights come about {window:g}s after the first task"
            if window
            else f"tasks are collected after their deadline ({settings.deadline:g}s); the first weights come then"
        ),
        f"stop with Ctrl-C or `dojo localnet down --dir {d}`; `dojo localnet status --dir {d}` from another terminal",
    ]
    print("\n".join(lines), file=out, flush=True)


# --- down -----------------------------------------------------------------------------------


def stop_recorded(
    directory: Path, timeout: float = 30.0, say: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """``dojo localnet down``: ask the running ``up`` to stop everything in order; then
    SIGTERM, role by role in :data:`STOP_ORDER`, whatever recorded process still runs
    (an ``up`` that was killed leaves its processes behind), and SIGKILL what remains after
    ``timeout``. Only a process whose pid and start time are both the recorded ones is
    signalled; and a process of the network that no record names (found by its
    :data:`MARKER_ENV`) last. Removes nothing, so ``up`` resumes. Returns the records it
    found running, the unrecorded ones as ``{"name": "pid N", …}``."""
    state = read_state(directory)
    if state is None:
        raise FileNotFoundError(f"no localnet in {directory} ({STATE_FILE} is missing)")
    found = running_processes(state) + [_stray_record(pid) for pid in strays(directory, state)]
    supervisor = state.get("supervisor") or {}
    if is_running(supervisor.get("pid"), supervisor.get("start_time")):
        say(f"asking dojo localnet up (pid {supervisor['pid']}) to stop its processes")
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor["pid"], signal.SIGTERM)
        _wait_gone([supervisor], 2 * timeout + 30)
        state = read_state(directory) or state  # what it started since, and how it ended
    order = {role: i for i, role in enumerate(STOP_ORDER)}
    records = sorted(state.get("processes", []), key=lambda r: order.get(r.get("role"), len(order)))
    for role in STOP_ORDER:
        group = [r for r in records if r.get("role") == role and _running(r)]
        for r in group:
            say(f"stopping {r['name']} (pid {r['pid']})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(r["pid"], signal.SIGTERM)
        for r in _wait_gone(group, timeout):
            say(f"{r['name']} (pid {r['pid']}) did not stop within {timeout:g}s; killing it")
            _kill_group(r)
    _wait_gone(records, 10.0)
    unrecorded = [_stray_record(pid) for pid in strays(directory, state)]
    for r in unrecorded:
        say(f"stopping pid {r['pid']}, a process of this localnet that no record names")
        with contextlib.suppress(ProcessLookupError):
            os.kill(r["pid"], signal.SIGTERM)
    for r in _wait_gone(unrecorded, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(r["pid"], signal.SIGKILL)
    return found


def _stray_record(pid: int) -> dict[str, Any]:
    return {"name": f"pid {pid}", "role": None, "pid": pid, "pgid": None, "start_time": process_start(pid)}


def _running(record: dict[str, Any]) -> bool:
    return is_running(record.get("pid"), record.get("start_time"))


def _wait_gone(records: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Wait until none of ``records`` runs; the ones still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    left = [r for r in records if _running(r)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [r for r in left if _running(r)]
    return left


def _kill_group(record: dict[str, Any]) -> None:
    """SIGKILL the process and its group (what it started), checked to be ours first."""
    pid, pgid = record["pid"], record.get("pgid")
    with contextlib.suppress(ProcessLookupError):
        if pgid and _running(record) and os.getpgid(pid) == pgid:
            os.killpg(pgid, signal.SIGKILL)
        elif _running(record):
            os.kill(pid, signal.SIGKILL)
